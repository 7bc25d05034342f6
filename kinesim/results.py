"""``Results``: the traces of a run as pandas DataFrames, the summary, and saving them.

Times inside the simulator are seconds from the scenario start; in the DataFrames they are UTC
``pandas.Timestamp`` values from ``scenario.start_time``. Column names follow the contract in
README.md's "What a run gives you" (CloudWatch and API names where AWS has one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kinesim.errors import unknown_key
from kinesim.tracing import DROP_REASONS

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.simulation import Simulation

TRACES = ("metrics", "records", "consumers", "producers", "shards", "events", "latency", "objects", "jobs", "cost")


class Results:
    """What a run returns.

    Attributes (pandas DataFrames): ``metrics`` (per period and shard, CloudWatch names),
    ``records`` (sampled user records with their fate), ``consumers`` (per period, consumer and
    shard), ``producers`` (per period and fleet), ``shards`` (every shard with its lineage),
    ``events`` (reshards, failures; empty when nothing happened), ``latency`` (histogram of
    event-to-processed latency per consumer), ``objects`` (S3 objects Firehose delivered),
    ``jobs`` (EMR jobs), ``cost`` (the bill, one row per item), ``summary`` (one row per headline
    figure, index ``metric``, column ``value``). ``summary_dict`` holds the same figures as a flat
    dict, and ``scenario`` the validated scenario. ``s3_root`` is where real S3 files were written
    (``firehose.s3.write_files``), or ``None``; files written to the default temporary folder are
    copied into ``<dir>/s3/`` by :meth:`save`.
    """

    def __init__(self, scenario, frames: dict[str, pd.DataFrame], summary: dict, wall_time_s: float = float("nan"),
                 s3_folder=None, s3_root: str | None = None):
        self.scenario = scenario
        self.s3_folder = s3_folder  # a kinesim.s3.TempFolder this object keeps alive, or None
        self.s3_root = s3_root
        for name in TRACES:
            setattr(self, name, frames[name])
        self.summary_dict = summary
        self.summary = pd.DataFrame({"value": pd.Series(summary, dtype=object)}).rename_axis("metric")
        self.wall_time_s = wall_time_s
        self.saved_to: Path | None = None  # the folder of the last complete save()

    def __getitem__(self, key: str):
        """``results["throttle_rate"]``: a headline figure from the summary. An unknown name raises
        a ``KeyError`` that suggests the close matches (``did you mean 'throttle_rate'?``)."""
        if key not in self.summary_dict:
            raise unknown_key(key, self.summary_dict, "summary figure")
        return self.summary_dict[key]

    def __repr__(self) -> str:
        s = self.summary_dict
        return (f"<Results {self.scenario.name}: {s['records_produced']} records produced, "
                f"throttle_rate={s['throttle_rate']:.4f}, {s['shards_final']} shards>")

    # ------------------------------------------------------------ building
    @classmethod
    def from_simulation(cls, sim: "Simulation", wall_time_s: float) -> "Results":
        sc = sim.scenario
        origin = pd.Timestamp(sc.start_time).tz_convert("UTC")
        period_starts = origin + pd.to_timedelta(np.arange(sim.grid.n) * sim.grid.period, unit="s")
        shard_ids = [s.shard_id for s in sim.stream.shards]
        frames = {
            "metrics": _metrics_frame(sim, period_starts, shard_ids),
            "consumers": _consumers_frame(sim, period_starts, shard_ids),
            "producers": _producers_frame(sim, period_starts),
            "records": _records_frame(sim, origin, shard_ids),
            "shards": _shards_frame(sim, origin),
            "events": _events_frame(sim.stream.events, origin),
            "latency": _latency_frame(sim),
        }
        summary = _summary(sim)
        frames.update(_lake_frames(sim, origin, summary))
        frames["records"] = _with_delivered(frames["records"], sim, origin)
        fh = getattr(sim, "firehose", None)
        root = fh.store.root if fh is not None and fh.store.writes_files else None
        return cls(sc, frames, summary, wall_time_s, getattr(sim, "s3_folder", None), root)

    # ------------------------------------------------------------ saving
    def save(self, directory: str | os.PathLike, plots: bool = False, report: bool = False) -> Path:
        """Write ``summary.json``, one Parquet file per trace, ``scenario.yaml``, (with
        ``plots``) ``plots/*.png`` and (with ``report``) a self-contained ``report.html``
        (:mod:`kinesim.report`) to ``directory``. Everything is written to a temporary folder
        beside it and moved into place only when complete, so a failed run leaves nothing half
        written. An existing ``directory`` is replaced. Returns the directory."""
        from kinesim.results_io import save_results

        return save_results(self, directory, plots, report)


def _metrics_frame(sim, period_starts, shard_ids) -> pd.DataFrame:
    n, k = sim.grid.n, len(shard_ids)
    data = {"timestamp": np.repeat(period_starts, k), "ShardId": pd.Categorical(np.tile(shard_ids, n), categories=shard_ids)}
    for name, arr in sim.metrics.values.items():
        data[name] = arr[:, :k].reshape(-1)
    return pd.DataFrame(data)


def _consumers_frame(sim, period_starts, shard_ids) -> pd.DataFrame:
    parts = []
    for app in sim.consumers:
        pp = app.per_period
        n, k = pp["records_processed"].shape
        backlog = pd.DataFrame(pp["backlog_records"]).ffill().fillna(0.0).to_numpy()
        behind = pd.DataFrame(pp["MillisBehindLatest"]).ffill().fillna(0.0).to_numpy()
        parts.append(pd.DataFrame({
            "timestamp": np.repeat(period_starts, k),
            "consumer": app.spec.name,
            "ShardId": np.tile(shard_ids[:k], n),
            "records_processed": pp["records_processed"].reshape(-1),
            "backlog_records": backlog.reshape(-1).astype(np.int64),
            "MillisBehindLatest": behind.reshape(-1),
            "GetRecords.IteratorAgeMilliseconds": pp["GetRecords.IteratorAgeMilliseconds"].reshape(-1),
        }))
    if not parts:
        return pd.DataFrame({c: [] for c in ("timestamp", "consumer", "ShardId", "records_processed", "backlog_records",
                                             "MillisBehindLatest", "GetRecords.IteratorAgeMilliseconds")})
    return pd.concat(parts, ignore_index=True)


def _producers_frame(sim, period_starts) -> pd.DataFrame:
    parts = []
    for spec, stats in zip(sim.scenario.fleets, sim.producer_stats):
        frame = pd.DataFrame({"timestamp": period_starts, "fleet": spec.name})
        for name, arr in stats.per_period.items():
            frame[name] = arr
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _records_frame(sim, origin, shard_ids) -> pd.DataFrame:
    tr = sim.trace
    col = tr.column
    fleet_idx = col("fleet").astype(np.int64)
    keys = col("key")
    names = [f.spec.name for f in sim.fleets]
    partition_key = np.empty(tr.n, dtype=object)
    for i, fleet in enumerate(sim.fleets):
        sel = fleet_idx == i
        partition_key[sel] = np.asarray(fleet.keys, dtype=object)[keys[sel]]
    shard = col("shard")
    accepted = shard >= 0

    def ts(seconds):
        return origin + pd.to_timedelta(seconds, unit="s")

    frame = pd.DataFrame({
        "fleet": pd.Categorical.from_codes(fleet_idx, categories=names) if tr.n else pd.Categorical([], categories=names),
        "sensor": col("sensor"),
        "partition_key": partition_key,
        "ShardId": np.where(accepted, np.asarray(shard_ids, dtype=object)[np.maximum(shard, 0)], None),
        "SequenceNumber": _nullable_int(col("seq"), accepted),
        "SubSequenceNumber": _nullable_int(col("subseq"), accepted),
        "size_bytes": col("size"),
        "event_time": ts(col("event_time")),
        "arrival_time": ts(col("arrival_time")),
        "attempts": col("attempts"),
    })
    reason = col("drop_reason")
    fate = np.where(accepted, "accepted", "buffered").astype(object)
    consumers = sim.consumers
    if consumers:
        processed_all = np.all([~np.isnan(col(f"processed.{c.index}")) for c in consumers], axis=0)
        expired_any = np.any([col(f"expired.{c.index}") for c in consumers], axis=0)
        fate[accepted & processed_all] = "consumed"
        fate[accepted & expired_any] = "expired"
    fate[reason > 0] = "dropped"
    frame["fate"] = pd.Categorical(fate, categories=["consumed", "accepted", "expired", "buffered", "dropped"])
    frame["drop_reason"] = np.asarray(DROP_REASONS, dtype=object)[reason]
    for c in consumers:
        frame[f"processed_time.{c.spec.name}"] = ts(col(f"processed.{c.index}"))
    return frame


def _nullable_int(values: np.ndarray, valid: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64), ~valid)


def _shards_frame(sim, origin) -> pd.DataFrame:
    rows = []
    for s in sim.stream.shards:
        rows.append({
            "ShardId": s.shard_id, "ParentShardId": s.parent, "AdjacentParentShardId": s.adjacent_parent,
            "StartingHashKey": str(s.start_hash), "EndingHashKey": str(s.end_hash),
            "StartingSequenceNumber": str(s.starting_seq),
            "EndingSequenceNumber": None if s.ending_seq is None else str(s.ending_seq),
            "opened_at": origin + pd.to_timedelta(s.opened_at, unit="s"),
            "closed_at": pd.NaT if s.closed_at is None else origin + pd.to_timedelta(s.closed_at, unit="s"),
        })
    frame = pd.DataFrame(rows)
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    return frame


def _events_frame(events, origin) -> pd.DataFrame:
    """``events``: one row per event (``kinesim.stream.Event`` or a ``(time, kind, detail, error)``
    tuple), in time order: ``timestamp``, ``kind``, ``detail``, ``error`` (AWS error name or '')."""
    rows = sorted(((tuple(e) if isinstance(e, tuple) else (e.time, e.kind, e.detail, e.error)) for e in events),
                  key=lambda r: r[0])  # stable: events at one instant keep the order they happened in
    t = np.array([r[0] for r in rows], dtype=float)
    return pd.DataFrame({"timestamp": origin + pd.to_timedelta(t, unit="s"),
                         "kind": pd.Series([r[1] for r in rows], dtype=object),
                         "detail": pd.Series([r[2] for r in rows], dtype=object),
                         "error": pd.Series([r[3] for r in rows], dtype=object)})


def _latency_frame(sim) -> pd.DataFrame:
    parts = []
    for app in sim.consumers:
        counts, edges = app.latency.histogram()
        nz = np.flatnonzero(counts)
        parts.append(pd.DataFrame({"consumer": app.spec.name, "bin_start_s": edges[nz], "bin_end_s": edges[nz + 1],
                                   "records": counts[nz]}))
    if not parts:
        return pd.DataFrame({"consumer": [], "bin_start_s": [], "bin_end_s": [], "records": []})
    return pd.concat(parts, ignore_index=True)


def _summary(sim) -> dict:
    stats = sim.producer_stats

    def total(name):
        return sum(s.total(name) for s in stats)

    attempts, throttled = total("put_attempts"), total("records_throttled")
    out = {
        "records_produced": total("records_produced"),
        "put_attempts": attempts,
        "records_throttled": throttled,
        "throttle_rate": throttled / attempts if attempts else 0.0,
        "records_accepted": total("records_accepted"),
        "records_dropped": total("records_dropped"),
    }
    for reason in DROP_REASONS[1:]:
        out[f"records_dropped_{reason}"] = sum(s.dropped_by_reason[reason] for s in stats)
    out["records_buffered"] = sum(p.buffered for p in sim.producers)
    out["records_unflushed"] = sum(p.unflushed for p in sim.producers)
    out["records_expired"] = sum(app.records_expired for app in sim.consumers)
    for app in sim.consumers:
        pre = f"consumers.{app.spec.name}."
        out[pre + "records_processed"] = app.records_processed
        out[pre + "latency_p50_s"] = app.latency.quantile(0.5)
        out[pre + "latency_p99_s"] = app.latency.quantile(0.99)
        served = app.get_records_calls > app.throttled_calls  # GetRecords.IteratorAgeMilliseconds needs a served call
        out[pre + "max_iterator_age_s"] = app.max_iterator_age_ms / 1000.0 if served else float("nan")
        out[pre + "records_expired"] = app.records_expired
        out[pre + "backlog_records"] = app.backlog()
        out[pre + "read_throttled_calls"] = app.throttled_calls
    out["read_throttled_calls"] = sum(app.throttled_calls for app in sim.consumers)
    out["get_records_calls"] = sum(app.get_records_calls for app in sim.consumers)
    out["put_records_calls"] = total("put_records_calls")
    out["kinesis_records_sent"] = total("kinesis_records_sent")
    out["kinesis_records_accepted"] = int(sim.metrics.values["IncomingRecords"].sum())
    out["shards_final"] = len(sim.stream.open_shards())
    from kinesim.resharding import summary_figures

    out.update(summary_figures(sim.stream))  # shards_max, reshard_calls, reshard_calls_refused
    out["duration_s"] = sim.scenario.duration
    return out


def _lake_frames(sim, origin, summary: dict) -> dict:
    """``objects``, ``jobs`` and ``cost`` (present, maybe empty, in every run), the events of the
    Firehose path, and its summary keys (added to ``summary``)."""
    from kinesim import cost
    from kinesim.emr import jobs_frame
    from kinesim.s3 import S3Store

    fh, emr = getattr(sim, "firehose", None), getattr(sim, "emr", None)
    frames = {
        "objects": (fh.store if fh is not None else S3Store("none")).frame(origin),
        "jobs": emr.frame(origin) if emr is not None else jobs_frame(None, origin),
    }
    if fh is not None:
        summary.update(fh.summary())
        objects = frames["objects"]
        data = objects[objects["error_output_type"] == ""]
        summary["s3_objects"] = len(data)
        summary["s3_objects_processing_failed"] = len(objects) - len(data)
        summary["s3_object_size_mean_bytes"] = float(data["size_bytes"].mean()) if len(data) else float("nan")
        summary["s3_bytes_stored"] = int(objects["compressed_bytes"].sum())
        summary["read_throttled_calls"] += fh.reader.throttled_calls
        summary["get_records_calls"] += fh.reader.get_records_calls
        if fh.events:  # e.g. firehose_delivery_failed, merged in time order with the stream's events
            frames["events"] = _events_frame([*sim.stream.events, *fh.events], origin)
    if emr is not None:
        summary.update(emr.summary())
    frames["cost"] = cost.bill(cost.usage_of(sim))
    summary.update(cost.cost_summary(frames["cost"]))
    return frames


def _with_delivered(records: pd.DataFrame, sim, origin) -> pd.DataFrame:
    """Add ``delivered_time`` (when Firehose delivered the record's S3 object) to the records trace."""
    if getattr(sim, "firehose", None) is None:
        return records
    seconds = sim.trace.column("delivered")
    return records.assign(delivered_time=origin + pd.to_timedelta(seconds, unit="s"))
