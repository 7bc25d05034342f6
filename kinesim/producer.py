"""The producer of a fleet: KPL-like buffering, aggregation, PutRecords and retries.

Every ``max_buffered_time`` (KPL RecordMaxBufferedTime) the producer flushes what its sensors
measured plus the retries that are due. Records over the maximum record size are refused; records
older than ``record_ttl`` (KPL RecordTtl) are dropped; the rest go to the stream in PutRecords calls
of at most 500 records and ``put_records_max_bytes`` (API_PutRecords.html; KPL CollectionMaxCount /
CollectionMaxSize). With ``aggregation`` the user records of each shard are first packed into
Kinesis records of at most ``aggregation_max_size`` (KPL AggregationMaxSize, 51,200 bytes), so one
Kinesis record counts once against the 1,000 records/s limit while its bytes still count in full
(https://docs.aws.amazon.com/streams/latest/dev/kinesis-kpl-concepts.html).

Throttled records come back with their attempt count raised and a backoff delay; a record whose
``max_attempts`` are spent is dropped. Sources of the defaults: :mod:`kinesim.aws`.
"""
from __future__ import annotations

import numpy as np

from kinesim import aws
from kinesim.batch import RecordBatch
from kinesim.limits import greedy_groups
from kinesim.retry_window import RetryPolicy, delays
from kinesim.scenario import Producer as ProducerSpec
from kinesim.stream import Stream
from kinesim.tracing import DROP_REASONS, RecordTrace

COUNTERS = ("records_produced", "put_attempts", "records_throttled", "records_retried", "records_accepted",
            "records_dropped", "put_records_calls", "put_records_failed_calls", "kinesis_records_sent")


def aggregate(size: np.ndarray, group: np.ndarray, max_size: int, breaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KPL aggregation: pack user records (``size`` bytes each, contiguous runs of equal ``group``,
    e.g. the shard) greedily into Kinesis records of at most ``max_size`` bytes. Each user record
    costs ``size + KPL_RECORD_OVERHEAD`` and each aggregate adds ``KPL_AGGREGATE_OVERHEAD``
    (:mod:`kinesim.aws`). ``breaks`` (bool) forces extra aggregate starts. Returns the aggregate of
    each user record (int64, non-decreasing), each aggregate's bytes and group.

    A Kinesis record holding a single user record is sent as that plain record, without the
    aggregation framing (KPL ``KinesisRecord::serialize`` and ``accurate_size``,
    https://github.com/awslabs/amazon-kinesis-producer/blob/master/aws/kinesis/core/kinesis_record.cc),
    so its size is the user record's: a record of the maximum record size stays sendable."""
    new_group = np.ones(len(group), dtype=bool)
    new_group[1:] = group[1:] != group[:-1]
    if breaks is not None:
        new_group |= breaks
    cost = size + aws.KPL_RECORD_OVERHEAD
    user_k = greedy_groups(cost, max_size - aws.KPL_AGGREGATE_OVERHEAD, breaks=new_group)
    k_size = np.bincount(user_k, weights=cost).astype(np.int64) + aws.KPL_AGGREGATE_OVERHEAD
    k_size[np.bincount(user_k) == 1] -= aws.KPL_AGGREGATE_OVERHEAD + aws.KPL_RECORD_OVERHEAD
    k_group = group[np.flatnonzero(np.diff(np.concatenate(([-1], user_k))))]
    return user_k, k_size, k_group


class ProducerStats:
    """Per-period counters of one producer (arrays of length ``periods``) plus totals by reason."""

    def __init__(self, periods: int):
        self.per_period = {name: np.zeros(periods, dtype=np.int64) for name in COUNTERS}
        self.dropped_by_reason = {reason: 0 for reason in DROP_REASONS[1:]}

    def add(self, period: int, **counts: int) -> None:
        for name, value in counts.items():
            self.per_period[name][period] += value

    def add_at(self, name: str, periods: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add one (or ``weights``) at each period index in ``periods``."""
        if len(periods) == 0:
            return
        if periods[0] == periods[-1] and periods.min() == periods.max():
            self.per_period[name][periods[0]] += len(periods) if weights is None else int(weights.sum())
        else:
            np.add.at(self.per_period[name], periods, 1 if weights is None else weights)

    def total(self, name: str) -> int:
        return int(self.per_period[name].sum())


class Producer:
    """Sends a fleet's records to ``stream``; keeps the retry buffer between flushes."""

    def __init__(self, spec: ProducerSpec, stream: Stream, stats: ProducerStats, trace: RecordTrace,
                 rng: np.random.Generator, period_of):
        self.spec = spec
        self.stream = stream
        self.stats = stats
        self.trace = trace
        self.rng = rng
        self.policy = RetryPolicy.of(spec)  # retries and record_ttl in the retry chain's terms
        self.period_of = period_of
        self.pending = RecordBatch.empty()  # throttled records waiting for their retry
        self.unflushed = 0  # records measured after the last flush of the run (set at its end)

    @property
    def buffered(self) -> int:
        """Records held by the producer (waiting for a retry)."""
        return len(self.pending)

    def flush(self, now: float, new: RecordBatch) -> None:
        """One flush at ``now`` of the newly measured records ``new`` plus the due retries."""
        p = self.period_of(now)
        limits = self.stream.limits
        self.stats.add(p, records_produced=len(new))
        too_large = new.size > limits.max_record_size
        if too_large.any():
            self._drop(p, new.take(too_large), "record_too_large")
            new = new.take(~too_large)
        batch = new
        if len(self.pending):
            is_due = self.pending.ready_time <= now + 1e-9
            due = self.pending.take(is_due)
            self.pending = self.pending.take(~is_due)
            expired = now - due.event_time > self.spec.record_ttl + 1e-9
            if expired.any():  # only retried records can be this old: new ones are < one flush old
                self._drop(p, due.take(expired), "record_ttl")
                due = due.take(~expired)
            batch = RecordBatch.concat([due, new])
        if len(batch) == 0:
            return
        shard = self.stream.route(batch)
        if self.spec.aggregation:
            order = np.argsort(shard, kind="stable")
            batch, shard = batch.take(order), shard[order]
            user_k, k_size, k_shard = aggregate(batch.size, shard, self.spec.aggregation_max_size)
        else:
            user_k = np.arange(len(batch))
            k_size, k_shard = batch.size, shard
        calls = greedy_groups(k_size, limits.put_records_max_bytes, limits.put_records_max_records)
        accepted, seq, subseq = self.stream.put(now, batch, user_k, k_shard, k_size)
        n_calls = int(calls[-1]) + 1
        failed_calls = int(np.count_nonzero(np.bincount(calls[user_k[~accepted]], minlength=n_calls)))
        self.trace.put_outcome(batch, accepted, shard, seq, subseq, now)
        throttled = batch.take(~accepted)
        n_thr = len(throttled)
        self.stats.add(p, put_attempts=len(batch), records_accepted=len(batch) - n_thr, records_throttled=n_thr,
                       put_records_calls=n_calls, put_records_failed_calls=failed_calls,
                       kinesis_records_sent=len(k_size))
        if n_thr:
            self._retry(p, now, throttled)

    def _retry(self, p: int, now: float, throttled: RecordBatch) -> None:
        attempts = throttled.attempts + 1
        spent = attempts >= self.spec.retries.max_attempts
        if spent.any():
            self._drop(p, throttled.take(spent), "max_attempts")
        keep = ~spent
        again = throttled.take(keep)
        if len(again) == 0:
            return
        delay = self.backoff(attempts[keep])
        self.stats.add(p, records_retried=len(again))
        self.pending = RecordBatch.concat([self.pending, again.replace(attempts=attempts[keep], ready_time=now + delay)])

    def backoff(self, attempts: np.ndarray) -> np.ndarray:
        """Delay (s) before the next attempt of records that made ``attempts`` attempts
        (:func:`kinesim.retry_window.delays`)."""
        return delays(attempts, self.policy, self.rng)

    def _drop(self, p: int | np.ndarray, batch: RecordBatch, reason: str) -> None:
        """Give records up for ``reason``, at period ``p`` (an index, or one per record)."""
        self.drop_counted(np.full(len(batch), p) if not isinstance(p, np.ndarray) else p, batch.trace, reason)

    def drop_counted(self, p: np.ndarray, trace: np.ndarray, reason: str) -> None:
        """Give records up for ``reason`` at periods ``p`` (one per record); ``trace`` holds their
        rows in the records trace (-1: not sampled)."""
        self.stats.add_at("records_dropped", p)
        self.stats.dropped_by_reason[reason] += len(p)
        self.trace.dropped(trace, DROP_REASONS.index(reason))
