"""Polling consumers (KCL-like): one worker per shard per consumer application.

A worker calls GetRecords, processes the batch (``per_batch`` + ``per_record`` × records, during
which it is busy), then waits ``poll_interval`` (KCL idleTimeBetweenReadsInMillis) before the next
call. A throttled call returns nothing and the worker waits ``poll_interval`` again. Workers start
at a random phase within the first ``poll_interval`` (their own random stream), as independent KCL
workers do. Record ``i`` (0-based) of a batch fetched at ``t`` is processed at
``t + (i + 1) × per_record``; the batch ends at ``t + per_batch + n × per_record``.

Across a reshard (KCL, https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-after-resharding.html):
a worker that reaches the end of a CLOSED shard finishes (SHARD_END). Each new shard gets a worker
that reads it from TRIM_HORIZON, but only once the workers of all its parents have finished; until
then it checks every ``parent_shard_poll_interval`` (KCL parentShardPollIntervalMillis, 10 s). So
per-key order holds, and the child's records wait meanwhile: the pause shows in the traces.

Large runs without Firehose or resharding poll the same workers from compiled passes instead of
SimPy processes (:mod:`kinesim.consumer_fused`, same results).

Sources: https://docs.aws.amazon.com/streams/latest/dev/shared-throughput-kcl-consumers.html (one
lease per shard), https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html (limits).
"""
from __future__ import annotations

import numpy as np
import simpy

from kinesim import aws
from kinesim.metrics import LatencyHistogram, PeriodGrid
from kinesim.scenario import Consumer as ConsumerSpec
from kinesim.stream import Shard, Stream
from kinesim.tracing import RecordTrace


class ConsumerApp:
    """A consumer application: its workers, counters and per-period trace (arrays periods × shards)."""

    def __init__(self, index: int, spec: ConsumerSpec, stream: Stream, grid: PeriodGrid, trace: RecordTrace,
                 rng: np.random.Generator, sink=None):
        self.index = index
        #: Optional ``sink(shard, start, end, now)``: called with the log rows ``[start, end)`` each
        #: successful GetRecords call returned (e.g. a Firehose delivery stream, :mod:`kinesim.firehose`).
        self.sink = sink
        self.spec = spec
        self.per_record, self.per_batch = spec.processing_time.per_record, spec.processing_time.per_batch
        self.stream = stream
        self.grid = grid
        self.trace = trace
        self.rng = rng
        self.latency = LatencyHistogram()
        self.records_processed = 0
        self.records_expired = 0
        self.get_records_calls = 0
        self.throttled_calls = 0
        self.max_iterator_age_ms = 0.0
        self.workers: list[Worker] = []
        shards = len(stream.shards)
        self.per_period = {
            "records_processed": np.zeros((grid.n, shards), dtype=np.int64),
            "backlog_records": np.full((grid.n, shards), np.nan),
            "MillisBehindLatest": np.full((grid.n, shards), np.nan),
            "GetRecords.IteratorAgeMilliseconds": np.full((grid.n, shards), np.nan),
        }

    def start(self, env: simpy.Environment) -> None:
        """A SimPy process per worker (:meth:`Worker.run`), following reshards."""
        self.env = env
        self.stream.on_reshard.append(self._shards_opened)
        for worker, phase in zip(*self.open_workers()):
            env.process(worker.run(env, phase))

    def open_workers(self) -> tuple[list["Worker"], list[float]]:
        """A worker per open shard, in shard order, and the random phase of each (s): the time of
        its first poll. :meth:`start` gives each a SimPy process; :mod:`kinesim.consumer_fused`
        polls them without."""
        workers = [Worker(self, shard) for shard in self.stream.open_shards()]
        self.workers.extend(workers)
        return workers, [float(self.rng.random()) * self.spec.poll_interval for _ in workers]

    def _shards_opened(self, new: list[Shard], now: float) -> None:
        """After a reshard: a worker per new shard, registered at once (so the log keeps its
        records), reading from TRIM_HORIZON once its parents' workers have finished."""
        for name, arr in self.per_period.items():
            extra = len(self.stream.shards) - arr.shape[1]
            fill = 0 if name == "records_processed" else np.nan
            self.per_period[name] = np.concatenate([arr, np.full((arr.shape[0], extra), fill, arr.dtype)], axis=1)
        by_id = {w.shard.shard_id: w for w in self.workers}
        interval = getattr(self.spec, "parent_shard_poll_interval", aws.KCL_PARENT_SHARD_POLL_INTERVAL_S)
        for shard in new:
            worker = Worker(self, shard, position=shard.log.start)
            parents = [by_id[p] for p in (shard.parent, shard.adjacent_parent) if p in by_id]
            by_id[shard.shard_id] = worker
            self.workers.append(worker)
            self.env.process(worker.run_after(self.env, parents, interval))

    def backlog(self) -> int:
        """Records (user records) not yet read, over all shards."""
        return sum(w.shard.log.end - w.position for w in self.workers)


class Worker:
    """The worker of one consumer application on one shard; ``position`` is its iterator."""

    def __init__(self, app: ConsumerApp, shard: Shard, position: int | None = None):
        self.app = app
        self.shard = shard
        if position is None:
            position = shard.log.end if app.spec.start == "latest" else shard.log.start
        self.position = position
        self.finished_at: float | None = None  # when it reached the end of its closed shard (SHARD_END)
        shard.readers.append(self)

    def run_after(self, env: simpy.Environment, parents: list["Worker"], interval: float):
        """Wait until every parent has finished (checking every ``interval`` s), then :meth:`run`
        (at a random phase, as at the start). Meanwhile the backlog and ``MillisBehindLatest`` of
        the waiting shard are traced each period."""
        next_check = env.now
        while True:
            if env.now >= next_check - 1e-9:
                if all(p.finished_at is not None for p in parents):
                    break
                next_check = env.now + interval
            self._note_waiting(env.now)
            yield env.timeout(min(self.app.grid.period, next_check - env.now))
        yield from self.run(env, float(self.app.rng.random()) * self.app.spec.poll_interval)

    def _note_waiting(self, now: float) -> None:
        """The backlog and ``MillisBehindLatest`` of this worker at ``now`` without reading (waiting
        for a parent shard, or a throttled call)."""
        app, log = self.app, self.shard.log
        tip = log.visible_end(now)
        p, s = app.grid.index(now), self.shard.index
        app.per_period["backlog_records"][p, s] = tip - self.position
        behind = now - log.arrival_at(self.position) if tip > self.position else 0.0
        app.per_period["MillisBehindLatest"][p, s] = behind * 1000.0

    def run(self, env: simpy.Environment, phase: float):
        """SimPy process: the first GetRecords call ``phase`` s from now, then one every ``busy +
        poll_interval`` s until SHARD_END. The process ends after the first call; the later calls
        run as callbacks of their timeouts (:meth:`_call`): the same events in the same order as
        a loop in this generator, without SimPy resuming a generator per call (half the cost)."""
        timeout = env.timeout(phase)
        yield timeout
        self._call(timeout)

    def _call(self, timeout: simpy.Timeout) -> None:
        """When ``timeout`` fires: a GetRecords call, then (until SHARD_END) the next call's timeout."""
        env, app = timeout.env, self.app
        busy = self.poll(env.now)
        if self.finished_at is not None:
            app.stream.release_closed(self.shard)  # free what every reader of it has read
            return
        env.timeout(busy + app.spec.poll_interval).callbacks.append(self._call)

    def poll(self, now: float) -> float:
        """One GetRecords call and the processing of its records; returns the busy time (s)."""
        app, shard = self.app, self.shard
        res = app.stream.get_records(shard, self.position, now, app.spec.max_records)
        start, end = res.start, res.end
        if start > res.expired_start:
            self._expire(res.expired_start, start)
        app.get_records_calls += 1
        if res.throttled:  # no records; the backlog and lag are still this worker's (a starved reader shows them)
            app.throttled_calls += 1
            self._note_waiting(now)
            return 0.0
        self.position = end
        log = shard.log
        if shard.closed_at is not None and end >= log.end:
            self.finished_at = now  # SHARD_END: no NextShardIterator; the children may start
        p, s = app.grid.index(now), shard.index
        pp = app.per_period
        pp["backlog_records"][p, s] = res.tip - end
        pp["MillisBehindLatest"][p, s] = res.millis_behind_latest
        age, ages = res.iterator_age_ms, pp["GetRecords.IteratorAgeMilliseconds"]
        if not age <= ages[p, s]:
            ages[p, s] = age
        if age > app.max_iterator_age_ms:
            app.max_iterator_age_ms = age
        n = end - start
        if n == 0:
            return 0.0
        if app.sink is not None:
            app.sink(shard, start, end, now)
        # record i is done at now + (i + 1) * per_record: all at ``now`` without processing time
        per_record = app.per_record
        done = now + per_record * np.arange(1, n + 1) if per_record else now
        app.latency.add_since(done, log.column("event", start, end))
        app.trace.processed(app.index, log.column("trace", start, end), done)
        app.records_processed += n
        pp["records_processed"][p, s] += n
        return app.per_batch + n * per_record

    def _expire(self, start: int, end: int) -> None:
        """Rows ``[start, end)`` were trimmed by retention before this worker read them."""
        app = self.app
        app.records_expired += end - start
        app.trace.expired(app.index, self.shard.log.column("trace", start, end))
        self.position = end

    def finish(self, now: float, retention: float) -> None:
        """At the end of the run: count records that retention trimmed before this worker read them."""
        log = self.shard.log
        start = log.first_at_or_after(self.position, now - retention)
        if start > self.position:
            self._expire(self.position, start)
