"""The bill of a scenario equals a hand calculation from the price table (``kinesim/prices.yaml``,
us-east-1, ``shared/reference/aws-facts.md`` section 10)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import kinesim
from kinesim import cost

GB = 2**30
MONTH_S = 730 * 3600

# the prices a person reads off the table
SHARD_HOUR = 0.015
PUT_UNIT_PER_MILLION = 0.014
EXTENDED_RETENTION_SHARD_HOUR = 0.02
LONG_TERM_GB_MONTH = 0.023
FIREHOSE_GB = 0.029
CONVERSION_GB = 0.018
S3_PUT_PER_1000 = 0.005
S3_GET_PER_1000 = 0.0004
S3_GB_MONTH = 0.023
M5_XLARGE_HOUR = 0.192 + 0.048


def test_the_price_table_holds_these_prices_with_sources():
    p = cost.load_prices()
    assert p["kinesis"]["shard_hour"]["price"] == SHARD_HOUR
    assert p["kinesis"]["put_payload_units"]["price"] == PUT_UNIT_PER_MILLION
    assert p["kinesis"]["extended_retention_shard_hour"]["price"] == EXTENDED_RETENTION_SHARD_HOUR
    assert p["kinesis"]["long_term_retention_gb_month"]["price"] == LONG_TERM_GB_MONTH
    assert p["firehose"]["ingestion_gb"]["tiers"][0]["price"] == FIREHOSE_GB
    assert p["firehose"]["format_conversion_gb"]["price"] == CONVERSION_GB
    assert p["s3"]["put_requests"]["price"] == S3_PUT_PER_1000
    assert p["s3"]["get_requests"]["price"] == S3_GET_PER_1000
    assert p["s3"]["storage_gb_month"]["price"] == S3_GB_MONTH
    m5 = p["emr"]["instances"]["m5.xlarge"]
    assert m5["ec2_per_hour"] + m5["emr_per_hour"] == pytest.approx(M5_XLARGE_HOUR)

    def sources(node):
        if isinstance(node, dict):
            if "price" in node or "tiers" in node or "ec2_per_hour" in node:
                assert str(node.get("source", "")).startswith("http"), node
            for v in node.values():
                sources(v)

    sources(p)


def test_cost_of_a_known_scenario_equals_the_hand_calculation():
    """2 shards for 1 h with 48 h retention; 100 sensors of 1 KB records (each 1 PUT payload unit and
    rounded up to 5 KB by Firehose); Firehose to S3 with gzip; an EMR job every 15 min on a 3-node
    m5.xlarge cluster started per job."""
    results = kinesim.simulate({
        "name": "bill", "duration": "1h", "seed": 3, "stream": {"shards": 2, "retention": "48h"},
        "fleets": [{"name": "f", "sensors": 100, "rate": "1/s", "arrival": "periodic", "record_size": "1KiB"}],
        "firehose": {"name": "to-lake", "buffer": {"size": "8MiB", "interval": "120s"},
                     "compression": {"format": "gzip", "ratio": 0.25}, "s3": {"bucket": "sensor-lake"}},
        "emr": {"schedule": "15min", "startup": "5min", "nodes": 3, "per_object_overhead": "1s"},
        "trace": {"records": "none"},
    })
    s = results.summary_dict
    hours = 1.0
    kinesis = (2 * hours * SHARD_HOUR
               + s["kinesis_records_accepted"] * 1 / 1e6 * PUT_UNIT_PER_MILLION
               + 2 * hours * EXTENDED_RETENTION_SHARD_HOUR)
    firehose = s["firehose_records_read"] * 5 * 1024 / GB * FIREHOSE_GB
    objects, jobs = results.objects, results.jobs
    end = results.metrics["timestamp"].min() + np.timedelta64(3600, "s")
    stored = (objects["compressed_bytes"] * (end - objects["delivery_time"]).dt.total_seconds()).sum()
    s3 = (len(objects) / 1000 * S3_PUT_PER_1000 + jobs["objects"].sum() / 1000 * S3_GET_PER_1000
          + stored / GB / MONTH_S * S3_GB_MONTH)
    lifetimes = 300 + jobs["run_time_s"]
    emr = (np.maximum(lifetimes, 60) * 3 / 3600 * M5_XLARGE_HOUR).sum()
    assert s["cost_usd.kinesis"] == pytest.approx(kinesis, rel=1e-9)
    assert s["cost_usd.firehose"] == pytest.approx(firehose, rel=1e-9)
    assert s["cost_usd.s3"] == pytest.approx(s3, rel=1e-9)
    assert s["cost_usd.emr"] == pytest.approx(emr, rel=1e-9)
    assert s["cost_usd"] == pytest.approx(kinesis + firehose + s3 + emr, rel=1e-9)
    # and in round numbers: 2 shard-hours ($0.03) + 2 extended-retention shard-hours ($0.04) + 360,000 units ...
    assert kinesis == pytest.approx(0.03 + 0.04 + 360_000 / 1e6 * 0.014, rel=1e-3)
    # ... 360,000 records × 5 KB ingested = 1.72 GB at $0.029 ...
    assert firehose == pytest.approx(360_000 * 5120 / GB * 0.029, rel=1e-3)
    # ... and 4 jobs of 3 instances, each 5 min startup + 11 objects × 1 s (8 MiB objects of 15 min of
    # about 103 KB/s) + 93 MB / (3 × 50 MiB/s) = 0.6 s: about 1 instance-hour at $0.24
    assert len(jobs) == 4 and emr == pytest.approx(4 * 3 * (300 + 11 + 0.6) / 3600 * 0.24, rel=0.02)
    bill = results.cost
    assert list(bill.columns) == ["service", "item", "quantity", "unit", "unit_price_usd", "cost_usd", "source"]
    assert bill["cost_usd"].sum() == pytest.approx(s["cost_usd"])
    assert bill.loc[bill["item"] == "shard_hours", "quantity"].item() == pytest.approx(2.0)


def test_put_payload_units_round_each_kinesis_record_up_to_25_kb():
    """30 KiB records take 2 units each (30,720 B / 25,600 B rounded up)."""
    results = kinesim.simulate({
        "name": "units", "duration": "20s", "seed": 1, "stream": {"shards": 1},
        "fleets": [{"name": "f", "sensors": 10, "rate": "1/s", "record_size": "30KiB"}], "trace": {"records": "none"}})
    units = results.cost.loc[results.cost["item"] == "put_payload_units", "quantity"].item()
    assert units == 2 * results["kinesis_records_accepted"]


def test_format_conversion_and_long_term_retention_from_usage():
    usage = cost.Usage(duration_s=10 * 86400, shard_seconds=10 * 86400, put_payload_units=0, retention_s=30 * 86400,
                       incoming_bytes=np.array([GB] + [0.0] * 9), period_s=86400.0,
                       firehose_billed_bytes=2 * GB, conversion_billed_bytes=2 * GB)
    bill = cost.bill(usage).set_index("item")
    # 1 GB written on day 0 is held beyond 7 days for 3 days of the 10-day run
    assert bill.loc["long_term_retention", "cost_usd"] == pytest.approx(3 * 86400 / MONTH_S * LONG_TERM_GB_MONTH)
    assert bill.loc["extended_retention", "cost_usd"] == pytest.approx(240 * EXTENDED_RETENTION_SHARD_HOUR)
    assert bill.loc["format_conversion", "cost_usd"] == pytest.approx(2 * CONVERSION_GB)
    assert bill.loc["ingestion", "cost_usd"] == pytest.approx(2 * FIREHOSE_GB)


def test_firehose_ingestion_tiers():
    tiers = cost.load_prices()["firehose"]["ingestion_gb"]["tiers"]
    assert cost.tiered(100, tiers) == pytest.approx(100 * 0.029)
    assert cost.tiered(600_000, tiers) == pytest.approx(512_000 * 0.029 + 88_000 * 0.025)
    assert cost.tiered(6_000_000, tiers) == pytest.approx(
        512_000 * 0.029 + (2_097_152 - 512_000) * 0.025 + (6_000_000 - 2_097_152) * 0.020)


def test_emr_minimum_billing_and_long_running_cluster():
    base = {"name": "emr-bill", "duration": "30min", "seed": 2,
            "fleets": [{"name": "f", "sensors": 10, "rate": "1/s"}],
            "firehose": {"name": "to-lake", "buffer": {"interval": "60s"}, "s3": {"bucket": "lake"}},
            "trace": {"records": "none"}}
    # a per-job cluster with no startup and a 1-object job: billed the one-minute minimum
    per_job = kinesim.simulate({**base, "emr": {"schedule": {"every_objects": 1}, "startup": "0s", "nodes": 2,
                                                "instance_price": {"ec2_per_hour": 1.0, "emr_per_hour": 0.5}}})
    jobs = per_job.jobs
    assert (jobs["run_time_s"] < 60).all()
    assert per_job["cost_usd.emr"] == pytest.approx(len(jobs) * 60 * 2 / 3600 * 1.5)
    # a long-running cluster: the whole run, and the tail of the job submitted at its end
    long = kinesim.simulate({**base, "emr": {"schedule": "10min", "long_running": True, "nodes": 5}})
    last_end = (long.jobs["end_time"].iloc[-1] - long.metrics["timestamp"].min()).total_seconds()
    assert last_end > 1800
    assert long["cost_usd.emr"] == pytest.approx(last_end * 5 / 3600 * M5_XLARGE_HOUR)
    assert math.isclose(long["cost_usd"], sum(long[f"cost_usd.{k}"] for k in ("kinesis", "firehose", "s3", "emr")))


def test_on_demand_stream_is_billed_per_stream_hour_and_gb():
    """On-demand Standard: $0.04 per stream-hour, $0.08 per GB in (records rounded up to 1 KB),
    $0.04 per GB out; no shard-hours or PUT payload units."""
    results = kinesim.simulate({
        "name": "od-bill", "duration": "10min", "seed": 5, "stream": {"mode": "on_demand"},
        "fleets": [{"name": "f", "sensors": 200, "rate": "1/s", "arrival": "periodic", "record_size": "1500B"}],
        "consumers": [{"name": "c"}], "trace": {"records": "none"}})
    bill = results.cost.set_index("item")
    assert "shard_hours" not in bill.index and "put_payload_units" not in bill.index
    assert bill.loc["stream_hours", "cost_usd"] == pytest.approx(10 / 60 * 0.04)
    # 1,500 B + the partition key: every record rounds up to 2 KB
    assert bill.loc["data_in", "quantity"] == pytest.approx(results["kinesis_records_accepted"] * 2048 / GB)
    assert bill.loc["data_in", "cost_usd"] == pytest.approx(results["kinesis_records_accepted"] * 2048 / GB * 0.08)
    out = results.metrics["OutgoingBytes"].sum()
    assert bill.loc["data_out", "cost_usd"] == pytest.approx(out / GB * 0.04)
    assert results["cost_usd.kinesis"] == pytest.approx(bill["cost_usd"].sum())
