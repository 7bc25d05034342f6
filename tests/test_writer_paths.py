"""The window-at-once write path (:mod:`kinesim.writer`) against its definition, the flush-by-flush
replay (:meth:`kinesim.producer.Producer.flush`), on cases the fast path claims to be exact for.

Known differences, left out on purpose: the fast path counts ``put_records_failed_calls`` as if the
accepted records were a prefix of each flush, and with KPL aggregation it packs the retries of
rejected records that fall in the same window into aggregates of their own, so its counts of
Kinesis records (``kinesis_records_sent``, ``WriteProvisionedThroughputExceeded``) can differ
slightly; every user record's fate is the same.
"""
from __future__ import annotations

import pandas.testing as pdt
import pytest

import kinesim
from kinesim.compiled import compiled
from kinesim.results import TRACES
from kinesim.simulation import Simulation


def both_paths(spec: dict):
    scenario = kinesim.load_scenario(spec)
    fast = Simulation(scenario)
    fast_results = fast.run()
    replay = Simulation(scenario)
    replay.writer.fast = False
    replay_results = replay.run()
    assert fast.writer.windows_fast > 0  # the fast path really ran
    assert replay.writer.windows_fast == 0
    return fast_results, replay_results


def per_shard_rank(records):
    """Sequence numbers are unique in the stream and increase per shard; only their order within
    a shard is meaningful (the fast path numbers a window's flushes of all fleets together)."""
    out = records.copy()
    out["SequenceNumber"] = records.groupby("ShardId")["SequenceNumber"].rank(method="dense").astype("Int64")
    return out


def assert_equal_results(a, b):
    for name in TRACES:
        left, right = getattr(a, name), getattr(b, name)
        if name == "producers":
            left, right = left.drop(columns="put_records_failed_calls"), right.drop(columns="put_records_failed_calls")
        if name == "records":
            left, right = per_shard_rank(left), per_shard_rank(right)
        pdt.assert_frame_equal(left, right, check_exact=True, obj=name)
    assert a.summary_dict == pytest.approx(b.summary_dict, nan_ok=True)


def fleets(max_buffered_time: str, retries: dict, aggregation: bool):
    return [
        {"name": "a", "sensors": 2600, "rate": "1/s", "record_size": "100B",
         "producer": {"max_buffered_time": max_buffered_time, "retries": retries}},
        {"name": "b", "sensors": 3000, "rate": "2/s", "record_size": "200B", "partition_key": "random",
         "producer": {"max_buffered_time": max_buffered_time, "aggregation": aggregation, "retries": retries}},
    ]


@pytest.mark.parametrize("aggregation", [False, True])
def test_fast_path_equals_replay_without_retries(aggregation):
    a, b = both_paths({
        "name": "paths", "duration": "8s", "seed": 3, "stream": {"shards": 2},
        "fleets": fleets("100ms", {"max_attempts": 1}, aggregation),
        "consumers": [{"name": "c", "poll_interval": "1s"}], "trace": {"records": "all"},
    })
    assert a["records_throttled"] > 0
    assert_equal_results(a, b)


@pytest.mark.parametrize("aggregation", [False, True])
def test_zero_backoff_retries_wait_for_the_next_flush(aggregation):
    """``backoff: none`` retries a throttled record at the producer's next flush, not again in the
    flush that rejected it (which would spend every attempt at once). One flush per second keeps
    every retry in the next window, where both paths queue them alike."""
    a, b = both_paths({
        "name": "paths", "duration": "12s", "seed": 3, "stream": {"shards": 2},
        "fleets": fleets("1s", {"max_attempts": 3, "backoff": "none"}, aggregation),
        "consumers": [{"name": "c", "poll_interval": "1s"}], "trace": {"records": "all"},
    })
    assert a["records_dropped_max_attempts"] > 0
    assert_equal_results(a, b)
    # each attempt is one flush (1 s) after the previous one
    rec = a.records
    dropped = rec[rec["drop_reason"] == "max_attempts"]
    assert (dropped["attempts"] == 3).all()
    accepted = rec[rec["ShardId"].notna()]
    wait = (accepted["arrival_time"] - accepted["event_time"]).dt.total_seconds()
    assert (wait < accepted["attempts"] + 1e-6).all()
    assert (wait > accepted["attempts"] - 1 - 1e-6).all()


@pytest.fixture(params=["numba", "numpy"])
def kernels(request, monkeypatch):
    """Run with the compiled twins (:mod:`kinesim._kernels`) and with their numpy versions."""
    if request.param == "numba" and compiled("compiled_chain") is None:
        pytest.skip("numba is not installed")
    monkeypatch.setenv("KINESIM_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


@pytest.mark.parametrize("jitter", ["none", "full"])
@pytest.mark.parametrize("backoff", ["exponential", "constant", "none"])
@pytest.mark.parametrize("aggregation", [False, True])
def test_retries_inside_the_window_match_flush_by_flush(backoff, aggregation, jitter, kernels):
    """Ten flushes per window and retries that fall inside the window and after it: every record
    has the same fate, attempts, shard and order, and retries spill into the next window in the
    order flush-by-flush sending queues them. With jitter, both paths draw the same backoffs: the
    window's retries are replayed flush by flush (:mod:`kinesim.retry_window`)."""
    a, b = both_paths({
        "name": "paths", "duration": "10s", "seed": 5, "stream": {"shards": 2},
        "fleets": fleets("100ms", {"max_attempts": 5, "backoff": backoff, "base": "100ms", "max": "1s",
                                   "jitter": jitter}, aggregation),
        "consumers": [{"name": "c", "poll_interval": "1s"}], "trace": {"records": "all"},
    })
    assert a["records_throttled"] > 0 and a["records_dropped_max_attempts"] > 0
    if not aggregation:
        assert_equal_results(a, b)
        return
    pdt.assert_frame_equal(per_shard_rank(a.records), per_shard_rank(b.records), check_exact=True)
    kinesis_counts = ["put_records_failed_calls", "put_records_calls", "kinesis_records_sent"]
    pdt.assert_frame_equal(a.producers.drop(columns=kinesis_counts), b.producers.drop(columns=kinesis_counts))
    assert a["kinesis_records_sent"] == pytest.approx(b["kinesis_records_sent"], rel=0.01)


@pytest.mark.parametrize("dt", [0.1, 0.3, 1 / 3, 0.001, 0.7, 1.0, 1.5, 7.0, 600.0, 0.123456789])
@pytest.mark.parametrize("duration", [12.34, 3600.0, 86_400.0])
def test_flush_clock_slices_the_flush_times(dt, duration):
    """FlushClock (blocks of flushes, sliced) gives flush_times' flushes in every window, and the
    flush before the first, also after a jump ahead (skipped idle windows) and across blocks."""
    import math

    import numpy as np

    from kinesim.writer import FlushClock, tick

    def flush_times(dt, w, duration):  # the definition: flushes k >= 1 in [w, w+1) and before duration
        k = np.arange(max(1, math.floor(w / dt) - 1), math.ceil((w + 1) / dt) + 2)
        t = tick(k, dt)
        sel = (t >= w) & (t < w + 1) & (t < duration - 1e-9)
        k, t = k[sel], t[sel]
        return (int(k[0]) if len(k) else 0), t

    clock = FlushClock(dt, duration)
    last = int(duration) + 1
    windows = list(range(min(last, 300))) + list(range(last // 2, min(last, last // 2 + 50))) + [last - 1, last]
    for w in windows:
        k0, times = flush_times(dt, w, duration)
        got, before = clock.window(w)
        assert np.array_equal(got, times)
        assert before == (float(tick(k0 - 1, dt)) if len(times) else 0.0)
