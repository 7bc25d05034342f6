"""A Firehose delivery stream reading the Kinesis stream into S3 (Amazon Data Firehose).

Model (numbers in :mod:`kinesim.aws`, sources in ``shared/reference/aws-facts.md`` section 9):

* **Reading.** Firehose reads the stream like a consumer application
  (:class:`kinesim.consumer.ConsumerApp`): one worker per shard, starting at ``LATEST``, one
  GetRecords call per second per shard, counted against the shard's shared 5 calls/s and 2 MiB/s,
  no processing time (https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html).
  The shard log holds user records, so KPL aggregates arrive de-aggregated, as Firehose delivers
  them (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html). Its calls are kept out
  of the ``consumers`` trace; they show in the ``firehose_*`` summary keys and the shard metrics.
* **Buffering** (:class:`HintBuffer`): records wait until the buffer holds ``size`` bytes (before
  compression) or ``interval`` seconds have passed since its oldest record entered, whichever comes
  first (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html). A size flush takes the
  leading records up to ``size`` bytes; the rest start the next buffer. A read landing exactly on the
  interval deadline goes to the next buffer, so a steady input of ``r`` bytes/s gives objects of
  ``min(size, r × interval)`` bytes every ``min(size / r, interval)`` seconds.
* **Delivery** (:class:`Lane`): one S3 PUT at a time per destination prefix; a PUT takes
  ``put_latency`` and fails with probability ``failure_share``; a failed PUT is retried every
  ``retry_interval`` for up to ``retry_duration`` (AWS: 24 h), after which its records are lost
  (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html). While a PUT is in flight
  the buffer keeps filling past its hints; it is flushed whole when the PUT ends (the buffer grows
  when delivery falls behind, as AWS describes).
* **Transformation** (:class:`LambdaStage`): an optional Lambda with its own buffer (default
  1 MB / 60 s), at most 5 outstanding invocations per shard; an invocation takes
  ``per_invocation + per_record × records``; a ``failure_share`` of records come back
  ``ProcessingFailed`` and go to the error prefix (``processing-failed``)
  (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html,
  https://docs.aws.amazon.com/firehose/latest/dev/limits.html).
* **Compression and conversion**: an object's stored size is ``round(size × ratio)``; Parquet
  conversion needs a buffer of at least 64 MiB (checked by the loader).

SimPy events are control only: a GetRecords call per shard per second, a buffer deadline, a PUT
attempt, a Lambda invocation. Records move as numpy columns.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import simpy

from kinesim import aws
from kinesim.buffering import EPS, HintBuffer, buffer_timer, take
from kinesim.consumer import ConsumerApp
from kinesim.metrics import LatencyHistogram
from kinesim.s3 import EXTENSIONS, PrefixTemplate, S3Store, UuidSource, encode, object_name
from kinesim.scenario import Consumer as ConsumerSpec
from kinesim.scenario_lake import Firehose as FirehoseSpec

#: Columns carried from the shard log (one row per user record), plus ``shard`` and ``t_in``
#: (s: when the record entered the current buffer, :class:`kinesim.buffering.HintBuffer`).
LOG_COLUMNS = ("event", "arrival", "size", "sensor", "fleet", "key", "trace", "seq", "subseq")


class _Stage:
    """Shared buffer handling of a :class:`Lane` and a :class:`LambdaStage`."""

    waiting = False  # True while the buffer's flush waits for a PUT in flight

    def _open_wake(self) -> None:
        if self.wake is not None and not self.wake.triggered and self.buffer.n and not self.waiting:
            self.wake.succeed()

    def receive(self, cols: dict, now: float) -> None:
        """Records entering the buffer at ``now``: a deadline at or before ``now`` flushes the
        buffer first (so a read on the deadline starts the next buffer); then the size hint."""
        d = self.buffer.deadline
        if d is not None and now >= d - EPS and not self.waiting:
            self.expire(now)
        self.buffer.add(cols, now)
        self._open_wake()
        self._check_size(now)
        if self.buffer.interval == 0 and self.buffer.n and not self.waiting:
            self.expire(now)


class Lane(_Stage):
    """A destination prefix: its buffer, its S3 PUTs and its objects. ``error_output_type`` is ``""``
    for the data prefix and ``processing-failed`` for failed transformations."""

    def __init__(self, fh: "DeliveryStream", error_output_type: str = ""):
        spec = fh.spec
        self.fh = fh
        self.error_output_type = error_output_type
        self.template = PrefixTemplate(spec.s3.error_prefix if error_output_type else spec.s3.prefix, error_output_type)
        self.buffer = HintBuffer(spec.buffer.size, spec.buffer.interval)
        self.busy = False
        self.wake = None
        self.inflight = 0  # records in a PUT not yet done

    def _check_size(self, now: float) -> None:
        while self.buffer.nbytes >= self.buffer.size and not self.waiting:
            if self.busy:
                self.waiting = True
                return
            self._seal(self.buffer.take_prefix(self.buffer.size), now, "size")

    def expire(self, now: float) -> None:
        if self.busy:
            self.waiting = True
        elif self.buffer.n:
            self._seal(self.buffer.take_all(), now, "interval")

    def _seal(self, cols: dict, now: float, trigger: str) -> None:
        fh = self.fh
        arrival = cols["arrival"]
        oldest = fh.origin + dt.timedelta(seconds=float(arrival.min()))
        key = self.template.evaluate(oldest, fh.rng) + object_name(
            fh.spec.name, aws.FIREHOSE_STREAM_VERSION, oldest, fh.uuids(), fh.extension)
        size = int(cols["size"].sum())
        meta = {
            "key": key, "size_bytes": size, "compressed_bytes": int(round(size * fh.spec.compression.ratio)),
            "records": len(arrival), "first_event_time": float(cols["event"].min()),
            "last_event_time": float(cols["event"].max()), "first_arrival_time": float(arrival.min()),
            "last_arrival_time": float(arrival.max()), "bucket": fh.spec.s3.bucket,
            "error_output_type": self.error_output_type, "trigger": trigger, "sealed_time": now, "put_attempts": 0,
        }
        self.busy = True
        self.inflight = len(arrival)
        s3 = fh.spec.s3
        if s3.put_latency == 0 and s3.failure_share == 0:
            meta["put_attempts"] = 1
            self._done(cols, meta, now, True)
        else:
            fh.env.process(self._put(cols, meta))

    def _put(self, cols: dict, meta: dict):
        env, s3 = self.fh.env, self.fh.spec.s3
        first = env.now
        while True:
            if s3.put_latency:
                yield env.timeout(s3.put_latency)
            meta["put_attempts"] += 1
            if s3.failure_share == 0 or self.fh.rng.random() >= s3.failure_share:
                self._done(cols, meta, env.now, True)
                return
            if env.now + s3.retry_interval - first > s3.retry_duration + EPS:
                self._done(cols, meta, env.now, False)
                return
            yield env.timeout(s3.retry_interval)

    def _done(self, cols: dict, meta: dict, now: float, ok: bool) -> None:
        fh = self.fh
        if ok:
            fh.deliver(cols, meta, now)
        else:
            fh.lose(cols, meta, now)
        self.busy = False
        self.inflight = 0
        if self.waiting:
            self.waiting = False
            if self.buffer.n:
                self._seal(self.buffer.take_all(), now, "backlog")
        self._open_wake()

    def buffered(self) -> int:
        return self.buffer.n + self.inflight


class LambdaStage(_Stage):
    """The optional Lambda transformation: its buffer and invocations (at most
    ``FIREHOSE_LAMBDA_INVOCATIONS_PER_SHARD × shards`` outstanding)."""

    def __init__(self, fh: "DeliveryStream", shards: int):
        t = fh.spec.transformation
        self.fh = fh
        self.spec = t
        self.buffer = HintBuffer(t.buffer.size, t.buffer.interval)
        self.slots = [0.0] * (aws.FIREHOSE_LAMBDA_INVOCATIONS_PER_SHARD * max(1, shards))
        self.wake = None
        self.inflight = 0
        self.invocations = 0

    def _check_size(self, now: float) -> None:
        while self.buffer.nbytes >= self.buffer.size:
            self._invoke(self.buffer.take_prefix(self.buffer.size), now)

    def expire(self, now: float) -> None:
        if self.buffer.n:
            self._invoke(self.buffer.take_all(), now)

    def _invoke(self, cols: dict, now: float) -> None:
        n = len(cols["size"])
        slot = int(np.argmin(self.slots))
        start = max(now, self.slots[slot])
        end = start + self.spec.per_invocation + self.spec.per_record * n
        self.slots[slot] = end
        self.invocations += 1
        failed = self.fh.rng.random(n) < self.spec.failure_share if self.spec.failure_share else np.zeros(n, bool)
        if end <= now:
            self._complete(cols, failed, now)
        else:
            self.inflight += n
            self.fh.env.process(self._wait(cols, failed, end - now))

    def _wait(self, cols: dict, failed: np.ndarray, delay: float):
        yield self.fh.env.timeout(delay)
        self.inflight -= len(failed)
        self._complete(cols, failed, self.fh.env.now)

    def _complete(self, cols: dict, failed: np.ndarray, now: float) -> None:
        fh = self.fh
        if failed.any():
            fh.error_lane.receive(take(cols, failed), now)
            fh.main.receive(take(cols, ~failed), now)
        else:
            fh.main.receive(cols, now)

    def buffered(self) -> int:
        return self.buffer.n + self.inflight


class _ReaderTrace:
    """The records trace as the Firehose reader sees it: its reads are not consumer processing."""

    def processed(self, consumer, trace, times) -> None:
        pass

    def expired(self, consumer, trace) -> None:
        pass


class DeliveryStream:
    """One Firehose delivery stream: reader, optional Lambda, data and error lanes, S3 store.

    ``origin`` is the scenario's start time (UTC ``datetime``); ``rng`` draws object UUIDs, PUT
    failures and Lambda failures, ``reader_rng`` the readers' start phases. ``keep_events`` keeps
    each object's event times for EMR freshness. ``formatter(cols) -> DataFrame`` gives the
    records of an object as written to a real file (only called when the store writes files).
    """

    def __init__(self, spec: FirehoseSpec, stream, grid, store: S3Store, trace, origin: dt.datetime,
                 rng: np.random.Generator, reader_rng: np.random.Generator, keep_events: bool = False,
                 formatter=None):
        self.spec = spec
        self.store = store
        self.trace = trace
        self.origin = origin
        self.rng = rng
        self.uuids = UuidSource(rng)
        self.keep_events = keep_events
        self.formatter = formatter
        self.env: simpy.Environment | None = None
        self.fmt = "parquet" if spec.format_conversion == "parquet" else "json"
        self.extension = EXTENSIONS[(self.fmt, spec.compression.format)]
        reader = ConsumerSpec(name="firehose", poll_interval=aws.FIREHOSE_GET_RECORDS_INTERVAL_S,
                              max_records=aws.GET_RECORDS_MAX_RECORDS, processing_time=0.0, start="latest")
        self.reader = ConsumerApp(-1, reader, stream, grid, _ReaderTrace(), reader_rng, sink=self.receive)
        self.main = Lane(self)
        self.error_lane = Lane(self, "processing-failed") if spec.transformation else None
        self.transform = LambdaStage(self, len(stream.open_shards())) if spec.transformation else None
        self.latency = LatencyHistogram()  # event time to S3 delivery, per record
        self.records_read = 0
        self.bytes_read = 0
        self.billed_bytes = 0  # records rounded up to 5 KB (Firehose ingestion pricing)
        self.records_delivered = 0
        self.bytes_delivered = 0
        self.records_processing_failed = 0
        self.records_failed = 0
        self.events: list[tuple[float, str, str, str]] = []

    def start(self, env: simpy.Environment) -> None:
        self.env = env
        self.reader.start(env)
        for stage in (self.transform, self.main, self.error_lane):
            if stage is not None:
                env.process(buffer_timer(env, stage))

    # ------------------------------------------------------------ records in
    def receive(self, shard, start: int, end: int, now: float) -> None:
        """Sink of the reader: log rows ``[start, end)`` of ``shard`` read at ``now``."""
        log = shard.log
        cols = {name: log.column(name, start, end).copy() for name in LOG_COLUMNS}
        cols["shard"] = np.full(end - start, shard.index, dtype=np.int32)
        size = cols["size"]
        self.records_read += len(size)
        self.bytes_read += int(size.sum())
        inc = aws.FIREHOSE_BILLING_INCREMENT
        self.billed_bytes += int(np.sum(-(-size // inc))) * inc
        (self.transform or self.main).receive(cols, now)

    # ------------------------------------------------------------ records out
    def deliver(self, cols: dict, meta: dict, now: float) -> None:
        """An object's PUT succeeded at ``now``."""
        body = None
        if self.store.writes_files and self.formatter is not None:
            name = meta["key"].rsplit("/", 1)[-1]
            body = encode(self.formatter(cols), self.fmt, self.spec.compression.format,
                          member=name.removesuffix(".zip") + ".json")
        keep = self.keep_events and not meta["error_output_type"]
        self.store.put(meta, now, body, cols["event"] if keep else None)
        n = meta["records"]
        if meta["error_output_type"]:
            self.records_processing_failed += n
        else:
            self.records_delivered += n
            self.bytes_delivered += meta["size_bytes"]
            self.latency.add(now - cols["event"])
            self.trace.delivered(cols["trace"], now)

    def lose(self, cols: dict, meta: dict, now: float) -> None:
        """An object's PUT kept failing for ``retry_duration``: its records are lost."""
        self.records_failed += meta["records"]
        self.events.append((now, "firehose_delivery_failed",
                            f"{self.spec.name}: {meta['records']} records ({meta['size_bytes']} bytes) lost after "
                            f"{meta['put_attempts']} PUT attempts to s3://{meta['bucket']}/{meta['key']}", "InternalError"))

    # ------------------------------------------------------------ end of run
    def finish(self, now: float, retention: float) -> None:
        for worker in self.reader.workers:
            worker.finish(now, retention)

    def records_buffered(self) -> int:
        """Records read but neither delivered nor lost: in a buffer, a Lambda or a PUT in flight."""
        return sum(s.buffered() for s in (self.transform, self.main, self.error_lane) if s is not None)

    def summary(self) -> dict:
        reader = self.reader
        return {
            "firehose_records_read": self.records_read,
            "firehose_bytes_read": self.bytes_read,
            "firehose_records_delivered": self.records_delivered,
            "firehose_bytes_delivered": self.bytes_delivered,
            "firehose_records_processing_failed": self.records_processing_failed,
            "firehose_records_failed": self.records_failed,
            "firehose_records_buffered": self.records_buffered(),
            "firehose_records_expired": reader.records_expired,
            "firehose_backlog_records": reader.backlog(),
            "firehose_get_records_calls": reader.get_records_calls,
            "firehose_read_throttled_calls": reader.throttled_calls,
            "firehose_max_iterator_age_s": reader.max_iterator_age_ms / 1000.0,
            "firehose_latency_p50_s": self.latency.quantile(0.5),
            "firehose_latency_p99_s": self.latency.quantile(0.99),
            "firehose_lambda_invocations": self.transform.invocations if self.transform else 0,
        }


class RecordFormatter:
    """Turns carried columns into the records of a real file: ``fleet``, ``sensor``,
    ``partition_key``, ``ShardId``, ``SequenceNumber``, ``SubSequenceNumber``, ``event_time``,
    ``arrival_time`` (UTC), ``size_bytes`` (the record's modelled size)."""

    def __init__(self, fleets, stream, origin: pd.Timestamp):
        self.names = np.asarray([f.spec.name for f in fleets], dtype=object)
        self.keys = [np.asarray(f.keys, dtype=object) for f in fleets]
        self.stream = stream
        self.origin = origin

    def __call__(self, cols: dict) -> pd.DataFrame:
        fleet = cols["fleet"].astype(np.int64)
        pkey = np.empty(len(fleet), dtype=object)
        for i, table in enumerate(self.keys):
            sel = fleet == i
            if sel.any():
                pkey[sel] = table[cols["key"][sel]]
        shard_ids = np.asarray([s.shard_id for s in self.stream.shards], dtype=object)
        return pd.DataFrame({
            "fleet": self.names[fleet], "sensor": cols["sensor"], "partition_key": pkey,
            "ShardId": shard_ids[cols["shard"]], "SequenceNumber": cols["seq"], "SubSequenceNumber": cols["subseq"],
            "event_time": self.origin + pd.to_timedelta(cols["event"], unit="s"),
            "arrival_time": self.origin + pd.to_timedelta(cols["arrival"], unit="s"),
            "size_bytes": cols["size"],
        })
