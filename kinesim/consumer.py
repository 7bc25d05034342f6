"""Polling consumers (KCL-like): one worker per shard per consumer application.

A worker calls GetRecords, processes the batch (``per_batch`` + ``per_record`` × records, during
which it is busy), then waits ``poll_interval`` (KCL idleTimeBetweenReadsInMillis) before the next
call. A throttled call returns nothing and the worker waits ``poll_interval`` again. Workers start
at a random phase within the first ``poll_interval`` (their own random stream), as independent KCL
workers do. Record ``i`` (0-based) of a batch fetched at ``t`` is processed at
``t + (i + 1) × per_record``; the batch ends at ``t + per_batch + n × per_record``.

Sources: https://docs.aws.amazon.com/streams/latest/dev/shared-throughput-kcl-consumers.html (one
lease per shard), https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html (limits).
"""
from __future__ import annotations

import numpy as np
import simpy

from kinesim.metrics import LatencyHistogram, PeriodGrid
from kinesim.scenario import Consumer as ConsumerSpec
from kinesim.stream import Shard, Stream
from kinesim.tracing import RecordTrace


class ConsumerApp:
    """A consumer application: its workers, counters and per-period trace (arrays periods × shards)."""

    def __init__(self, index: int, spec: ConsumerSpec, stream: Stream, grid: PeriodGrid, trace: RecordTrace,
                 rng: np.random.Generator):
        self.index = index
        self.spec = spec
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
        for shard in self.stream.open_shards():
            worker = Worker(self, shard)
            self.workers.append(worker)
            env.process(worker.run(env, float(self.rng.random()) * self.spec.poll_interval))

    def backlog(self) -> int:
        """Records (user records) not yet read, over all shards."""
        return sum(w.shard.log.end - w.position for w in self.workers)


class Worker:
    """The worker of one consumer application on one shard; ``position`` is its iterator."""

    def __init__(self, app: ConsumerApp, shard: Shard):
        self.app = app
        self.shard = shard
        self.position = shard.log.end if app.spec.start == "latest" else shard.log.start
        shard.readers.append(self)

    def run(self, env: simpy.Environment, phase: float):
        app, spec = self.app, self.app.spec
        per_record, per_batch = spec.processing_time.per_record, spec.processing_time.per_batch
        yield env.timeout(phase)
        while True:
            now = env.now
            busy = self.poll(now, per_record, per_batch)
            yield env.timeout(busy + spec.poll_interval)

    def poll(self, now: float, per_record: float, per_batch: float) -> float:
        """One GetRecords call and the processing of its records; returns the busy time (s)."""
        app, shard = self.app, self.shard
        res = app.stream.get_records(shard, self.position, now, app.spec.max_records)
        log = shard.log
        if res.start > res.expired_start:
            app.records_expired += res.start - res.expired_start
            app.trace.expired(app.index, log.column("trace", res.expired_start, res.start))
            self.position = res.start
        p = app.grid.index(now)
        s = shard.index
        app.get_records_calls += 1
        if res.throttled:
            app.throttled_calls += 1
            return 0.0
        n = res.end - res.start
        self.position = res.end
        pp = app.per_period
        pp["backlog_records"][p, s] = res.tip - self.position
        pp["MillisBehindLatest"][p, s] = res.millis_behind_latest
        age = pp["GetRecords.IteratorAgeMilliseconds"]
        if not res.iterator_age_ms <= age[p, s]:
            age[p, s] = res.iterator_age_ms
        app.max_iterator_age_ms = max(app.max_iterator_age_ms, res.iterator_age_ms)
        if n == 0:
            return 0.0
        done = now + per_record * np.arange(1, n + 1)
        app.latency.add(done - log.column("event", res.start, res.end))
        app.trace.processed(app.index, log.column("trace", res.start, res.end), done)
        app.records_processed += n
        pp["records_processed"][p, s] += n
        return per_batch + n * per_record

    def finish(self, now: float, retention: float) -> None:
        """At the end of the run: count records that retention trimmed before this worker read them."""
        log = self.shard.log
        start = log.first_at_or_after(self.position, now - retention)
        if start > self.position:
            self.app.records_expired += start - self.position
            self.app.trace.expired(self.app.index, log.column("trace", self.position, start))
            self.position = start
