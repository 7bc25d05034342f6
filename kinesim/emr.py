"""EMR batch jobs over the S3 objects Firehose delivered.

A job is submitted on a schedule (every ``schedule.every`` seconds, or as soon as
``schedule.every_objects`` new objects have been delivered). It reads every data object delivered
since the previous job and no later than its submission (``start_time``), and runs for

    run_time = per_object_overhead × objects + bytes / (nodes × throughput_per_node)

(``bytes`` uncompressed), so many small objects cost more than a few large ones: the small-files
problem. A cluster is either started for each job (it runs ``startup`` seconds first, and jobs may
overlap on separate clusters) or ``long_running`` (started at time 0, ready after ``startup``; jobs
queue on it one at a time). The result's freshness is ``end_time`` minus the oldest and newest event
time in the job's input; per record, ``end_time - event_time`` goes into a histogram.

With real files (``firehose.s3.write_files``), a job also runs a real aggregation of its input
files with pandas (per fleet and sensor: record count, mean record size, first and last event time,
mean arrival delay) and writes it as Parquet to ``<root>/<bucket>/<output_prefix>job=NNNNNN/part-00000.parquet``.

Billing (:mod:`kinesim.cost`): every instance of a cluster for its lifetime, per second with a one-minute
minimum (https://aws.amazon.com/emr/pricing/).
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import simpy

from kinesim.metrics import LatencyHistogram
from kinesim.s3 import S3Store
from kinesim.scenario_lake import Emr as EmrSpec

JOB_COLUMNS = ("job", "start_time", "end_time", "objects", "bytes", "records", "oldest_event_time", "newest_event_time",
               "freshness_oldest_s", "freshness_newest_s", "run_start_time", "startup_s", "run_time_s", "compressed_bytes",
               "completed", "output_key", "output_rows")
_TIME_COLUMNS = ("start_time", "end_time", "oldest_event_time", "newest_event_time", "run_start_time")


def run_time(objects: int, nbytes: float, spec: EmrSpec) -> float:
    """Seconds a job over ``objects`` objects of ``nbytes`` (uncompressed) bytes runs, once its
    cluster is ready: ``per_object_overhead × objects + nbytes / (nodes × throughput_per_node)``."""
    return spec.per_object_overhead * objects + nbytes / (spec.nodes * spec.throughput_per_node)


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """The job's real work on its input records: per fleet and sensor, ``records``,
    ``mean_size_bytes``, ``first_event_time``, ``last_event_time``, ``mean_arrival_delay_s``."""
    if frame.empty:
        return pd.DataFrame({"fleet": pd.Series([], dtype=object), "sensor": pd.Series([], dtype=np.int64),
                             "records": pd.Series([], dtype=np.int64)})
    delay = (frame["arrival_time"] - frame["event_time"]).dt.total_seconds()
    work = frame.assign(arrival_delay_s=delay)
    out = work.groupby(["fleet", "sensor"], sort=True).agg(
        records=("sensor", "size"), mean_size_bytes=("size_bytes", "mean"), first_event_time=("event_time", "min"),
        last_event_time=("event_time", "max"), mean_arrival_delay_s=("arrival_delay_s", "mean"))
    return out.reset_index()


class EmrCluster:
    """Submits jobs on the schedule and records them; ``freshness`` holds, per record read by a
    job, ``end_time - event_time`` (s)."""

    def __init__(self, spec: EmrSpec, store: S3Store, duration: float):
        self.spec = spec
        self.store = store
        self.duration = duration
        self.pending: list[int] = []  # data objects delivered and not yet read by a job
        self.rows: dict[str, list] = {c: [] for c in JOB_COLUMNS}
        self.freshness = LatencyHistogram()
        self.free_at = spec.startup if spec.long_running else 0.0  # long-running: when the cluster is next free
        self.lifetimes: list[float] = []
        store.listeners.append(self._on_object)

    def start(self, env: simpy.Environment) -> None:
        if self.spec.schedule.every is not None:
            env.process(self._every(env))

    def _every(self, env: simpy.Environment):
        every = self.spec.schedule.every
        k = 1
        while k * every <= self.duration + 1e-9:
            yield env.timeout(k * every - env.now)
            self.submit(env.now)
            k += 1

    def _on_object(self, index: int, now: float) -> None:
        self.pending.append(index)
        n = self.spec.schedule.every_objects
        if n is not None and len(self.pending) >= n:
            self.submit(now)

    def submit(self, now: float) -> None:
        """Submit a job at ``now`` over the pending objects."""
        spec, store = self.spec, self.store
        idx = np.asarray(self.pending, dtype=np.int64)
        self.pending = []
        nbytes = int(store.column("size_bytes", idx).sum()) if len(idx) else 0
        records = int(store.column("records", idx).sum()) if len(idx) else 0
        rt = run_time(len(idx), nbytes, spec)
        if spec.long_running:
            run_start = max(now, self.free_at)
            self.free_at = run_start + rt
        else:
            run_start = now + spec.startup
            self.lifetimes.append(spec.startup + rt)
        end = run_start + rt
        oldest = float(store.column("first_event_time", idx).min()) if len(idx) else np.nan
        newest = float(store.column("last_event_time", idx).max()) if len(idx) else np.nan
        for i in idx:
            events = store.events[i]
            if events is not None:
                self.freshness.add(end - events)
                store.events[i] = None  # read: no longer needed
        store.get_requests += len(idx)
        job = len(self.rows["job"]) + 1
        output_key, output_rows = "", 0
        if store.writes_files:
            output_key, output_rows = self._run_real_job(job, idx)
        row = {"job": job, "start_time": now, "end_time": end, "objects": len(idx), "bytes": nbytes, "records": records,
               "oldest_event_time": oldest, "newest_event_time": newest, "freshness_oldest_s": end - oldest,
               "freshness_newest_s": end - newest, "run_start_time": run_start,
               "startup_s": run_start - now if not spec.long_running else 0.0, "run_time_s": rt,
               "compressed_bytes": int(store.column("compressed_bytes", idx).sum()) if len(idx) else 0,
               "completed": bool(end <= self.duration + 1e-9), "output_key": output_key, "output_rows": output_rows}
        for c in JOB_COLUMNS:
            self.rows[c].append(row[c])

    def _run_real_job(self, job: int, idx: np.ndarray) -> tuple[str, int]:
        """Aggregate the job's input files and write the result; returns its key and row count."""
        store = self.store
        frames = [store.read(store.rows["key"][i]) for i in idx]
        frames = [f for f in frames if len(f)]
        result = aggregate(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
        key = f"{self.spec.output_prefix}job={job:06d}/part-00000.parquet"
        buf = io.BytesIO()
        result.to_parquet(buf, index=False)
        store.write(key, buf.getvalue())
        store.put_requests += 1
        return key, len(result)

    def cluster_seconds(self, end: float) -> list[float]:
        """Lifetime of each cluster (s): one per job, or the long-running cluster from time 0 to
        the later of the end of the run and the end of its last job."""
        if self.spec.long_running:
            return [max(end, self.free_at if self.rows["job"] else 0.0)]
        return list(self.lifetimes)

    def frame(self, origin: pd.Timestamp) -> pd.DataFrame:
        """The ``jobs`` trace: one row per job, times as UTC timestamps from ``origin``."""
        return jobs_frame(self.rows, origin)

    def summary(self) -> dict:
        rows = self.rows
        run = np.asarray(rows["run_time_s"], dtype=float)
        newest = np.asarray(rows["freshness_newest_s"], dtype=float)
        return {
            "emr_jobs": len(rows["job"]),
            "emr_jobs_completed": int(np.sum(rows["completed"])),
            "emr_objects_read": int(np.sum(rows["objects"])),
            "emr_records_read": int(np.sum(rows["records"])),
            "emr_run_time_mean_s": float(run.mean()) if len(run) else float("nan"),
            "emr_freshness_p50_s": self.freshness.quantile(0.5),
            "emr_freshness_p99_s": self.freshness.quantile(0.99),
            "emr_freshness_newest_max_s": float(np.nanmax(newest)) if np.isfinite(newest).any() else float("nan"),
        }


def jobs_frame(rows: dict | None, origin: pd.Timestamp) -> pd.DataFrame:
    """The ``jobs`` DataFrame from column lists (``rows=None``: the empty frame with its columns)."""
    rows = rows or {c: [] for c in JOB_COLUMNS}
    data = {}
    for c in JOB_COLUMNS:
        values = rows[c]
        if c in _TIME_COLUMNS:
            data[c] = origin + pd.to_timedelta(np.asarray(values, dtype=float), unit="s")
        elif c in ("job", "objects", "bytes", "records", "compressed_bytes", "output_rows"):
            data[c] = np.asarray(values, dtype=np.int64)
        elif c == "completed":
            data[c] = np.asarray(values, dtype=bool)
        elif c == "output_key":
            data[c] = pd.array(values, dtype=object) if values else pd.array([], dtype=object)
        else:
            data[c] = np.asarray(values, dtype=float)
    return pd.DataFrame(data, columns=list(JOB_COLUMNS))
