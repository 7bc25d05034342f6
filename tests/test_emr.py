"""EMR jobs over the S3 objects: run time, queueing, schedules, freshness, the real aggregation.

Run time of a job over n objects of B bytes (uncompressed), once its cluster is ready:
``per_object_overhead × n + B / (nodes × throughput_per_node)``; a per-job cluster first starts
for ``startup``; freshness = end time − oldest / newest event time read.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import kinesim
from kinesim.emr import run_time
from kinesim.scenario_lake import Emr

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
MiB = 2**20


def lake(emr: dict, duration="40min", interval="60s", sensors=100, write_files=False, records="none", shards=2) -> dict:
    return {
        "name": "emr", "duration": duration, "seed": 6, "stream": {"shards": shards},
        "fleets": [{"name": "f", "sensors": sensors, "rate": "1/s", "arrival": "periodic", "record_size": "500B"}],
        "firehose": {"name": "to-lake", "buffer": {"size": "128MiB", "interval": interval}, "compression": "gzip",
                     "s3": {"bucket": "sensor-lake", "prefix": "raw/", "put_latency": "0s", "write_files": write_files}},
        "emr": emr, "trace": {"records": records},
    }


def sec(ts, origin):
    return (ts - origin).dt.total_seconds().to_numpy()


def test_run_time_formula():
    spec = Emr(nodes=4, throughput_per_node="50MiB/s", per_object_overhead="200ms")
    assert run_time(12, 600 * MiB, spec) == pytest.approx(12 * 0.2 + 600 / 200)
    assert run_time(0, 0, spec) == 0


def test_jobs_read_the_objects_delivered_since_the_previous_job():
    emr = {"schedule": "10min", "startup": "5min", "nodes": 3, "throughput_per_node": "1MiB/s", "per_object_overhead": "2s"}
    results = kinesim.simulate(lake(emr))
    jobs, objects = results.jobs, results.objects
    origin = results.metrics["timestamp"].min()
    assert len(jobs) == 4 and jobs["completed"].tolist() == [True, True, True, False]
    delivered = sec(objects["delivery_time"], origin)
    start, end = sec(jobs["start_time"], origin), sec(jobs["end_time"], origin)
    assert start.tolist() == pytest.approx([600, 1200, 1800, 2400])
    previous = 0.0
    for i, job in jobs.iterrows():
        mine = objects[(delivered > previous) & (delivered <= start[i])]
        previous = start[i]
        assert job["objects"] == len(mine) > 0
        assert job["bytes"] == mine["size_bytes"].sum()
        assert job["compressed_bytes"] == mine["compressed_bytes"].sum()
        assert job["records"] == mine["records"].sum()
        expected = 2.0 * len(mine) + mine["size_bytes"].sum() / (3 * MiB)
        assert job["run_time_s"] == pytest.approx(expected, rel=1e-12)
        assert end[i] - start[i] == pytest.approx(300 + expected)  # a cluster per job: startup first
        # freshness from the job's input
        assert job["oldest_event_time"] == mine["first_event_time"].min()
        assert job["newest_event_time"] == mine["last_event_time"].max()
        assert job["freshness_oldest_s"] == pytest.approx((job["end_time"] - mine["first_event_time"].min()).total_seconds(), abs=1e-6)
        assert job["freshness_newest_s"] == pytest.approx((job["end_time"] - mine["last_event_time"].max()).total_seconds(), abs=1e-6)
    assert jobs["objects"].sum() == results["emr_objects_read"]


def test_long_running_cluster_queues_jobs():
    """A heavy per-object overhead makes each job longer than the schedule: on a long-running
    cluster the jobs run one after another, each starting when the previous one ends."""
    emr = {"schedule": "5min", "startup": "10min", "long_running": True, "nodes": 2, "per_object_overhead": "40s"}
    results = kinesim.simulate(lake(emr, duration="30min", interval="30s"))
    jobs = results.jobs
    origin = results.metrics["timestamp"].min()
    start, run0, end = sec(jobs["start_time"], origin), sec(jobs["run_start_time"], origin), sec(jobs["end_time"], origin)
    ready, free = 600.0, 0.0
    for i in range(len(jobs)):
        assert run0[i] == pytest.approx(max(start[i], ready, free))
        assert end[i] == pytest.approx(run0[i] + jobs["run_time_s"].iloc[i])
        free = end[i]
    assert (run0[1:] == pytest.approx(end[:-1]))  # queued back to back
    assert (jobs["startup_s"] == 0).all()


def test_a_job_after_every_n_objects():
    emr = {"schedule": {"every_objects": 3}, "startup": "1min"}
    results = kinesim.simulate(lake(emr, duration="20min", interval="60s", shards=1))
    jobs, objects = results.jobs, results.objects
    assert len(jobs) == len(objects) // 3
    assert (jobs["objects"] == 3).all()
    # each job starts when its third object is delivered
    third = objects["delivery_time"].iloc[2::3].reset_index(drop=True)
    assert (jobs["start_time"] == third[: len(jobs)]).all()


def test_small_objects_make_the_job_slower():
    """The same data in 1-second objects (interval 0) instead of 5-minute objects: the bytes term is
    the same, the per-object term grows with the object count."""
    emr = {"schedule": "30min", "startup": "5min", "nodes": 4, "throughput_per_node": "50MiB/s", "per_object_overhead": "200ms"}
    small = kinesim.simulate(lake(emr, duration="35min", interval="0s", shards=2))
    large = kinesim.simulate(lake(emr, duration="35min", interval="300s", shards=2))
    js, jl = small.jobs.iloc[0], large.jobs.iloc[0]
    assert js["objects"] == pytest.approx(2 * 1800, abs=4)  # one object per GetRecords call per shard
    assert jl["objects"] in (5, 6)  # one buffer per delivery stream: an object every 300 s
    for job in (js, jl):
        assert job["run_time_s"] == pytest.approx(0.2 * job["objects"] + job["bytes"] / (4 * 50 * MiB))
    assert js["run_time_s"] > 100 * jl["run_time_s"]
    # fresher objects, but the 12-minute job makes the result older than with 5-minute objects
    assert js["freshness_newest_s"] > jl["freshness_newest_s"] + 300
    assert small["cost_usd.s3"] > 100 * large["cost_usd.s3"]  # PUT requests


def test_per_record_freshness_quantiles():
    """Every record read by a job contributes end_time − event_time; recomputed from the records
    trace (a record's object was delivered at delivered_time; it is read by the first job starting
    at or after that)."""
    emr = {"schedule": "10min", "startup": "3min"}
    results = kinesim.simulate(lake(emr, duration="35min", interval="120s", sensors=30, records="all"))
    rec = results.records
    jobs = results.jobs
    start = jobs["start_time"].to_numpy()
    d = rec["delivered_time"].to_numpy()
    ok = ~pd.isna(d)
    j = np.searchsorted(start, d[ok], side="left")
    read = j < len(jobs)
    fresh = (jobs["end_time"].to_numpy()[j[read]] - rec["event_time"].to_numpy()[ok][read]) / np.timedelta64(1, "s")
    assert len(fresh) == results["emr_records_read"]
    assert results["emr_freshness_p50_s"] == pytest.approx(np.quantile(fresh, 0.5), rel=0.005)
    assert results["emr_freshness_p99_s"] == pytest.approx(np.quantile(fresh, 0.99), rel=0.005)


def test_real_aggregation_over_written_files(tmp_path):
    emr = {"schedule": "10min", "startup": "2min"}
    results = kinesim.simulate(lake(emr, duration="25min", interval="60s", sensors=40, write_files=True))
    jobs = results.jobs
    root = results.s3_root
    con = duckdb.connect()
    for _, job in jobs.iterrows():
        assert job["output_key"] == f"emr-output/job={job['job']:06d}/part-00000.parquet"
        out = pd.read_parquet(f"{root}/sensor-lake/{job['output_key']}")
        assert out["records"].sum() == job["records"] == job["output_rows"] * 0 + out["records"].sum()
        assert len(out) == job["output_rows"] == 40  # one row per sensor
        assert set(out.columns) >= {"fleet", "sensor", "records", "mean_size_bytes", "first_event_time", "last_event_time"}
        total = con.execute(f"SELECT sum(records) FROM read_parquet('{root}/sensor-lake/{job['output_key']}')").fetchone()[0]
        assert total == job["records"]


def test_emr_needs_a_firehose_and_a_known_instance_type():
    base = {"name": "x", "duration": "1min", "fleets": [{"name": "f", "sensors": 1, "rate": "1/s"}]}
    with pytest.raises(kinesim.ScenarioError, match="^emr: needs a firehose"):
        kinesim.load_scenario({**base, "emr": {}})
    fh = {"name": "to-lake", "s3": {"bucket": "lake"}}
    with pytest.raises(kinesim.ScenarioError, match="^emr.instance_type: no price for 'x9.huge'"):
        kinesim.load_scenario({**base, "firehose": fh, "emr": {"instance_type": "x9.huge"}})
    sc = kinesim.load_scenario({**base, "firehose": fh, "emr": {"instance_type": "x9.huge",
                                                                 "instance_price": {"ec2_per_hour": 1, "emr_per_hour": 0.25}}})
    assert sc.emr.instance_price.ec2_per_hour == 1
    with pytest.raises(kinesim.ScenarioError, match="^emr.schedule"):
        kinesim.load_scenario({**base, "firehose": fh, "emr": {"schedule": {"every_objects": 0}}})


def test_kinesim_run_lake_hourly_emr_writes_files_that_duckdb_reads(tmp_path, capsys):
    """``kinesim run scenarios/lake-hourly-emr.yaml`` writes the objects in Firehose's S3 layout under
    ``<out>/s3/``. Shortened to 70 minutes (one hourly job) to keep the suite fast; the full
    scenario runs, with its expect checks, in test_check_cli."""
    from kinesim import cli

    out = tmp_path / "lake"
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(SCENARIOS / "lake-hourly-emr.yaml"), "--out", str(out), "--no-plots", "-q",
                  "--set", "duration=70min"])
    assert exc.value.code == 0, capsys.readouterr().err
    objects, jobs = pd.read_parquet(out / "objects.parquet"), pd.read_parquet(out / "jobs.parquet")
    assert len(jobs) == 1 and jobs["completed"].all() and jobs["objects"].iloc[0] in (11, 12)
    assert objects["key"].str.fullmatch(r"raw/2026/06/01/0[01]/to-lake-1-2026-06-01-0[01]-\d{2}-\d{2}-[0-9a-f-]{36}\.gz").all()
    con = duckdb.connect()
    per_file = con.execute(f"SELECT filename, count(*) AS n FROM read_json_auto('{out}/s3/sensor-lake/raw/*/*/*/*/*.gz', "
                           "filename=true) GROUP BY filename").df()
    counts = dict(zip(per_file["filename"].str.split("/sensor-lake/").str[1], per_file["n"]))
    assert counts == dict(zip(objects["key"], objects["records"]))
    summary = pd.read_json(out / "summary.json", typ="series")
    assert sum(counts.values()) == summary["firehose_records_delivered"]
    result = con.execute(f"SELECT count(*), sum(records) FROM read_parquet('{out}/s3/sensor-lake/{jobs['output_key'].iloc[0]}')").fetchone()
    assert result == (500, jobs["records"].iloc[0])  # one row per sensor
    assert ((jobs["freshness_oldest_s"] / 60 > 65) & (jobs["freshness_oldest_s"] / 60 < 75)).all()
