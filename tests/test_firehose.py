"""The Firehose delivery stream against hand calculations and AWS's documented behaviour.

* Buffering hints (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html): under a
  steady input of r bytes/s, objects are delivered every min(size / r, interval) seconds and hold
  min(size, r × interval) bytes.
* Firehose reads a Kinesis stream with one GetRecords call per second per shard, counted against
  the shard's shared 5 calls/s (https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html).
* Conservation: accepted = delivered + processing-failed + failed + buffered + expired + not yet read.
* Lambda transformation: a failure share goes to the ``processing-failed`` error prefix.
* Configuration errors are one-line ScenarioErrors naming the YAML path.
"""
from __future__ import annotations

import numpy as np
import pytest

import kinesim
from kinesim.errors import ScenarioError

MiB = 2**20


def steady(sensors: int, size: str, shards: int = 1, **extra) -> dict:
    """A fleet with a steady input rate: periodic arrivals, constant record sizes."""
    return {"stream": {"shards": shards},
            "fleets": [{"name": "f", "sensors": sensors, "rate": "1/s", "arrival": "periodic", "record_size": size}],
            "trace": {"records": "all"}, **extra}


def firehose(size: str, interval: str, **s3) -> dict:
    return {"name": "to-lake", "buffer": {"size": size, "interval": interval},
            "s3": {"bucket": "sensor-lake", "prefix": "raw/", "put_latency": "0s", **s3}}


def seconds(ts, origin):
    return (ts - origin).dt.total_seconds().to_numpy()


# ------------------------------------------------------------------ buffering hints
@pytest.mark.parametrize("buffer_size, interval, sensors, duration, bound", [
    ("1MiB", "900s", 200, "10min", "size"),      # r ≈ 200 KB/s: size / r ≈ 5.2 s
    ("5MiB", "60s", 20, "20min", "interval"),     # r ≈ 20 KB/s: size / r ≈ 262 s > 60 s
    ("2MiB", "60s", 60, "15min", "size"),         # r ≈ 60 KB/s: size / r ≈ 35 s < 60 s
])
def test_delivery_interval_and_object_size_follow_the_buffering_hints(buffer_size, interval, sensors, duration, bound):
    results = kinesim.simulate({"name": "hints", "duration": duration, "seed": 5,
                                **steady(sensors, "1000B", firehose=firehose(buffer_size, interval))})
    size = {"1MiB": MiB, "5MiB": 5 * MiB, "2MiB": 2 * MiB}[buffer_size]
    hint = float(interval.rstrip("s"))
    rec = results.records
    # the steady input rate r (bytes/s) the stream accepted, from the records' own sizes
    r = sensors * float(rec["size_bytes"].mean())
    objects = results.objects
    assert len(objects) > 10
    origin = results.metrics["timestamp"].min()
    delivered = seconds(objects["delivery_time"], origin)
    expected_interval = min(size / r, hint)
    assert np.mean(np.diff(delivered)) == pytest.approx(expected_interval, rel=0.02)
    expected_size = min(size, r * hint)
    assert objects["size_bytes"].to_numpy() == pytest.approx(np.full(len(objects), expected_size), rel=0.02)
    if bound == "size":
        assert (objects["size_bytes"] <= size).all()  # a size flush never exceeds the hint
    assert set(objects["trigger"]) <= {"size", "interval"}
    # each object's records arrived within one interval before its delivery (plus the 1 s read cycle)
    wait = (objects["delivery_time"] - objects["first_arrival_time"]).dt.total_seconds()
    assert (wait <= hint + 1.0 + 1e-6).all()


def test_put_latency_delays_delivery_without_changing_the_objects():
    base = {"name": "latency", "duration": "10min", "seed": 2}
    fast = kinesim.simulate({**base, **steady(50, "500B", firehose=firehose("5MiB", "60s"))})
    slow = kinesim.simulate({**base, **steady(50, "500B", firehose=firehose("5MiB", "60s", put_latency="2s"))})
    a, b = fast.objects, slow.objects
    assert len(a) == len(b) and (a["records"].to_numpy() == b["records"].to_numpy()).all()
    lag = (b["delivery_time"] - a["delivery_time"]).dt.total_seconds()
    assert lag.to_numpy() == pytest.approx(np.full(len(a), 2.0))


def test_kpl_aggregates_are_delivered_as_user_records():
    sc = {"name": "agg", "duration": "3min", "seed": 4, "stream": {"shards": 2},
          "fleets": [{"name": "f", "sensors": 300, "rate": "2/s", "record_size": "100B",
                      "producer": {"aggregation": True}}],
          "firehose": firehose("1MiB", "20s"), "trace": {"records": "all"}}
    results = kinesim.simulate(sc)
    assert results["kinesis_records_accepted"] < results["records_accepted"] / 5  # aggregation at work
    assert results["firehose_records_read"] > 0.9 * results["records_accepted"]
    assert results.objects["records"].sum() == results["firehose_records_delivered"]


# ------------------------------------------------------------------ GetRecords limits
def read_limit_run(consumers: int):
    return kinesim.simulate({
        "name": "read-limits", "duration": "30s", "seed": 11, "stream": {"shards": 1},
        "fleets": [{"name": "f", "sensors": 20, "rate": "1/s", "record_size": "20B"}],
        "consumers": [{"name": f"app{i}", "poll_interval": "1s"} for i in range(consumers)],
        "firehose": firehose("1MiB", "10s"), "trace": {"records": "none"},
    })


def test_firehose_get_records_count_against_the_five_calls_per_second():
    """Five applications polling once a second use all 5 calls/s of the shard; Firehose's call
    each second is the sixth: one call per one-second window is throttled."""
    results = read_limit_run(5)
    throttled = results["read_throttled_calls"]
    assert throttled == pytest.approx(30, abs=1)
    assert results.metrics["ReadProvisionedThroughputExceeded"].sum() == throttled
    assert results["firehose_get_records_calls"] == pytest.approx(30, abs=1)  # once per second per shard
    assert results["get_records_calls"] == pytest.approx(6 * 30, abs=6)
    # the Firehose reader is not a scenario consumer
    assert set(results.consumers["consumer"].unique()) == {f"app{i}" for i in range(5)}
    assert not any(k.startswith("consumers.firehose") for k in results.summary_dict)


def test_firehose_and_one_consumer_are_not_throttled():
    results = read_limit_run(1)
    assert results["read_throttled_calls"] == 0
    assert results["firehose_read_throttled_calls"] == 0
    assert results.metrics["ReadProvisionedThroughputExceeded"].sum() == 0
    assert results["firehose_records_read"] > 0.9 * results["records_accepted"]


# ------------------------------------------------------------------ conservation
CONSERVATION = {
    # a Lambda failing 10% of records; S3 PUTs failing half the time, given up after 5 s of retries
    "lambda-and-s3-failures": {
        "stream": {"shards": 2},
        "fleets": [{"name": "a", "sensors": 300, "rate": "1/s", "record_size": "300B"},
                   {"name": "b", "sensors": 100, "rate": "2/s", "record_size": "200B", "producer": {"aggregation": True}}],
        "firehose": {"name": "to-lake", "buffer": {"size": "1MiB", "interval": "15s"},
                     "transformation": {"buffer": {"size": "1MiB", "interval": "5s"}, "per_record": "0.5ms",
                                        "failure_share": 0.1},
                     "s3": {"bucket": "sensor-lake", "put_latency": "200ms", "failure_share": 0.5,
                            "retry_interval": "2s", "retry_duration": "5s"}},
    },
    # a shard throttled on writes and read at its full 5 calls/s; S3 PUTs slower than the buffer
    # interval: the buffer grows while a PUT is in flight and is flushed whole after it
    "slow-s3": {
        "stream": {"shards": 1},
        "fleets": [{"name": "a", "sensors": 1200, "rate": "1/s", "record_size": "100B"}],
        "consumers": [{"name": f"c{i}", "poll_interval": "1s"} for i in range(4)],
        "firehose": {"name": "to-lake", "buffer": {"size": "1MiB", "interval": "2s"},
                     "s3": {"bucket": "sensor-lake", "put_latency": "7s"}},
    },
}


@pytest.mark.parametrize("name", list(CONSERVATION))
def test_every_accepted_record_is_accounted_for(name):
    results = kinesim.simulate({"name": name, "duration": "3min", "seed": 9, "trace": {"records": "all"},
                                **CONSERVATION[name]})
    s = results.summary_dict
    accounted = (s["firehose_records_delivered"] + s["firehose_records_processing_failed"] + s["firehose_records_failed"]
                 + s["firehose_records_buffered"] + s["firehose_records_expired"] + s["firehose_backlog_records"])
    assert s["records_accepted"] == accounted
    assert s["firehose_records_read"] == accounted - s["firehose_records_expired"] - s["firehose_backlog_records"]
    objects = results.objects
    data = objects[objects["error_output_type"] == ""]
    assert data["records"].sum() == s["firehose_records_delivered"]
    assert objects["records"].sum() - data["records"].sum() == s["firehose_records_processing_failed"]
    # the records trace (all records) agrees: delivered_time is set exactly on delivered records
    assert results.records["delivered_time"].notna().sum() == s["firehose_records_delivered"]
    if name == "lambda-and-s3-failures":
        assert s["firehose_records_failed"] > 0 and s["firehose_records_processing_failed"] > 0
        lost = results.events[results.events["kind"] == "firehose_delivery_failed"]
        assert len(lost) > 0 and (lost["error"] == "InternalError").all()
        failed = objects[objects["error_output_type"] != ""]
        assert failed["key"].str.startswith("processing-failed/2026/01/01/00/to-lake-1-").all()
        share = s["firehose_records_processing_failed"] / (s["firehose_records_processing_failed"] + s["firehose_records_delivered"])
        assert 0.05 < share < 0.2
    else:
        # delivery fell behind (7 s PUTs, 2 s interval): buffers grew past the hints
        assert (objects["trigger"] == "backlog").sum() > 5
        gaps = np.diff(seconds(objects["delivery_time"], results.metrics["timestamp"].min()))
        assert gaps.min() >= 7.0 - 1e-6  # one PUT at a time


def test_same_seed_same_objects():
    sc = {"name": "det", "duration": "2min", "seed": 21, **steady(30, "800B", firehose=firehose("1MiB", "10s"))}
    a, b = kinesim.simulate(sc).objects, kinesim.simulate(sc).objects
    assert a.equals(b)
    assert kinesim.simulate({**sc, "seed": 22}).objects["key"].iloc[0] != a["key"].iloc[0]


# ------------------------------------------------------------------ configuration errors
BASE = {"name": "bad", "duration": "10s", "fleets": [{"name": "f", "sensors": 1, "rate": "1/s"}]}


@pytest.mark.parametrize("firehose_spec, message", [
    ({"name": "x", "buffer": {"size": "256MiB"}, "s3": {"bucket": "lake"}}, "firehose.buffer.size: must be between 1.00 MiB and 128.00 MiB"),
    ({"name": "x", "buffer": {"interval": "901s"}, "s3": {"bucket": "lake"}}, "firehose.buffer.interval: must be at most 900s"),
    ({"name": "x", "format_conversion": "parquet", "buffer": {"size": "32MiB"}, "s3": {"bucket": "lake"}},
     "firehose.buffer.size: must be at least 64 MiB with format_conversion: parquet"),
    ({"name": "x", "compression": {"format": "brotli"}, "s3": {"bucket": "lake"}}, "firehose.compression.format"),
    ({"name": "x", "s3": {"bucket": "lake", "prefix": "!{partitionKeyFromQuery:id}/"}}, "firehose.s3.prefix: unknown expression"),
    ({"name": "x", "transformation": {"failure_share": 1.5}, "s3": {"bucket": "lake"}}, "firehose.transformation.failure_share"),
    ({"name": "x"}, "firehose.s3: required key is missing"),
    ({"name": "x", "compression": "snappy", "s3": {"bucket": "lake", "write_files": True}}, "firehose.compression.format"),
])
def test_bad_firehose_settings_name_the_yaml_path(firehose_spec, message):
    with pytest.raises(ScenarioError) as exc:
        kinesim.load_scenario({**BASE, "firehose": firehose_spec})
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_format_conversion_defaults_to_a_128_mib_buffer():
    sc = kinesim.load_scenario({**BASE, "firehose": {"name": "x", "format_conversion": "parquet", "s3": {"bucket": "lake"}}})
    assert sc.firehose.buffer.size == 128 * MiB
    assert kinesim.load_scenario({**BASE, "firehose": {"name": "x", "s3": {"bucket": "lake"}}}).firehose.buffer.size == 5 * MiB
