"""Polling consumers against queueing closed forms and the documented GetRecords limits.

* A worker slower than arrivals: the backlog grows at ``lambda - mu`` records/s, with ``mu`` from
  :func:`kinesim.theory.polling_service_rate`.
* A worker that keeps up: mean arrival-to-read delay ``(poll_interval + busy) / 2``
  (:func:`kinesim.theory.mean_polling_delay`).
* GetRecords: 5 calls/s per shard shared by all consumers
  (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html).
* Retention: records older than the retention period are trimmed; a consumer that had not read
  them counts them in ``records_expired``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import kinesim
from kinesim import theory
from kinesim.batch import RecordBatch
from kinesim.metrics import PeriodGrid, ShardMetrics
from kinesim.scenario import Stream as StreamSpec
from kinesim.stream import Stream

DAY = 24 * 3600


def seconds(series, origin):
    return (series - origin).dt.total_seconds().to_numpy()


# ------------------------------------------------------------------ slow consumer
def test_backlog_of_a_slow_consumer_grows_at_lambda_minus_mu():
    lam, duration = 500.0, 300
    per_record, poll, max_records = 0.002, 0.2, 100
    mu = theory.polling_service_rate(per_record, 0.0, poll, max_records)
    assert mu == pytest.approx(250.0)
    results = kinesim.simulate({
        "name": "slow-consumer", "duration": f"{duration}s", "seed": 1,
        "fleets": [{"name": "f", "sensors": int(lam), "rate": "1/s", "arrival": "poisson", "record_size": "20B"}],
        "consumers": [{"name": "c", "poll_interval": f"{poll}s", "max_records": max_records,
                       "processing_time": {"per_record": f"{per_record}s"}}],
        "trace": {"records": "none"},
    })
    c = results.consumers
    t = seconds(c["timestamp"], c["timestamp"].iloc[0])
    backlog = c["backlog_records"].to_numpy()
    warm = t >= 20
    slope = np.polyfit(t[warm], backlog[warm], 1)[0]
    assert slope == pytest.approx(theory.backlog_growth_rate(lam, mu), rel=0.02)
    # the worker runs at its full service rate the whole time (minus its start phase < poll)
    processed = results["consumers.c.records_processed"]
    assert processed / duration == pytest.approx(mu, rel=0.01)
    # unread records are still held: accepted = processed + backlog
    assert results["records_accepted"] == processed + results["consumers.c.backlog_records"]
    # 2.5 GetRecords calls/s stay under the 5 calls/s limit
    assert results["read_throttled_calls"] == 0


# ------------------------------------------------------------------ a consumer that keeps up
@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("per_batch", [0.0, 0.5])
def test_mean_polling_delay_of_a_consumer_that_keeps_up(shards, per_batch):
    """Arrival-to-processed delay with no per-record time: the wait for the next GetRecords call.

    Producers flush every 10 ms, so arrivals sit on a 10 ms grid: a worker's delays are its phase
    modulo 10 ms plus multiples of 10 ms, biasing the mean by at most 1%. ``per_batch`` lengthens
    the cycle to ``poll_interval + per_batch`` (the per-batch time is spent after the records)."""
    poll = 1.0
    results = kinesim.simulate({
        "name": "keeps-up", "duration": "60s", "seed": 7, "stream": {"shards": shards},
        "fleets": [{"name": "f", "sensors": 200, "rate": "1/s", "arrival": "poisson", "record_size": "20B",
                    "producer": {"max_buffered_time": "10ms"}}],
        "consumers": [{"name": "c", "poll_interval": f"{poll}s",
                       "processing_time": {"per_record": 0, "per_batch": f"{per_batch}s"}}],
        "trace": {"records": "all"},
    })
    rec = results.records
    read = rec["processed_time.c"].notna()
    assert read.sum() > 10_000
    delay = (rec.loc[read, "processed_time.c"] - rec.loc[read, "arrival_time"]).dt.total_seconds()
    cycle = poll + per_batch
    assert delay.mean() == pytest.approx(theory.mean_polling_delay(poll, per_batch), rel=0.05)
    assert delay.min() >= 0
    assert delay.max() <= cycle + 1e-6  # every record is read by the first call after it arrived
    # only the records that arrived after each worker's last call are still unread
    unread = (~read).sum()
    assert unread <= 200 * cycle * 1.5 + 50
    assert results["read_throttled_calls"] == 0


def test_latency_quantiles_add_the_producer_buffering():
    """Event-to-processed latency = producer buffering, uniform on [0, a] (a = 100 ms flushes),
    plus the wait for the next poll, uniform on [0, b]. A poll interval of b = 970 ms is not a
    multiple of the flush grid, so the polls sweep every phase of it. The sum of the two uniforms
    has a trapezoid density: median (a + b) / 2, and P(S > s) = (a + b - s)**2 / (2ab) in the top
    corner, so the 99th percentile is a + b - sqrt(0.02 ab)."""
    a, b = 0.1, 0.97
    results = kinesim.simulate({
        "name": "latency", "duration": "60s", "seed": 3, "stream": {"shards": 4},
        "fleets": [{"name": "f", "sensors": 200, "rate": "1/s", "arrival": "poisson", "record_size": "20B",
                    "producer": {"max_buffered_time": f"{a}s"}}],
        "consumers": [{"name": "c", "poll_interval": f"{b}s"}],
        "trace": {"records": "none"},
    })
    assert results["consumers.c.latency_p50_s"] == pytest.approx((a + b) / 2, rel=0.03)
    assert results["consumers.c.latency_p99_s"] == pytest.approx(a + b - (0.02 * a * b) ** 0.5, rel=0.03)


# ------------------------------------------------------------------ GetRecords limits
def read_limit_run(consumers: int):
    return kinesim.simulate({
        "name": "read-limits", "duration": "30s", "seed": 11, "stream": {"shards": 1},
        "fleets": [{"name": "f", "sensors": 20, "rate": "1/s", "record_size": "20B"}],
        "consumers": [{"name": f"app{i}", "poll_interval": "1s"} for i in range(consumers)],
        "trace": {"records": "none"},
    })


@pytest.mark.parametrize("consumers", [1, 2, 3, 4, 5])
def test_up_to_five_consumers_polling_once_a_second_are_not_throttled(consumers):
    results = read_limit_run(consumers)
    assert results["read_throttled_calls"] == 0
    assert results.metrics["ReadProvisionedThroughputExceeded"].sum() == 0
    # every application read everything that arrived before its last call
    for i in range(consumers):
        assert results[f"consumers.app{i}.records_processed"] > 0.9 * results["records_accepted"]


def test_six_consumers_polling_once_a_second_exceed_five_calls_per_second():
    """Six workers each call once a second at their own phase: every one-second window sees six
    calls and the 5 calls/s limit throttles exactly one of them (a throttled worker waits one
    poll_interval and comes back at the same phase), so 30 windows give 30 throttled calls."""
    results = read_limit_run(6)
    throttled = results["read_throttled_calls"]
    assert throttled > 0
    assert throttled == pytest.approx(30, abs=1)
    assert results.metrics["ReadProvisionedThroughputExceeded"].sum() == throttled
    assert results["get_records_calls"] == pytest.approx(6 * 30, abs=6)
    # served calls never exceed 5 in any one-second window
    served = results["get_records_calls"] - throttled
    assert served <= 5 * 30


def test_consumers_share_the_two_mib_per_second_read_budget():
    """One shard written at 0.88 MiB/s (90 sensors × 10 KiB + key, periodic), read in full by each
    consumer once a second. Two consumers need 1.76 MiB/s: no call is throttled. Three need 2.6
    MiB/s, over the shared 2 MiB/s: calls are throttled and the shard serves about its limit.
    A call may return up to 10 MiB, after which the next calls are throttled until the average is
    back under 2 MiB/s, so over T seconds at most 2 MiB × T plus one 10 MiB call is served."""
    MiB, duration = 1024 * 1024, 60

    def run(k):
        return kinesim.simulate({
            "name": "read-bytes", "duration": f"{duration}s", "seed": 1, "stream": {"shards": 1},
            "fleets": [{"name": "f", "sensors": 90, "rate": "1/s", "arrival": "periodic", "record_size": "10KiB"}],
            "consumers": [{"name": f"c{i}", "poll_interval": "1s"} for i in range(k)],
            "trace": {"records": "none"},
        })

    two = run(2)
    assert two["read_throttled_calls"] == 0
    assert two.metrics["OutgoingBytes"].sum() == pytest.approx(2 * two.metrics["IncomingBytes"].sum(), rel=0.02)
    three = run(3)
    assert three["read_throttled_calls"] > 0
    assert three.metrics["ReadProvisionedThroughputExceeded"].sum() == three["read_throttled_calls"]
    served = three.metrics["OutgoingBytes"].sum()
    assert served <= 2 * MiB * duration + 10 * MiB + 2 * MiB
    assert served >= 0.95 * 2 * MiB * duration
    assert three.metrics["OutgoingBytes"].max() <= 10 * MiB + 2 * MiB


# ------------------------------------------------------------------ retention
def _batch(event_time: np.ndarray, size: int = 100) -> RecordBatch:
    n = len(event_time)
    return RecordBatch(
        event_time=event_time, fleet=np.zeros(n, np.int16), sensor=np.arange(n, dtype=np.int64),
        key=np.arange(n, dtype=np.int64),
        size=np.full(n, size, np.int64), attempts=np.zeros(n, np.int32), ready_time=event_time,
        trace=np.full(n, -1, np.int64),
    )


def test_get_records_skips_records_older_than_the_retention_period():
    grid = PeriodGrid(2 * DAY, 60.0)
    stream = Stream(StreamSpec(shards=1, retention="24h"), ShardMetrics(grid, 1))
    users = _batch(np.zeros(10))
    n = len(users)
    stream.put(10.0, users, np.arange(n), np.zeros(n, np.int64), users.size)  # arrive at t = 10 s
    users2 = _batch(np.full(5, 3600.0))
    stream.put(3600.0, users2, np.arange(5), np.zeros(5, np.int64), users2.size)  # arrive at 1 h
    shard = stream.shards[0]
    # within the retention period everything is returned
    res = stream.get_records(shard, 0, DAY + 9.0, 10_000)
    assert (res.throttled, res.expired_start, res.start, res.end) == (False, 0, 0, 15)
    # after it, the first 10 records are trimmed: the call starts behind them
    res = stream.get_records(shard, 0, DAY + 11.0, 10_000)
    assert (res.throttled, res.expired_start, res.start, res.end) == (False, 0, 10, 15)
    # after the second batch's 24 h, nothing is left
    res = stream.get_records(shard, 0, DAY + 3601.0, 10_000)
    assert (res.start, res.end) == (15, 15)


def test_records_trimmed_before_a_slow_consumer_reads_them_count_as_expired():
    """One sensor, one record a minute for 26 h; a consumer reading one record per hour.

    Records arrive at 60, 120, ... s. At the end (26 h) those that arrived before 26 h - 24 h =
    7,200 s (119 records: 60 .. 7,140 s) are past retention; the consumer read 26 (one per hour,
    all among the oldest), so 119 - 26 expired unread. The 1,440 younger records are its backlog."""
    duration = 26 * 3600
    results = kinesim.simulate({
        "name": "retention", "duration": "26h", "seed": 1,
        "fleets": [{"name": "f", "sensors": 1, "rate": "1/min", "arrival": "periodic", "record_size": "100B",
                    "producer": {"max_buffered_time": "1min", "record_ttl": "2min"}}],
        "consumers": [{"name": "slow", "poll_interval": "1h", "max_records": 1}],
        "trace": {"records": "all", "period": "1min"},
    })
    s = results.summary_dict
    processed, expired = s["consumers.slow.records_processed"], s["records_expired"]
    assert s["records_accepted"] == duration // 60 - 1  # flushes at 60 .. 93,540 s
    assert processed in (25, 26)  # one call per hour from a random phase in the first hour
    assert expired == 119 - processed > 0
    assert s["consumers.slow.records_expired"] == expired
    assert s["consumers.slow.backlog_records"] == 1440
    assert s["records_accepted"] == processed + expired + s["consumers.slow.backlog_records"]
    # the records trace agrees record by record
    rec = results.records
    origin = results.scenario.start_time
    arrival = seconds(rec["arrival_time"], origin)
    read = rec["processed_time.slow"].notna().to_numpy()
    old_unread = (arrival < duration - DAY) & ~read
    assert (rec["fate"] == "expired").sum() == expired == old_unread.sum()
    assert (rec.loc[old_unread, "fate"] == "expired").all()


def test_a_reader_that_is_always_throttled_shows_its_backlog_not_a_caught_up_stream():
    """Six applications polling one shard once a second with no processing time keep their
    phases, so the one that comes sixth in every second is always refused (5 GetRecords/s). It
    must show a growing backlog and lag, and no iterator age (it never had a served call)."""
    results = kinesim.simulate({
        "name": "starved", "duration": "60s", "seed": 2, "stream": {"shards": 1},
        "fleets": [{"name": "m", "sensors": 100, "rate": "1/s", "record_size": "100B"}],
        "consumers": [{"name": f"app{i}"} for i in range(6)], "trace": {"records": "none"},
    })
    summary = results.summary_dict
    starved = [i for i in range(6) if summary[f"consumers.app{i}.records_processed"] == 0]
    assert len(starved) == 1
    name = f"app{starved[0]}"
    assert math.isnan(summary[f"consumers.{name}.max_iterator_age_s"])
    assert summary[f"consumers.{name}.backlog_records"] > 5000
    rows = results.consumers[results.consumers["consumer"] == name]
    last = rows[rows["timestamp"] == rows["timestamp"].max()]
    assert int(last["backlog_records"].iloc[0]) > 5000
    assert float(last["MillisBehindLatest"].iloc[0]) > 50_000
