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
from kinesim.log import READ_COLUMNS, ShardLog, stored_columns
from kinesim.metrics import ShardMetrics
from kinesim.scenario import Stream as StreamSpec

#: Log columns taken from the user records: (log column, RecordBatch column).
_USER_COLUMNS = (("event", "event_time"), ("size", "size"), ("trace", "trace"), ("fleet", "fleet"),
                 ("sensor", "sensor"), ("key", "key"))


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


@dataclass(slots=True)
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

    def __init__(self, spec: StreamSpec, metrics: ShardMetrics, log_columns=None):
        """``log_columns``: the log columns the run's readers read (:class:`kinesim.log.ShardLog`),
        all by default."""
        self.spec = spec
        self.limits = spec.limits
        self.metrics = metrics
        self.shards: list[Shard] = []
        self.log_columns = stored_columns(log_columns)
        self.next_seq = 0  # stream-wide counter: unique in the stream, increasing per shard
        self.status = "ACTIVE"  # StreamStatus: ACTIVE, or UPDATING while a reshard is in progress
        self.events: list[Event] = []  # the ``events`` trace (kinesim.resharding and others append)
        self.on_reshard: list = []  # callbacks ``f(new_shards, now)`` run after each reshard
        self.writes = WriteLimiter(0, self.limits.write_records_per_s, self.limits.write_bytes_per_s,
                                   self.limits.write_model, self.limits.burst)
        self._key_hi = self._key_lo = self._key_offset = None  # the partition-key tables (set_partition_keys)
        self._blocks, self._blocks_held = None, []  # log_blocks
        for start, end in even_ranges(spec.shards):
            self._open_shard(start, end, 0.0)
        self._rebuild_router()

    # ------------------------------------------------------------ shards
    def _open_shard(self, start: int, end: int, now: float, parent: str | None = None, adjacent: str | None = None) -> Shard:
        i = len(self.shards)
        shard = Shard(i, f"shardId-{i:012d}", start, end, now, ShardLog(columns=self.log_columns),
                      ReadLimiter(self.limits.read_calls_per_s, self.limits.read_bytes_per_s),
                      parent, adjacent, starting_seq=self.next_seq)
        self.shards.append(shard)
        self.writes.add_shards(1, now)
        return shard

    def _rebuild_router(self) -> None:
        open_shards = [s for s in self.shards if s.closed_at is None]
        self.router = Router([s.start_hash for s in open_shards], [s.index for s in open_shards])
        if self._key_hi is not None:
            self.key_shard = self.router.route(self._key_hi, self._key_lo)

    def set_partition_keys(self, tables: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """The partition keys records can have: per fleet, the ``(hi, lo)`` MD5 hash keys of its
        key table (:class:`kinesim.fleet.Fleet`). Each key is routed once here and again after
        every reshard (``key_shard``, concatenated in fleet order), so :meth:`route` is a gather."""
        sizes = [len(hi) for hi, _ in tables]
        self._key_hi = np.concatenate([hi for hi, _ in tables])
        self._key_lo = np.concatenate([lo for _, lo in tables])
        self._key_offset = np.concatenate(([0], np.cumsum(sizes[:-1]))).astype(np.int64) if len(tables) > 1 else None
        self._rebuild_router()

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
        """Index of the open shard for each record (its partition key's MD5 hash key in the
        shard's range): a lookup of ``(fleet, key)`` in the table of :meth:`set_partition_keys`."""
        if self._key_hi is None:
            raise RuntimeError("Stream.route needs the partition-key tables: call set_partition_keys first")
        if self._key_offset is None:  # one fleet
            return self.key_shard[batch.key]
        return self.key_shard[self._key_offset[batch.fleet] + batch.key]

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

    def accept(self, now: float, k_shard: np.ndarray, k_size: np.ndarray, compiled: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Which Kinesis records (in arrival order) the shards accept with the capacity they have
        at ``now`` (the window of ``now``), without taking it. Returns the mask and the records
        capacity each shard had (so a caller can tell whether the record limit was exhausted).
        ``compiled``: use the numba twin of :func:`kinesim.limits.accept_prefix` (same result)."""
        avail_r, avail_b = self.writes.available(now)
        return accept_prefix(k_shard, k_size, avail_r, avail_b, compiled), avail_r

    def commit(self, k_time: np.ndarray, users: RecordBatch, user_k: np.ndarray, k_shard: np.ndarray,
               k_size: np.ndarray, acc_k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write the accepted Kinesis records (``acc_k``), each arriving at ``k_time``: take their
        capacity, count the CloudWatch metrics, assign sequence numbers (in arrival-time order, then
        shard order: unique in the stream and increasing per shard) and append them to the logs.
        All ``k_time`` must fall in one write window; every Kinesis record holds a user record.
        Returns what :meth:`put` returns."""
        n_shards = len(self.shards)
        acc_idx = np.flatnonzero(acc_k)
        acc_shard, acc_size = k_shard[acc_idx], k_size[acc_idx]
        n_acc = np.bincount(acc_shard, minlength=n_shards)
        b_acc = np.bincount(acc_shard, weights=acc_size, minlength=n_shards)
        self.writes.consume(n_acc, b_acc)
        single_time = len(k_time) == 0 or k_time[0] == k_time[-1] and k_time.min() == k_time.max()
        ordered = single_time or bool(np.all(k_time[1:] >= k_time[:-1]))  # times do not decrease
        self._count_writes(k_time, k_shard, acc_k, acc_shard, acc_size, n_acc, b_acc, ordered)
        k_seq, by_shard = self._number(k_time, k_shard, acc_idx, acc_shard, single_time, ordered)
        n = len(user_k)
        if n == len(k_shard):  # one user record per Kinesis record (``user_k`` is 0, 1, 2, ...)
            accepted, seq, subseq, k_start = acc_k, k_seq, np.zeros(n, dtype=np.int32), None
        else:  # KPL aggregates: Kinesis record k holds the user rows ``[k_start[k], k_start[k + 1])``
            accepted, seq = acc_k[user_k], k_seq[user_k]
            k_start = np.flatnonzero(np.diff(user_k, prepend=-1))
            subseq = (np.arange(n) - np.repeat(k_start, np.diff(k_start, append=n))).astype(np.int32)
        if len(by_shard):
            self.append_logs(users, by_shard, k_start, subseq, n_acc, k_time, k_size, k_seq, single_time)
        return accepted, seq, subseq

    def _count_writes(self, k_time, k_shard, acc_k, acc_shard, acc_size, n_acc, b_acc, ordered) -> None:
        """CloudWatch ``IncomingRecords``/``IncomingBytes`` of the accepted Kinesis records,
        ``WriteProvisionedThroughputExceeded`` of the rejected ones, and PUT payload units. When
        all times fall in one metrics period these are the per-shard sums :meth:`commit` made."""
        m = self.metrics
        m.add_put_payload_units(acc_size)
        if len(k_time) == 0:
            return
        t0, t1 = (float(k_time[0]), float(k_time[-1])) if ordered else (float(k_time.min()), float(k_time.max()))
        if m.grid.index(t0) == m.grid.index(t1):
            m.add("IncomingRecords", t0, n_acc)
            m.add("IncomingBytes", t0, b_acc)
            m.add("WriteProvisionedThroughputExceeded", t0, np.bincount(k_shard, minlength=len(n_acc)) - n_acc)
        else:
            rejected = ~acc_k
            m.add_records("IncomingRecords", k_time[acc_k], acc_shard, None, False)
            m.add_records("IncomingBytes", k_time[acc_k], acc_shard, acc_size, False)
            m.add_records("WriteProvisionedThroughputExceeded", k_time[rejected], k_shard[rejected], None, False)

    def _number(self, k_time, k_shard, acc_idx, acc_shard, single_time, ordered) -> tuple[np.ndarray, np.ndarray]:
        """Sequence numbers of the Kinesis records (-1 if rejected): in arrival-time order, then
        shard order, then arrival order. Also returns the accepted ones grouped by shard in
        sequence order: when the times do not decrease, a stable sort by shard."""
        n_shards = len(self.shards)
        k_seq = np.full(len(k_shard), -1, dtype=np.int64)
        if ordered:
            by_shard = acc_idx[stable_order(acc_shard, n_shards)]
            order = by_shard
            if not single_time and len(acc_idx):  # by (rank of the time, shard): a small int key
                t = k_time[acc_idx]
                rank = np.concatenate(([0], np.cumsum(t[1:] != t[:-1])))
                order = acc_idx[stable_order(rank * n_shards + acc_shard, (int(rank[-1]) + 1) * n_shards)]
        else:
            order = acc_idx[np.lexsort((acc_shard, k_time[acc_idx]))]
            by_shard = order[stable_order(k_shard[order], n_shards)]
        k_seq[order] = self.next_seq + np.arange(len(order))
        self.next_seq += len(order)
        return k_seq, by_shard

    def append_logs(self, users, by_shard, k_start, subseq, n_acc, k_time, k_size, k_seq, single_time) -> None:
        """Append the accepted Kinesis records ``by_shard`` (grouped by shard, ``n_acc`` each, in
        sequence order) to their shards' logs, one row per user record (``k_start``: see
        :meth:`commit`; ``None`` when each holds one). Each stored column is built once for all
        shards."""
        stored = self.log_columns
        ksz = k_size[by_shard]
        kb_end = np.cumsum(ksz)  # Kinesis-record columns, counted from 0 (ShardLog.append shifts them)
        cols = {"arrival": np.full(len(by_shard), k_time[0]) if single_time else k_time[by_shard],
                "k_index": np.arange(len(by_shard)), "kb_start": kb_end - ksz, "kb_end": kb_end}
        if "seq" in stored:
            cols["seq"] = k_seq[by_shard]
        ends = np.cumsum(n_acc)
        if k_start is None:
            idx = by_shard
            if "subseq" in stored:
                cols["subseq"] = subseq[: len(idx)]  # zeros
        else:  # the user rows of each Kinesis record, in order
            lens = np.diff(k_start, append=len(subseq))[by_shard]
            row_end = np.cumsum(lens)
            idx = np.repeat(k_start[by_shard] - (row_end - lens), lens) + np.arange(row_end[-1])
            cols = {name: np.repeat(col, lens) for name, col in cols.items()}
            if "subseq" in stored:
                cols["subseq"] = subseq[idx]
            ends = np.concatenate(([0], row_end))[ends]
        for name, column in _USER_COLUMNS:
            if name in stored:
                cols[name] = getattr(users, column)[idx]
        a = 0
        for shard, b in zip(self.shards, ends.tolist()):
            if b > a:
                shard.log.append(cols, a, b, shard.keep_from())
            a = b

    def append_block(self, users, by_shard, n_acc, seq, write) -> None:
        """:meth:`append_logs` of a window whose Kinesis records are its user records (no
        aggregation), the read columns written in place by ``write(blocks, at, total_k,
        total_kbytes)`` (a call of :func:`kinesim._kernels_rows.compiled_log_write`, given the
        typed list of the shards' blocks, where each shard's rows start and its counts so far); the
        other stored columns are gathered here. Returns what ``write`` returns."""
        stored, extra = self.log_columns, {}
        if "seq" in stored:
            extra["seq"] = seq[by_shard]
        if "subseq" in stored:
            extra["subseq"] = np.zeros(len(by_shard), np.int32)
        for name, column in _USER_COLUMNS:
            if name in stored and name not in READ_COLUMNS:
                extra[name] = getattr(users, column)[by_shard]
        counts = n_acc.tolist()
        for shard, m in zip(self.shards, counts):
            if m:
                shard.log.reserve(m, shard.keep_from())
        at = np.fromiter((s.log.n for s in self.shards), np.int64, len(self.shards))
        out = write(self.log_blocks(), at, *self.log_totals())
        a = 0
        for shard, m in zip(self.shards, counts):
            if m:
                shard.log.appended(m, extra, a)
                a += m
        return out

    def log_blocks(self):
        """The shards' log blocks (:attr:`kinesim.log.ShardLog.block`) as a numba typed list, for
        the compiled kernels that read or write the logs in place; kept up to date as logs grow
        and shards open (needs numba)."""
        held = self._blocks_held
        if self._blocks is None:
            from numba.typed import List

            held.extend(s.log.block for s in self.shards)
            self._blocks = List(held)
        for i, shard in enumerate(self.shards):
            if i == len(held):
                held.append(shard.log.block)
                self._blocks.append(shard.log.block)
            elif held[i] is not shard.log.block:  # the log grew into a new block (its items box anew: compare here)
                held[i] = self._blocks[i] = shard.log.block
        return self._blocks

    def log_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Per shard, the Kinesis records and bytes its log has ever held (where the next
        append's counts start)."""
        n = len(self.shards)
        return (np.fromiter((s.log.total_k for s in self.shards), np.int64, n),
                np.fromiter((s.log.total_kbytes for s in self.shards), np.int64, n))

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
        # arrival times are simulated times (>= 0): nothing expires during the first retention period
        start = log.first_at_or_after(position, horizon) if position < tip and horizon > 0.0 else position
        if not shard.reads.allow(now):
            self.metrics.add_one("ReadProvisionedThroughputExceeded", now, shard.index, 1)
            return ReadResult(True, start, start, position, tip=tip)
        end, records, nbytes = log.read_span(start, max_records, self.limits.get_records_max_bytes, tip)
        shard.reads.charge(nbytes)
        age = (now - log.arrival_at(end - 1)) * 1000.0 if end > start else 0.0
        behind = (now - log.arrival_at(end)) * 1000.0 if end < tip else 0.0
        self.metrics.add_read(now, shard.index, records, nbytes, age)
        return ReadResult(False, start, end, position, age, behind, tip)
