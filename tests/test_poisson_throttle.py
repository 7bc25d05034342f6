"""Throttle rate of Poisson traffic into one shard against the closed form.

With ``N ~ Poisson(lam)`` records per one-second window, a 1,000 records/s limit and no retries,
the share of records rejected is ``E[(N - 1000)+] / E[N]`` (:func:`kinesim.theory.poisson_throttle_rate`).
Records of 10 bytes keep the byte limit (1 MiB/s) far away, so only the record limit binds.
"""
from __future__ import annotations

import math

import pytest

import kinesim
from kinesim import theory

DURATION_S = 300


def run(lam: int, seed: int = 3):
    return kinesim.simulate({
        "name": "poisson-throttle",
        "duration": f"{DURATION_S}s",
        "seed": seed,
        "stream": {"shards": 1},
        "fleets": [{
            "name": "f", "sensors": lam, "rate": "1/s", "arrival": "poisson", "record_size": "10B",
            "producer": {"retries": {"max_attempts": 1}},
        }],
        "trace": {"records": "none"},
    })


@pytest.mark.parametrize("lam", [800, 1200, 2000])
def test_throttle_rate_matches_poisson_theory(lam):
    results = run(lam)
    s = results.summary_dict
    expected = theory.poisson_throttle_rate(lam)
    # Statistical error: the throttled count per window has sd <= sqrt(lam), so over 300 windows
    # the rate's sd is at most sqrt(lam / 300) / lam (0.0017 at lam = 1200); 0.01 is > 5 sd.
    assert s["throttle_rate"] == pytest.approx(expected, abs=0.01)
    # no retries: every rejected record is dropped on its first attempt, none is re-offered
    assert s["put_attempts"] == s["records_produced"]
    assert s["records_dropped_max_attempts"] == s["records_throttled"]
    # the shard never accepts more than its limit in a window, and at lam >> 1000 it runs full
    per_window = results.metrics["IncomingRecords"]
    assert per_window.max() <= 1000
    if lam >= 2000:
        assert (per_window.iloc[1:-1] == 1000).all()


def test_theory_values_used_above():
    """The closed form itself: far below the limit nothing is throttled; far above it tends to the
    fluid value 1 - limit/lam; near the limit Poisson bursts throttle more than the fluid model."""
    assert theory.poisson_throttle_rate(800) < 1e-12
    assert theory.poisson_throttle_rate(2000) == pytest.approx(0.5, abs=1e-9)
    assert theory.poisson_throttle_rate(1200) == pytest.approx(1 / 6, abs=1e-6)
    assert theory.poisson_throttle_rate(1000) > theory.fluid_throttle_rate(1000, 1000) == 0.0
    # E[(N-L)+] at lam = L is about sqrt(L / (2 pi)) (normal approximation): 12.6 of 1000
    assert theory.poisson_throttle_rate(1000) == pytest.approx(math.sqrt(1000 / (2 * math.pi)) / 1000, rel=0.02)
