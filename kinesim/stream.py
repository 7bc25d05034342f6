"""The Kinesis data stream: shards, hash key ranges, write and read limits, sequence numbers,
retention. Passive objects called by the producer and consumer processes.

Sources: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html (per-record
results), API_GetRecords.html (read limits, MillisBehindLatest), API_PutRecord.html (MD5 hashing,
sequence numbers increase per shard), https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html
(retention). Limits: :mod:`kinesim.limits`; numbers: :mod:`kinesim.aws`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kinesim.batch import RecordBatch
from kinesim.hashing import Router, even_ranges
from kinesim.limits import ReadLimiter, WriteLimiter, accept_prefix, stable_order
from kinesim.log import ShardLog
from kinesim.metrics import ShardMetrics
from kinesim.scenario import Stream as StreamSpec


@dataclass
class Shard:
    """One shard: id, hash key range (inclusive, Python ints), lineage, log and read limiter."""

    index: int
    shard_id: str
    start_hash: int
    end_hash: int
    opened_at: float
    log: ShardLog
    reads: ReadLimiter
    parent: str | None = None
    adjacent_parent: str | None = None
    closed_at: float | None = None
    starting_seq: int = 0
    ending_seq: int | None = None
    readers: list = field(default_factory=list)  # objects with an int ``position``

    def keep_from(self) -> int:
        """Oldest position some reader still needs (the tip when nobody reads)."""
        return min((r.position for r in self.readers), default=self.log.end)


@dataclass
class Event:
    """One row of the ``events`` trace: ``time`` (s), ``kind`` (e.g. ``SplitShard``,
    ``ReshardComplete``), ``detail`` (text) and ``error`` (the AWS error name, or ``""``)."""

    time: float
    kind: str
    detail: str
    error: str = ""


@dataclass
class ReadResult:
    """What one GetRecords call returned: rows ``[start, end)`` of the shard's log."""

    throttled: bool
    start: int = 0
    end: int = 0
    expired_start: int = 0  # rows [expired_start, start) were trimmed by retention before this read
    iterator_age_ms: float = 0.0
    millis_behind_latest: float = 0.0
    tip: int = 0  # the shard's newest visible position at the call


class Stream:
    """A stream of ``spec.shards`` shards with the even ranges CreateStream gives. Its shards
    change only through :meth:`split_shard` / :meth:`merge_shards` + :meth:`resharded`, driven by
    :mod:`kinesim.resharding` (which also sets ``status`` and fills ``events``)."""

    def __init__(self, spec: StreamSpec, metrics: ShardMetrics):
        self.spec = spec
        self.limits = spec.limits
        self.metrics = metrics
        self.shards: list[Shard] = []
        self.next_seq = 0  # stream-wide counter: unique in the stream, increasing per shard
        self.status = "ACTIVE"  # StreamStatus: ACTIVE, or UPDATING while a reshard is in progress
        self.events: list[Event] = []  # the ``events`` trace (kinesim.resharding and others append)
        self.on_reshard: list = []  # callbacks ``f(new_shards, now)`` run after each reshard
        self.writes = WriteLimiter(0, self.limits.write_records_per_s, self.limits.write_bytes_per_s,
                                   self.limits.write_model, self.limits.burst)
        for start, end in even_ranges(spec.shards):
            self._open_shard(start, end, 0.0)
        self._rebuild_router()

    # ------------------------------------------------------------ shards
    def _open_shard(self, start: int, end: int, now: float, parent: str | None = None, adjacent: str | None = None) -> Shard:
        i = len(self.shards)
        shard = Shard(i, f"shardId-{i:012d}", start, end, now, ShardLog(),
                      ReadLimiter(self.limits.read_calls_per_s, self.limits.read_bytes_per_s),
                      parent, adjacent, starting_seq=self.next_seq)
        self.shards.append(shard)
        self.writes.add_shards(1, now)
        return shard

    def _rebuild_router(self) -> None:
        open_shards = [s for s in self.shards if s.closed_at is None]
        self.router = Router([s.start_hash for s in open_shards], [s.index for s in open_shards])

    def open_shards(self) -> list[Shard]:
        return [s for s in self.shards if s.closed_at is None]

    # ------------------------------------------------------------ resharding (driven by kinesim.resharding)
    def split_shard(self, shard: Shard, new_starting_hash_key: int, now: float) -> tuple[Shard, Shard]:
        """Close ``shard`` and open its two children: ``[start, new_starting_hash_key - 1]`` (the
        lower id) and ``[new_starting_hash_key, end]``, both with ``ParentShardId`` = ``shard``.
        Call :meth:`resharded` once the operation's shards are all made."""
        self._close(shard, now)
        low = self._open_shard(shard.start_hash, new_starting_hash_key - 1, now, shard.shard_id)
        high = self._open_shard(new_starting_hash_key, shard.end_hash, now, shard.shard_id)
        return low, high

    def merge_shards(self, shard: Shard, adjacent: Shard, now: float) -> Shard:
        """Close two adjacent shards and open their child (``ParentShardId`` = ``shard``,
        ``AdjacentParentShardId`` = ``adjacent``) over the union of their ranges."""
        lo, hi = sorted((shard, adjacent), key=lambda s: s.start_hash)
        self._close(shard, now)
        self._close(adjacent, now)
        return self._open_shard(lo.start_hash, hi.end_hash, now, shard.shard_id, adjacent.shard_id)

    def _close(self, shard: Shard, now: float) -> None:
        """CLOSED: no more writes (the router drops it); readable until retention expires. Its
        EndingSequenceNumber is a fresh number above every record it holds and below every record
        of its children."""
        shard.closed_at = now
        shard.ending_seq = self.next_seq
        self.next_seq += 1
        self.release_closed(shard)

    def release_closed(self, shard: Shard) -> None:
        """Free the rows of a closed shard that every reader has passed (all, without readers)."""
        if shard.closed_at is not None:
            shard.log.release(shard.keep_from())

    def resharded(self, new: list[Shard], now: float) -> None:
        """After a reshard at the whole second ``now``, before any write of that second: grow the
        metrics, route to the open shards, and tell the readers (``on_reshard``) about ``new``."""
        missing = len(self.shards) - self.metrics.values["IncomingRecords"].shape[1]
        if missing > 0:
            self.metrics.add_shards(missing)
        self._rebuild_router()
        for callback in self.on_reshard:
            callback(new, now)

    def route(self, batch: RecordBatch) -> np.ndarray:
        """Index of the open shard for each record (MD5 hash key in the shard's range)."""
        return self.router.route(batch.hash_hi, batch.hash_lo)

    # ------------------------------------------------------------ writes
    def put(self, now: float, users: RecordBatch, user_k: np.ndarray, k_shard: np.ndarray, k_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write the Kinesis records of one flush (all PutRecords calls of it) at time ``now``.

        ``k_shard``/``k_size`` (length K) describe the Kinesis records in arrival order,
        ``user_k`` (length n, non-decreasing) the Kinesis record holding each user record.
        Returns per *user* record: accepted (bool), sequence number (int64, -1 if rejected)
        and sub-sequence number (position inside a KPL aggregate).
        """
        acc_k, _ = self.accept(now, k_shard, k_size)
        return self.commit(np.full(len(k_shard), now), users, user_k, k_shard, k_size, acc_k)

    def accept(self, now: float, k_shard: np.ndarray, k_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which Kinesis records (in arrival order) the shards accept with the capacity they have
        at ``now`` (the window of ``now``), without taking it. Returns the mask and the records
        capacity each shard had (so a caller can tell whether the record limit was exhausted)."""
        avail_r, avail_b = self.writes.available(now)
        return accept_prefix(k_shard, k_size, avail_r, avail_b), avail_r

    def commit(self, k_time: np.ndarray, users: RecordBatch, user_k: np.ndarray, k_shard: np.ndarray,
               k_size: np.ndarray, acc_k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write the accepted Kinesis records (``acc_k``), each arriving at ``k_time``: take their
        capacity, count the CloudWatch metrics, assign sequence numbers (in arrival-time order, then
        shard order: unique in the stream and increasing per shard) and append them to the logs.
        All ``k_time`` must fall in one write window. Returns what :meth:`put` returns."""
        n_shards = len(self.shards)
        acc_shard, acc_size = k_shard[acc_k], k_size[acc_k]
        self.writes.consume(np.bincount(acc_shard, minlength=n_shards),
                            np.bincount(acc_shard, weights=acc_size, minlength=n_shards))
        single_time = len(k_time) == 0 or k_time[0] == k_time[-1] and k_time.min() == k_time.max()
        m = self.metrics
        m.add_records("IncomingRecords", k_time[acc_k], acc_shard, None, single_time)
        m.add_records("IncomingBytes", k_time[acc_k], acc_shard, acc_size, single_time)
        m.add_put_payload_units(acc_size)
        m.add_records("WriteProvisionedThroughputExceeded", k_time[~acc_k], k_shard[~acc_k], None, single_time)
        # sequence numbers: in arrival-time order, then shard order, then arrival order
        k_seq = np.full(len(k_shard), -1, dtype=np.int64)
        acc_idx = np.flatnonzero(acc_k)
        if single_time:
            order = acc_idx[stable_order(k_shard[acc_idx], n_shards)]
            by_shard = order
        else:
            order = acc_idx[np.lexsort((k_shard[acc_idx], k_time[acc_idx]))]
            by_shard = order[stable_order(k_shard[order], n_shards)]
        k_seq[order] = self.next_seq + np.arange(len(order))
        self.next_seq += len(order)
        aggregated = len(user_k) != len(k_shard)
        if aggregated:
            accepted = acc_k[user_k]
            seq = k_seq[user_k]
            first = np.ones(len(user_k), dtype=bool)
            first[1:] = user_k[1:] != user_k[:-1]
            run_start = np.maximum.accumulate(np.where(first, np.arange(len(user_k)), 0))
            subseq = (np.arange(len(user_k)) - run_start).astype(np.int32)
            idx = np.flatnonzero(accepted)
            idx = idx[np.lexsort((seq[idx], k_shard[user_k[idx]]))]  # by shard, then sequence
        else:
            accepted, seq = acc_k, k_seq
            first = np.ones(len(user_k), dtype=bool)
            subseq = np.zeros(len(user_k), dtype=np.int32)
            idx = by_shard
        if len(idx):
            self._append(users, user_k, idx, first, k_size, k_shard, k_time, seq, subseq)
        return accepted, seq, subseq

    def _append(self, users, user_k, idx, first, k_size, k_shard, k_time, seq, subseq) -> None:
        """Append user rows ``idx`` (grouped by shard, in sequence order) to their shards' logs."""
        kk = user_k[idx]
        cols = {
            "arrival": k_time[kk], "event": users.event_time[idx], "size": users.size[idx], "seq": seq[idx],
            "subseq": subseq[idx], "trace": users.trace[idx], "fleet": users.fleet[idx],
            "sensor": users.sensor[idx], "key": users.key[idx],
        }
        k_first = first[idx]
        k_bytes = np.where(k_first, k_size[kk], 0)
        shard_of = k_shard[kk]
        bounds = np.flatnonzero(shard_of[1:] != shard_of[:-1]) + 1
        edges = [0, *bounds.tolist(), len(idx)]
        for a, b in zip(edges[:-1], edges[1:]):
            shard = self.shards[int(shard_of[a])]
            shard.log.append({name: col[a:b] for name, col in cols.items()}, k_first[a:b], k_bytes[a:b], shard.keep_from())

    # ------------------------------------------------------------ reads
    def get_records(self, shard: Shard, position: int, now: float, max_records: int) -> ReadResult:
        """One GetRecords call on ``shard`` from ``position`` (an absolute log position).

        Records older than the retention period are skipped first (``expired_start..start``).
        A throttled call (5 calls/s or 2 MiB/s per shard, shared) returns nothing and counts in
        ``ReadProvisionedThroughputExceeded``. Otherwise it returns up to ``max_records`` Kinesis
        records and ``get_records_max_bytes``. ``GetRecords.IteratorAgeMilliseconds`` is the age of the
        last record returned (0 when the call is at the tip); ``MillisBehindLatest`` is how far the
        next unread record is behind now (0 when caught up).
        """
        log = shard.log
        tip = log.visible_end(now)
        horizon = now - self.spec.retention
        start = log.first_at_or_after(position, horizon) if position < tip else position
        if not shard.reads.allow(now):
            self.metrics.add_one("ReadProvisionedThroughputExceeded", now, shard.index, 1)
            return ReadResult(True, start, start, position, tip=tip)
        end = log.find_end(start, max_records, self.limits.get_records_max_bytes, tip)
        if end > start:
            k0, b0 = log.k_before(start)
            k1, b1 = log.k_before(end)
            shard.reads.charge(b1 - b0)
            self.metrics.add_one("OutgoingRecords", now, shard.index, k1 - k0)
            self.metrics.add_one("OutgoingBytes", now, shard.index, b1 - b0)
            age = (now - float(log.column("arrival", end - 1, end)[0])) * 1000.0
        else:
            shard.reads.charge(0)
            age = 0.0
        behind = (now - float(log.column("arrival", end, end + 1)[0])) * 1000.0 if end < tip else 0.0
        self.metrics.max_one("GetRecords.IteratorAgeMilliseconds", now, shard.index, age)
        return ReadResult(False, start, end, position, age, behind, tip)
