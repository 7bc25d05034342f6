"""The one-pass compiled write window (:mod:`kinesim.writer_fused`, one producer without
aggregation) against the flush-by-flush replay (the definition) and against the numpy window path.

Every trace and the summary must be equal bit for bit, ``put_records_failed_calls`` included
against the numpy window path (both count failed calls the same way); against the replay that
count is left out, as in ``tests/test_writer_paths.py``.
"""
from __future__ import annotations

import pandas.testing as pdt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import kinesim
from kinesim.compiled import compiled
from kinesim.results import TRACES
from kinesim.simulation import Simulation
from tests.test_writer_paths import assert_equal_results

needs_numba = pytest.mark.skipif(compiled("compiled_window") is None, reason="numba is not installed")


def run(spec: dict, mode: str, monkeypatch):
    """Results and writer of one run: ``fused`` (compiled twins on), ``numpy`` (off) or ``replay``."""
    monkeypatch.setenv("KINESIM_NUMBA", "0" if mode == "numpy" else "1")
    sim = Simulation(kinesim.load_scenario(spec))
    if mode == "replay":
        sim.writer.fast = False
    return sim.run(), sim.writer


def one_fleet(retries: dict, **fleet) -> dict:
    spec = {"name": "fused", "duration": "10s", "seed": 11, "stream": {"shards": 3},
            "fleets": [{"name": "a", "sensors": 4000, "rate": "1/s", "record_size": "200B",
                        "producer": {"max_buffered_time": "100ms", "retries": retries}, **fleet}],
            "consumers": [{"name": "c", "poll_interval": "500ms"}], "trace": {"records": "all"}}
    return spec


def assert_identical(a, b):
    for name in TRACES:
        pdt.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    assert a.summary_dict == pytest.approx(b.summary_dict, nan_ok=True, rel=0, abs=0)


@needs_numba
@pytest.mark.parametrize("jitter", ["none", "full"])
@pytest.mark.parametrize("backoff", ["exponential", "constant", "none"])
def test_fused_window_equals_replay_and_numpy_window(backoff, jitter, monkeypatch):
    """Over the limit (4,000 records/s on 3 shards) with retries inside and across windows."""
    spec = one_fleet({"max_attempts": 4, "backoff": backoff, "base": "100ms", "max": "1s", "jitter": jitter})
    fused, writer = run(spec, "fused", monkeypatch)
    assert writer.windows_fused > 0 and writer.windows_fused == writer.windows_fast
    numpy, numpy_writer = run(spec, "numpy", monkeypatch)
    assert numpy_writer.windows_fused == 0
    replay, _ = run(spec, "replay", monkeypatch)
    assert fused["records_throttled"] > 0 and fused["records_dropped_max_attempts"] > 0
    assert_identical(fused, numpy)
    assert_equal_results(fused, replay)


@needs_numba
def test_fused_window_drops_old_retries_and_too_large_records(monkeypatch):
    """``record_ttl`` shorter than the retries' wait, and records over the maximum record size
    (lowered to 300 bytes): both drop reasons are counted and traced as the replay does."""
    spec = one_fleet({"max_attempts": 10, "backoff": "constant", "base": "400ms", "jitter": "none"},
                     record_size={"uniform": ["100B", "400B"]})
    spec["fleets"][0]["producer"]["record_ttl"] = "1s"
    spec["stream"].update(shards=1, limits={"max_record_size": "300B"})
    fused, writer = run(spec, "fused", monkeypatch)
    replay, _ = run(spec, "replay", monkeypatch)
    assert fused["records_dropped_record_ttl"] > 0 and fused["records_dropped_record_too_large"] > 0
    assert writer.windows_fused > 0
    assert_equal_results(fused, replay)


@needs_numba
def test_fused_window_gives_way_when_not_exact_or_periods_are_short(monkeypatch):
    """Large records (the byte limit binds before the record limit: not exact, so replayed) and
    half-second metrics periods (a window spans two periods: the numpy path): same results."""
    spec = one_fleet({"max_attempts": 3}, record_size="100KiB", sensors=40)
    spec["trace"]["period"] = "500ms"
    fused, writer = run(spec, "fused", monkeypatch)
    replay, _ = run(spec, "replay", monkeypatch)
    assert writer.windows_fused == 0 and writer.windows_replayed > 0
    assert_equal_results(fused, replay)
    spec = one_fleet({"max_attempts": 3})
    spec["trace"]["period"] = "500ms"
    short, writer = run(spec, "fused", monkeypatch)
    assert writer.windows_fused == 0 and writer.windows_fast > 0
    assert_identical(short, run(spec, "numpy", monkeypatch)[0])


@needs_numba
@pytest.mark.parametrize("jitter", ["none", "full"])
def test_fused_window_orders_old_retries_before_this_windows_retries(jitter, monkeypatch):
    """One shard four times over its limit and long backoffs: old retries fall due late in the
    window, after the shard is full, in the same flushes as this window's own retries. Per flush
    the old ones go first (the producer's queue order), which decides the jitter draws and the
    queue order of the next window."""
    spec = one_fleet({"max_attempts": 10, "backoff": "exponential", "base": "100ms", "max": "1s", "jitter": jitter})
    spec["stream"]["shards"] = 1
    fused, writer = run(spec, "fused", monkeypatch)
    replay, _ = run(spec, "replay", monkeypatch)
    assert writer.windows_fused > 0
    assert_equal_results(fused, replay)


@needs_numba
@settings(max_examples=12, deadline=None)
@given(shards=st.integers(1, 4), sensors=st.sampled_from([300, 1500, 4000]),
       buffered=st.sampled_from(["100ms", "250ms", "1s"]), max_attempts=st.integers(1, 6),
       backoff=st.sampled_from(["exponential", "constant", "none"]), jitter=st.sampled_from(["none", "full"]),
       ttl=st.sampled_from(["1s", "30s"]), size=st.sampled_from(["200B", {"uniform": ["10B", "2KiB"]}]),
       key=st.sampled_from(["sensor", "random", {"hot": {"keys": 1, "share": 0.5}}]), seed=st.integers(0, 50))
def test_fused_window_equals_replay_on_random_scenarios(shards, sensors, buffered, max_attempts, backoff, jitter, ttl,
                                                       size, key, seed):
    """Any mix of load, flush period, retry policy, record sizes and partition keys: the one-pass
    window and the flush-by-flush replay give the same traces."""
    spec = one_fleet({"max_attempts": max_attempts, "backoff": backoff, "base": "100ms", "max": "1s", "jitter": jitter},
                     sensors=sensors, record_size=size, partition_key=key)
    spec["fleets"][0]["producer"].update(max_buffered_time=buffered, record_ttl=ttl)
    spec.update(seed=seed, duration="6s")
    spec["stream"]["shards"] = shards
    with pytest.MonkeyPatch.context() as mp:
        fused, writer = run(spec, "fused", mp)
        assume(writer.windows_fused > 0)  # not when the byte limit binds in every window
        replay, _ = run(spec, "replay", mp)
    assert_equal_results(fused, replay)
