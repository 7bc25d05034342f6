"""Per-shard write limits: 1 MiB/s and 1,000 records/s (data + partition key), never exceeded.

Source: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html. The
``window`` model checks each one-second window; the ``token_bucket`` model holds at most ``burst``
seconds of capacity, so over any ``n`` consecutive one-second periods a shard accepts at most
``(burst + n)`` seconds' worth.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinesim
from kinesim.limits import WriteLimiter, accept_prefix, greedy_groups

MiB = 1024 * 1024
RECORDS = 1000


# ------------------------------------------------------------------ accept_prefix
def test_accept_prefix_hand_worked_example():
    # shard 0 holds rows 0, 2, 3 (100, 300, 400 B): the record limit (2) stops row 3.
    # shard 1 holds rows 1, 4 (200, 500 B): 200 + 500 > 600 B, so row 4 is rejected.
    shard = np.array([0, 1, 0, 0, 1])
    size = np.array([100, 200, 300, 400, 500])
    got = accept_prefix(shard, size, np.array([2.0, 5.0]), np.array([1000.0, 600.0]))
    assert got.tolist() == [True, True, True, False, False]


def test_accept_prefix_stops_at_the_first_record_that_does_not_fit():
    # 100 fits, 900 does not (1000 > 500), and the 50 behind it is rejected too: a prefix.
    got = accept_prefix(np.array([0, 0, 0]), np.array([100, 900, 50]), np.array([10.0]), np.array([500.0]))
    assert got.tolist() == [True, False, False]


def test_accept_prefix_exact_fit_and_no_capacity():
    shard = np.array([0, 0, 1, 1])
    size = np.array([250, 250, 10, 10])
    # shard 0: exactly 500 B available takes both; shard 1: no records left takes none.
    got = accept_prefix(shard, size, np.array([2.0, 0.0]), np.array([500.0, 1e9]))
    assert got.tolist() == [True, True, False, False]
    assert accept_prefix(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.array([1.0]), np.array([1.0])).tolist() == []


def test_accept_prefix_ignores_other_shards_order():
    # Interleaving shards does not change what each shard accepts.
    rng = np.random.default_rng(3)
    shard = rng.integers(0, 3, size=200)
    size = rng.integers(1, 50, size=200)
    avail_r, avail_b = np.array([30.0, 50.0, 1000.0]), np.array([1000.0, 1e9, 700.0])
    got = accept_prefix(shard, size, avail_r, avail_b)
    for s in range(3):
        rows = np.flatnonzero(shard == s)
        csum = np.cumsum(size[rows])
        expected = (np.arange(1, len(rows) + 1) <= avail_r[s]) & (csum <= avail_b[s])
        assert got[rows].tolist() == expected.tolist()


# ------------------------------------------------------------------ greedy_groups
@pytest.mark.parametrize("size, max_bytes, max_count, breaks, expected", [
    ([3, 3, 3, 3], 6, None, None, [0, 0, 1, 1]),
    ([2, 3, 5], 5, None, None, [0, 0, 1]),          # exact fit closes a group
    ([1] * 7, 100, 3, None, [0, 0, 0, 1, 1, 1, 2]),  # the count limit (500 records per PutRecords)
    ([2, 10, 2], 5, None, None, [0, 1, 2]),         # an oversize item gets a group of its own
    ([4, 4, 4], 5, 2, None, [0, 1, 2]),
    ([1, 1, 1, 1], 100, None, [True, False, True, False], [0, 0, 1, 1]),  # forced starts (shard changes)
    ([1, 1, 1, 1, 1], 2, None, [True, False, False, True, False], [0, 0, 1, 2, 2]),
    ([], 5, None, None, []),
])
def test_greedy_groups_hand_worked(size, max_bytes, max_count, breaks, expected):
    b = None if breaks is None else np.array(breaks)
    got = greedy_groups(np.array(size, dtype=np.int64), max_bytes, max_count, breaks=b)
    assert got.tolist() == expected


def test_greedy_groups_respects_limits_and_is_greedy():
    rng = np.random.default_rng(8)
    size = rng.integers(1, 3000, size=5000)
    g = greedy_groups(size, 5 * 1024, 7)
    assert (np.diff(g) >= 0).all() and g[0] == 0 and (np.diff(g) <= 1).all()
    totals = np.bincount(g, weights=size)
    counts = np.bincount(g)
    assert (counts <= 7).all()
    assert (totals <= 5 * 1024).all()
    # greedy: the next item would not have fitted in the previous group
    first_of_next = np.flatnonzero(np.diff(g)) + 1
    assert ((totals[:-1] + size[first_of_next] > 5 * 1024) | (counts[:-1] == 7)).all()


# ------------------------------------------------------------------ WriteLimiter
def test_window_limiter_resets_each_second():
    lim = WriteLimiter(1, 1000, MiB, "window")
    r, b = lim.available(0.3)
    assert (r[0], b[0]) == (1000, MiB)
    lim.consume(np.array([1000.0]), np.array([5000.0]))
    assert lim.available(0.99)[0][0] == 0
    assert lim.available(1.0)[0][0] == 1000  # a new window on the whole second


def test_token_bucket_refills_continuously_up_to_burst():
    lim = WriteLimiter(1, 1000, MiB, "token_bucket", burst=2.0)
    assert lim.available(0.0)[0][0] == 2000  # starts full: burst × rate
    lim.consume(np.array([2000.0]), np.array([0.0]))
    assert lim.available(0.25)[0][0] == pytest.approx(250)
    assert lim.available(10.0)[0][0] == pytest.approx(2000)  # capped at the burst


# ------------------------------------------------------------------ the property
sizes = st.one_of(
    st.sampled_from(["10B", "100B", "1KiB", "20KiB", "100KiB", "300KiB"]),
    st.builds(lambda m, s: {"distribution": "lognormal", "mean": f"{m}B", "sigma": s},
              st.sampled_from([50, 500, 5000, 60000]), st.sampled_from([0.0, 0.5, 1.5])),
    st.builds(lambda lo, hi: {"uniform": [f"{lo}B", f"{hi}B"]}, st.sampled_from([1, 100]), st.sampled_from([2000, 200000])),
)
partition_keys = st.one_of(
    st.sampled_from(["sensor", "random"]),
    st.builds(lambda k, s: {"hot": {"keys": k, "share": s}}, st.integers(1, 3), st.sampled_from([0.2, 0.8])),
)
fleets = st.builds(
    lambda i, sensors, rate, arrival, size, pk, buffered, aggregation, attempts: {
        "name": f"f{i}", "sensors": sensors, "rate": rate, "arrival": arrival, "record_size": size,
        "partition_key": pk,
        "producer": {"max_buffered_time": buffered, "aggregation": aggregation,
                     "retries": {"max_attempts": attempts, "backoff": "exponential", "base": "50ms"}},
    },
    st.just(0), st.integers(1, 2500), st.sampled_from(["0.5/s", "1/s", "3/s"]),
    st.sampled_from(["poisson", "periodic", {"bursty": {"on": "500ms", "off": "1500ms"}}]),
    sizes, partition_keys, st.sampled_from(["20ms", "100ms", "350ms", "1s"]), st.booleans(), st.integers(1, 4),
)


@st.composite
def scenarios(draw):
    n_fleets = draw(st.integers(1, 2))
    fl = [dict(draw(fleets), name=f"f{i}") for i in range(n_fleets)]
    model = draw(st.sampled_from(["window", "token_bucket"]))
    limits = {"write_model": model}
    if model == "token_bucket":
        limits["burst"] = draw(st.sampled_from(["500ms", "1s", "2s"]))
    return {
        "name": "limits-property",
        "duration": draw(st.sampled_from(["3s", "4s", "6s"])),
        "seed": draw(st.integers(0, 10_000)),
        "stream": {"shards": draw(st.integers(1, 4)), "limits": limits},
        "fleets": fl,
        "trace": {"records": "none", "period": "1s"},
    }


def _burst_s(limits: dict) -> float:
    return {"500ms": 0.5, "1s": 1.0, "2s": 2.0}[limits["burst"]]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_accepted_writes_never_exceed_the_shard_limits(scenario):
    results = kinesim.simulate(scenario)
    m = results.metrics
    limits = scenario["stream"]["limits"]
    for _, per_shard in m.groupby("ShardId", observed=True):
        recs = per_shard["IncomingRecords"].to_numpy()
        nbytes = per_shard["IncomingBytes"].to_numpy()
        if limits["write_model"] == "window":
            assert recs.max() <= RECORDS
            assert nbytes.max() <= MiB
        else:
            # Over periods i..j-1 (j - i whole seconds) a bucket of depth burst accepts at most
            # (burst + j - i) seconds of the rate: S_j - S_i - rate*(j - i) <= burst*rate.
            burst = _burst_s(limits)
            for values, rate in ((recs, RECORDS), (nbytes, MiB)):
                slack = np.concatenate(([0.0], np.cumsum(values))) - rate * np.arange(len(values) + 1)
                worst = np.max(slack - np.minimum.accumulate(slack))
                assert worst <= burst * rate + 1e-6
    # the producer's view agrees with the stream's
    s = results.summary_dict
    assert s["kinesis_records_accepted"] == int(m["IncomingRecords"].sum())
    assert s["records_produced"] == s["records_accepted"] + s["records_dropped"] + s["records_buffered"]


@pytest.mark.parametrize("size, limit_hit", [("10B", "records"), ("20KiB", "bytes")])
def test_an_overloaded_shard_runs_exactly_at_the_limit(size, limit_hit):
    """The property above is not vacuous: overload fills each window to the limit that binds."""
    results = kinesim.simulate({
        "name": "at-the-limit", "duration": "5s", "seed": 2,
        "fleets": [{"name": "f", "sensors": 2000, "rate": "1/s", "arrival": "periodic", "record_size": size,
                    "producer": {"max_buffered_time": "50ms"}}],
        "trace": {"records": "none"},
    })
    m = results.metrics.iloc[1:]  # full windows
    if limit_hit == "records":
        assert (m["IncomingRecords"] == RECORDS).all()
    else:
        # 20 KiB + key per record: 51 records fit (52 would exceed 1 MiB)
        per_record = 20 * 1024 + len("f-0000")
        assert (m["IncomingBytes"] <= MiB).all()
        assert (m["IncomingBytes"] > MiB - per_record - 8).all()
    assert results["records_throttled"] > 0


def test_token_bucket_accepts_the_burst_plus_the_refill():
    """Offered twice the record limit (100 records per 50 ms flush), a bucket of depth 1 s,
    full at 0 and first drawn at the first flush (0.05 s), accepts its 1,000 tokens plus 1,000
    records/s of refill from 0.05 s to the last flush (4.95 s): 1,000 + 4,900 records. The
    first second takes 19 full flushes (1,900 records) before the bucket is empty."""
    results = kinesim.simulate({
        "name": "bucket", "duration": "5s", "seed": 4,
        "stream": {"limits": {"write_model": "token_bucket", "burst": "1s"}},
        "fleets": [{"name": "f", "sensors": 2000, "rate": "1/s", "arrival": "periodic", "record_size": "10B",
                    "producer": {"max_buffered_time": "50ms", "retries": {"max_attempts": 1}}}],
        "trace": {"records": "none"},
    })
    accepted = results.metrics["IncomingRecords"].sum()
    assert accepted == pytest.approx(1000 + 4900, abs=2)
    assert results.metrics["IncomingRecords"].iloc[0] == pytest.approx(1900, abs=2)
    assert results["records_accepted"] == accepted
    # after the burst is spent the shard runs at the refill rate
    assert results.metrics["IncomingRecords"].iloc[2:].between(999, 1001).all()
