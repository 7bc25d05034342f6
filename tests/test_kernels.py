"""The compiled twins (:mod:`kinesim._kernels`) equal their numpy versions on random inputs, and
the in-window retry chain (:mod:`kinesim.retry_window`) follows the retry policy's arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinesim.compiled import compiled
from kinesim.errors import ScenarioError
from kinesim.retry_window import DROPPED_MAX_ATTEMPTS, DROPPED_TTL, QUEUED, RetryPolicy, retry_chain

needs_numba = pytest.mark.skipif(compiled("compiled_chain") is None, reason="numba is not installed")



def random_case(seed: int, n: int, n_flush: int, aggregation: bool):
    rng = np.random.default_rng(seed)
    times = np.round(np.arange(n_flush) * (1.0 / n_flush) + 7.0, 9)
    flush = np.sort(rng.integers(0, n_flush, n))
    band = np.where(rng.random(n) < 0.3, 0, 2)
    shard = rng.integers(0, 4, n)
    # within a flush: due retries (band 0) first, or by shard then band with aggregation
    order = np.lexsort((band, shard, flush)) if aggregation else np.lexsort((band, flush))
    event = times[flush] - rng.random(n) * 3.0
    attempts = np.where(band == 0, rng.integers(1, 4, n), 0).astype(np.int32)
    return flush[order], band[order], shard[order], event[order], attempts[order], times


@needs_numba
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 300), n_flush=st.integers(1, 12), aggregation=st.booleans(),
       backoff=st.sampled_from([0, 1, 2]), jitter=st.booleans(), max_attempts=st.integers(1, 6),
       ttl=st.sampled_from([0.05, 0.5, 30.0]))
def test_compiled_chain_equals_numpy_chain(seed, n, n_flush, aggregation, backoff, jitter, max_attempts, ttl):
    case = random_case(seed, n, n_flush, aggregation)
    policy = RetryPolicy(max_attempts, backoff, 0.02, 0.3, jitter, ttl)
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    a = retry_chain(*case, policy, aggregation, rng_a, compiled=True)
    b = retry_chain(*case, policy, aggregation, rng_b, compiled=False)
    for name, x, y in zip(a._fields, a, b):
        assert x.dtype.kind == y.dtype.kind, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert rng_a.random() == rng_b.random()  # both leave the generator at the same point


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_constant_backoff_retries_every_other_flush_until_attempts_run_out(compiled):
    """Flushes every 0.1 s and a constant 0.15 s backoff: a record rejected at flush 0 is re-sent
    at flushes 2, 4 (attempts 2, 3) and dropped there with max_attempts 3; one rejected at flush 7
    is re-sent at 9 and then queued for the next window with ready time 9.15 (+7 s offset)."""
    times = np.round(7.0 + np.arange(10) * 0.1, 9)
    case = (np.array([0, 7]), np.array([2, 2]), np.array([0, 0]), np.array([6.95, 7.65]),
            np.zeros(2, np.int32), times)
    out = retry_chain(*case, RetryPolicy(3, 1, 0.15, 5.0, False, 30.0), False, None, compiled=compiled)
    assert out.fate.tolist() == [DROPPED_MAX_ATTEMPTS, QUEUED]
    assert out.attempts.tolist() == [3, 2]
    assert out.when[0] == 4
    assert out.queue.tolist() == [1]
    assert out.ready[1] == pytest.approx(7.9 + 0.15)
    assert out.sent_flush.tolist() == [2, 4, 9] and out.sent_row.tolist() == [0, 0, 1]
    assert out.retried.tolist() == [1, 0, 1, 0, 0, 0, 0, 1, 0, 1]


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_a_retry_older_than_record_ttl_is_dropped_when_due(compiled):
    times = np.round(7.0 + np.arange(10) * 0.1, 9)
    case = (np.array([0]), np.array([2]), np.array([0]), np.array([6.8]), np.zeros(1, np.int32), times)
    out = retry_chain(*case, RetryPolicy(5, 1, 0.25, 5.0, False, 0.4), False, None, compiled=compiled)
    # rejected at 7.0 (age 0.2), due at 7.3 (age 0.5 > 0.4): dropped at flush 3 without a re-send
    assert out.fate.tolist() == [DROPPED_TTL] and out.when.tolist() == [3]
    assert len(out.sent_row) == 0 and out.attempts.tolist() == [1]


@needs_numba
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 400), shards=st.integers(1, 6))
def test_compiled_accept_prefix_equals_numpy(seed, n, shards):
    from kinesim.limits import accept_prefix

    rng = np.random.default_rng(seed)
    shard = rng.integers(0, shards, n)
    size = rng.integers(1, 50_000, n)
    avail_r = rng.integers(0, 120, shards).astype(float)
    avail_b = rng.integers(0, 2_000_000, shards).astype(float)
    a = accept_prefix(shard, size, avail_r, avail_b, compiled=True)
    b = accept_prefix(shard, size, avail_r, avail_b, compiled=False)
    np.testing.assert_array_equal(a, b)


def test_only_large_runs_use_the_compiled_twins_unless_told(monkeypatch):
    from kinesim.compiled import LARGE_RUN_RECORDS, use_kernels

    monkeypatch.delenv("KINESIM_NUMBA", raising=False)
    assert not use_kernels(LARGE_RUN_RECORDS - 1)
    assert use_kernels(LARGE_RUN_RECORDS) == (compiled("compiled_chain") is not None)
    monkeypatch.setenv("KINESIM_NUMBA", "0")
    assert not use_kernels(10 * LARGE_RUN_RECORDS)
    if compiled("compiled_chain") is not None:
        monkeypatch.setenv("KINESIM_NUMBA", "1")
        assert use_kernels(1)
    monkeypatch.setenv("KINESIM_NUMBA", "yes")
    with pytest.raises(ScenarioError, match="KINESIM_NUMBA: must be 0 .* got 'yes'"):
        use_kernels(1)


def test_an_unreadable_kernel_cache_is_discarded_and_compiled_again(monkeypatch):
    """A numba cache file cut short used to end the run in an internal error: the first call now
    flushes every kernel's cache, warns and calls again; other errors still surface."""
    import pickle
    import types

    import kinesim.compiled as cc

    def from_cache():  # an error raised inside numba's cache reader
        exec(compile("raise pickle.UnpicklingError('invalid load key')", "/x/numba/core/caching.py", "exec"),
             {"pickle": pickle})

    class Kernel:
        def __init__(self, fail):
            self.calls, self.fail, self.flushed = 0, fail, 0
            self._cache = types.SimpleNamespace(flush=self.flush)

        def flush(self):
            self.flushed += 1

        def __call__(self, x):
            self.calls += 1
            if self.fail == "bug":
                raise ValueError("a bug")
            if self.calls <= self.fail:
                from_cache()
            return 2 * x

    broken, other = Kernel(1), Kernel(0)
    monkeypatch.setattr(cc, "_LOADED", {"module": types.SimpleNamespace(k=broken, j=other)})
    with pytest.warns(RuntimeWarning, match="cache of the compiled kernels was unreadable"):
        assert cc.compiled("k")(21) == 42
    assert (broken.calls, broken.flushed, other.flushed) == (2, 1, 1)
    assert cc.compiled("k") is broken  # later calls go straight to the kernel
    monkeypatch.setattr(cc, "_LOADED", {"module": types.SimpleNamespace(k=Kernel("bug"))})
    with pytest.raises(ValueError, match="a bug"):
        cc.compiled("k")(1)


@needs_numba
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sensors=st.integers(1, 3_000), rate=st.sampled_from(["1/s", "0.2/s", "7/s"]),
       shape=st.sampled_from(["flat", "profile", "bursty", "silent"]), pending=st.integers(0, 50))
def test_compiled_new_records_equal_generate(seed, sensors, rate, shape, pending):
    """Fleet.generate_after (the compiled kernel) gives RecordBatch.concat([pending,
    generate(t0, t1)]) bit for bit over consecutive windows, and leaves the fleet's generator
    where generate leaves it; with rate profiles and bursts (several segments in a window) too."""
    import kinesim
    from kinesim.batch import COLUMNS, RecordBatch
    from kinesim.fleet import Fleet

    spec = {"name": "k", "sensors": sensors, "rate": rate, "record_size": "300B"}
    if shape == "profile":
        spec["profile"] = [{"at": "1.5s", "factor": 3}, {"at": "2.25s", "factor": 0.5}]
    if shape == "bursty":
        spec["arrival"] = {"bursty": {"on": "0.3s", "off": "0.45s"}}
    if shape == "silent":
        spec["profile"] = [{"at": "1s", "factor": 0}]
    scenario = kinesim.load_scenario({"name": "k", "duration": "5s", "stream": {"shards": 2}, "fleets": [spec]})
    a, b = (Fleet(scenario.fleets[0], 0, 5.0, np.random.default_rng(seed)) for _ in range(2))
    rows = np.random.default_rng(seed + 1)
    old = a.generate(0.0, 0.9)  # a retry buffer: earlier records, some attempts and backoffs
    old = old.take(np.arange(min(pending, len(old)))).replace(attempts=np.full(min(pending, len(old)), 2, np.int32))
    b.generate(0.0, 0.9)
    old = old.replace(ready_time=old.event_time + rows.random(len(old)), trace=np.arange(len(old)))
    for t0, t1 in [(0.9, 1.0), (1.0, 2.0), (2.0, 3.1), (3.1, 3.1), (3.1, 4.0)]:
        want = RecordBatch.concat([old, a.generate(t0, t1)])
        got, count = b.generate_after(old, t0, t1, compiled("compiled_new_records"))
        assert count == len(got) - len(old) and len(got) == len(want)
        for name in COLUMNS:
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
            assert getattr(got, name).dtype == getattr(want, name).dtype
    assert a.rng.random() == b.rng.random()
