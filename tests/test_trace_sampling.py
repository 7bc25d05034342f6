"""The ``records`` trace's sample (:meth:`kinesim.tracing.RecordTrace.assign`): each record is
sampled with probability ``sample_rate``, independently, whatever the batches' sizes."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kinesim.tracing import RecordTrace


def sampled(rate: float, sizes: list[int], seed: int = 0) -> np.ndarray:
    """A 0/1 flag per record over consecutive batches of ``sizes`` records."""
    trace = RecordTrace(rate, 0, np.random.default_rng(seed))
    flags = []
    for m in sizes:
        picks = trace._sample(m)
        assert np.all(np.diff(picks) > 0) and (len(picks) == 0 or (picks[0] >= 0 and picks[-1] < m))
        flag = np.zeros(m, bool)
        flag[picks] = True
        flags.append(flag)
    return np.concatenate(flags) if flags else np.zeros(0, bool)


@settings(max_examples=30, deadline=None)
@given(rate=st.sampled_from([0.001, 0.05, 0.3, 0.9]), sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=20),
       seed=st.integers(0, 1000))
def test_sample_positions_are_sorted_and_inside_each_batch(rate, sizes, seed):
    flags = sampled(rate, sizes, seed)
    assert len(flags) == sum(sizes)


def test_sample_share_and_gaps_are_those_of_one_coin_per_record():
    """2 M records in batches of uneven sizes at rate 0.01: the count is Binomial(n, 0.01)
    (within 5 standard deviations) and the gaps between sampled records are geometric (the share
    of gaps of 1 is ``p`` and the mean gap ``1/p``, within 5 standard errors), so a batch edge
    changes nothing: the first records of the batches are sampled at rate ``p`` too."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 20_000, 200).tolist()
    p = 0.01
    flags = sampled(p, sizes, seed=7)
    n = len(flags)
    k = int(flags.sum())
    assert abs(k - n * p) < 5 * np.sqrt(n * p * (1 - p))
    firsts = np.cumsum([0] + sizes[:-1])
    firsts = firsts[firsts < n]
    assert flags[firsts].sum() <= 12  # Binomial(<= 200, 0.01): mean <= 2
    gaps = np.diff(np.flatnonzero(flags))
    assert abs(np.mean(gaps == 1) - p) < 5 * np.sqrt(p * (1 - p) / len(gaps))
    assert abs(gaps.mean() - 1 / p) < 5 * np.sqrt((1 - p) / p**2 / len(gaps))


def test_same_seed_same_sample_and_rate_one_takes_all():
    assert np.array_equal(sampled(0.2, [100, 7, 900], seed=5), sampled(0.2, [100, 7, 900], seed=5))
    trace = RecordTrace(1.0, 0, np.random.default_rng(0))
    assert len(trace._sample(50)) == 50
