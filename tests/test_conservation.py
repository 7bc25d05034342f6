"""Every user record is accounted for, and the traces agree with the summary.

* produced = accepted + dropped + buffered (still waiting for a retry at the end);
* put attempts = accepted + throttled; dropped = the sum over drop reasons;
* the per-fleet ``producers`` trace sums to the summary, the ``records`` trace (all rows) holds
  every record with its fate, and the ``metrics`` trace counts the accepted Kinesis records;
* KPL aggregation turns an overload of small records into no throttling;
* sequence numbers are unique and increase with arrival order within each shard.
"""
from __future__ import annotations

import numpy as np
import pytest

import kinesim
from kinesim import aws, theory


def fleet(name="f", sensors=1500, rate="1/s", size="100B", partition_key="sensor", **producer):
    return {"name": name, "sensors": sensors, "rate": rate, "arrival": "poisson", "record_size": size,
            "partition_key": partition_key, "producer": producer}


SCENARIOS = {
    # one shard offered 150% of its record limit, retried with exponential backoff; the last
    # retries are still pending at the end
    "retries": {"stream": {"shards": 1}, "fleets": [fleet(retries={"max_attempts": 4, "base": "100ms", "max": "2s"})]},
    # retries far apart and a short TTL: records time out instead of running out of attempts
    "ttl": {"stream": {"shards": 1}, "fleets": [fleet(record_ttl="300ms",
                                                       retries={"max_attempts": 50, "backoff": "constant", "base": "250ms", "max": "1s", "jitter": "none"})]},
    # sizes up to 1.5 MiB: some over the 1 MiB record limit (refused), the rest fill the byte limit
    "too-large": {"stream": {"shards": 2}, "fleets": [fleet(sensors=8, size={"uniform": ["200KiB", "1536KiB"]})]},
    # aggregation on an overloaded shard of bigger records: aggregates throttle on bytes
    "aggregation": {"stream": {"shards": 2}, "fleets": [fleet(sensors=3000, size="1KiB", aggregation=True)]},
    # two fleets, one aggregating, a hot key, token-bucket limits (the flush-by-flush path)
    "mixed": {"stream": {"shards": 3, "limits": {"write_model": "token_bucket"}},
              "fleets": [fleet("a", sensors=2500, partition_key={"hot": {"keys": 1, "share": 0.5}}),
                         fleet("b", sensors=800, size={"distribution": "lognormal", "mean": "2KiB", "sigma": 1.0},
                               aggregation=True)]},
}


def run(name: str, seed: int = 5, duration: str = "20s"):
    spec = {"name": f"conservation-{name}", "duration": duration, "seed": seed, "trace": {"records": "all"}}
    spec.update(SCENARIOS[name])
    return kinesim.simulate(spec)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_record_is_accounted_for(name):
    results = run(name)
    s = results.summary_dict
    assert s["records_produced"] > 0
    assert s["records_produced"] == s["records_accepted"] + s["records_dropped"] + s["records_buffered"]
    assert s["put_attempts"] == s["records_accepted"] + s["records_throttled"]
    reasons = ("max_attempts", "record_ttl", "record_too_large")
    assert s["records_dropped"] == sum(s[f"records_dropped_{r}"] for r in reasons)
    assert s["throttle_rate"] == pytest.approx(s["records_throttled"] / s["put_attempts"])
    # each scenario exercises what it is named for
    expect = {"retries": ("records_throttled", "records_dropped_max_attempts", "records_buffered"),
              "ttl": ("records_dropped_record_ttl",),
              "too-large": ("records_dropped_record_too_large", "records_throttled"),
              "aggregation": ("records_throttled",),
              "mixed": ("records_throttled",)}[name]
    for key in expect:
        assert s[key] > 0, key


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_traces_agree_with_the_summary(name):
    results = run(name)
    s = results.summary_dict
    # producers: per period and fleet; the sums are the summary's
    prod = results.producers
    for column in ("records_produced", "put_attempts", "records_throttled", "records_accepted", "records_dropped",
                   "put_records_calls", "kinesis_records_sent"):
        assert prod[column].sum() == s[column], column
    # records: every record (trace: all) with its fate
    rec = results.records
    assert len(rec) == s["records_produced"]
    fate = rec["fate"].value_counts()
    accepted_rows = rec["ShardId"].notna()
    assert accepted_rows.sum() == s["records_accepted"] == fate["accepted"] + fate["consumed"] + fate["expired"]
    assert fate["dropped"] == s["records_dropped"]
    assert fate["buffered"] == s["records_buffered"]
    for reason in ("max_attempts", "record_ttl", "record_too_large"):
        assert (rec["drop_reason"] == reason).sum() == s[f"records_dropped_{reason}"]
    # every attempt of every record: the attempts column sums to put_attempts
    assert rec["attempts"].sum() == s["put_attempts"]
    assert (rec.loc[rec["drop_reason"] == "record_too_large", "attempts"] == 0).all()
    assert (rec.loc[accepted_rows, "attempts"] >= 1).all()
    # an accepted record arrived at or after it was measured, and within its TTL
    lag = (rec.loc[accepted_rows, "arrival_time"] - rec.loc[accepted_rows, "event_time"]).dt.total_seconds()
    assert (lag >= 0).all()
    assert (lag <= results.scenario.fleets[0].producer.record_ttl + 1e-6).all()
    # metrics: accepted Kinesis records and bytes
    m = results.metrics
    assert m["IncomingRecords"].sum() == s["kinesis_records_accepted"]
    per_shard = rec.loc[accepted_rows].groupby("ShardId").size()
    if not any(f.producer.aggregation for f in results.scenario.fleets):
        assert s["kinesis_records_accepted"] == s["records_accepted"]
        assert m["IncomingBytes"].sum() == rec.loc[accepted_rows, "size_bytes"].sum()
        by_shard = m.groupby("ShardId", observed=True)["IncomingRecords"].sum()
        assert (by_shard.reindex(per_shard.index) == per_shard).all()
    else:
        assert s["kinesis_records_accepted"] < s["records_accepted"]


# ------------------------------------------------------------------ aggregation
def overload_run(aggregation: bool):
    return kinesim.simulate({
        "name": "aggregation-overload", "duration": "120s", "seed": 2, "stream": {"shards": 1},
        "fleets": [{"name": "f", "sensors": 1200, "rate": "1/s", "arrival": "poisson", "record_size": "100B",
                    "producer": {"aggregation": aggregation, "retries": {"max_attempts": 1}}}],
        "trace": {"records": "none"},
    })


def test_aggregation_removes_the_record_limit_throttling():
    """1,200 records/s of 100 B into one shard: 120% of the 1,000 records/s limit but only ~12% of
    1 MiB/s. Without aggregation (and no retries) the throttle rate is E[(N-1000)+]/E[N] = 1/6;
    with KPL aggregation the ~120 records of each 100 ms flush travel in one Kinesis record."""
    plain = overload_run(False)
    assert plain["throttle_rate"] == pytest.approx(theory.poisson_throttle_rate(1200), abs=0.01)
    assert plain["throttle_rate"] == pytest.approx(1 / 6, abs=0.01)
    agg = overload_run(True)
    assert agg["throttle_rate"] == 0
    assert agg["records_accepted"] == agg["records_produced"]
    # one aggregate per flush: 10 per second, each of ~120 × (100 + key + 6) + 20 bytes
    assert agg["kinesis_records_accepted"] == pytest.approx(10 * 120, abs=2)
    assert agg.metrics["IncomingRecords"].max() <= 10
    per_record = 100 + len("f-1000") + aws.KPL_RECORD_OVERHEAD
    mean_bytes = agg.metrics["IncomingBytes"].sum() / agg["records_accepted"]
    assert mean_bytes == pytest.approx(per_record, rel=0.01)


@pytest.mark.parametrize("aggregation", [False, True])
def test_a_record_of_the_maximum_size_is_accepted(aggregation):
    """A user record of exactly 1 MiB (data + partition key) is legal. The KPL sends a Kinesis
    record holding one user record as the plain record, so aggregation must not push it over the
    1 MiB/s shard limit (it would then be throttled on every attempt)."""
    key = "f-0"
    results = kinesim.simulate({
        "name": "max-size", "duration": "10s", "seed": 1,
        "fleets": [{"name": "f", "sensors": 1, "rate": "0.5/s", "arrival": "periodic",
                    "record_size": f"{aws.MAX_RECORD_SIZE - len(key)}B", "producer": {"aggregation": aggregation}}],
        "trace": {"records": "all"},
    })
    assert results["records_produced"] >= 4
    assert results["records_accepted"] == results["records_produced"]
    assert results["records_throttled"] == 0
    assert results.metrics["IncomingBytes"].max() == aws.MAX_RECORD_SIZE


# ------------------------------------------------------------------ sequence numbers
@pytest.mark.parametrize("name", ["retries", "aggregation", "mixed"])
def test_sequence_numbers_increase_with_arrival_order_per_shard(name):
    results = run(name, duration="8s")
    rec = results.records
    acc = rec[rec["ShardId"].notna()]
    assert acc["ShardId"].nunique() == results.scenario.stream.shards
    for shard_id, part in acc.groupby("ShardId"):
        part = part.sort_values(["SequenceNumber", "SubSequenceNumber"])
        seq = part["SequenceNumber"].to_numpy(dtype=np.int64)
        sub = part["SubSequenceNumber"].to_numpy(dtype=np.int64)
        # (sequence, subsequence) pairs are unique: strictly increasing once sorted
        assert ((np.diff(seq) > 0) | ((np.diff(seq) == 0) & (np.diff(sub) > 0))).all(), shard_id
        # a later sequence number never arrived earlier
        assert part["arrival_time"].is_monotonic_increasing, shard_id
        # user records inside one aggregate arrived together
        assert part.groupby("SequenceNumber")["arrival_time"].nunique().max() == 1
    # Kinesis records' sequence numbers are unique across the stream
    kinesis = acc.drop_duplicates(["ShardId", "SequenceNumber"])
    assert kinesis["SequenceNumber"].is_unique


def test_within_a_flush_sequence_order_is_measurement_order():
    """No throttling, no retries: each flush sends its records in event-time order, so within a
    shard sequence numbers also follow event time."""
    results = kinesim.simulate({
        "name": "order", "duration": "5s", "seed": 9, "stream": {"shards": 3},
        "fleets": [{"name": "f", "sensors": 500, "rate": "1/s", "record_size": "50B"}],
        "trace": {"records": "all"},
    })
    rec = results.records
    assert results["records_throttled"] == 0
    for _, part in rec.groupby("ShardId"):
        part = part.sort_values("SequenceNumber")
        assert part["SequenceNumber"].is_unique
        assert part["event_time"].is_monotonic_increasing
        assert part["arrival_time"].is_monotonic_increasing


@pytest.mark.parametrize("arrival", ["periodic", "poisson"])
def test_records_measured_after_the_last_flush_are_counted_apart(arrival):
    """A producer flushes every max_buffered_time; what its sensors measure after the last flush
    of the run is never sent: counted as records_unflushed, not produced. 10 sensors at 1 Hz for
    10 s, flushing every 4 s: flushes at 4 s and 8 s send 80 records, the last 2 s hold 20."""
    spec = {"name": "tail", "duration": "10s", "seed": 3,
            "fleets": [{"name": "f", "sensors": 10, "rate": "1/s", "arrival": arrival,
                        "producer": {"max_buffered_time": "4s", "record_ttl": "30s"}}]}
    s = kinesim.simulate(spec).summary_dict
    if arrival == "periodic":
        assert (s["records_produced"], s["records_unflushed"]) == (80, 20)
    else:  # Poisson: counts of rate 80 and 20
        assert 80 - 4 * 9 <= s["records_produced"] <= 80 + 4 * 9 and 20 - 4 * 4.5 <= s["records_unflushed"] <= 20 + 4 * 4.5
    assert s["records_produced"] == s["records_accepted"]  # nothing else is missing


def test_a_producer_that_would_never_flush_is_refused():
    from kinesim.errors import ScenarioError

    spec = {"name": "never", "duration": "5min", "fleets": [{"name": "f", "sensors": 10, "rate": "1/s",
                                                             "producer": {"max_buffered_time": "5min"}}]}
    with pytest.raises(ScenarioError, match=r"fleets\[0\]\.producer\.max_buffered_time: must be shorter than duration"):
        kinesim.load_scenario(spec)
