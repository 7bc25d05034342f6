"""All fleets' PutRecords traffic, one write window (one second) at a time.

The per-flush model (:meth:`kinesim.producer.Producer.flush`) is the definition. This module
computes the same thing for a whole one-second window at once when that is provably exact, and
falls back to flush-by-flush otherwise:

* Every fleet's records of the window are generated in one draw; each goes to the first flush at
  or after its event time (or its retry's ready time), the flushes of all fleets ordered by time,
  then fleet; inside a flush, retries first, then new records (the per-flush order).
* With the ``window`` write model a shard accepts, in that order, the longest prefix that fits its
  window capacity (:func:`kinesim.limits.accept_prefix`). This equals flush-by-flush acceptance
  whenever every shard that rejects anything has used its whole *record* capacity: then every
  later record of that shard and window is rejected in both models. A retry of a rejected record
  that falls in the same window is then rejected again: :mod:`kinesim.retry_window` replays the
  rejected records' flushes (one pass, no limits to check). If some shard rejected records while
  it still had record capacity (the byte limit bound first) or the model is ``token_bucket``, the
  window is replayed flush by flush.

Every user record's fate, attempts, shard, order and retry queue position equal flush-by-flush
sending's, and so do the backoff draws (``tests/test_writer_paths.py``, with and without jitter). Two counts differ slightly: with KPL aggregation the
in-window retries are packed into aggregates of their own (so Kinesis-record counts of rejected
retries differ), and failed PutRecords calls are counted as if each flush's accepted records came
first.

With the compiled twins on (:mod:`kinesim.compiled`), a window of a single producer without
aggregation is computed in one compiled pass (:mod:`kinesim.writer_fused`), with the same results.

Records are appended to the shards' logs with their arrival times at the start of the window;
consumers only see records whose arrival time has passed (:meth:`kinesim.log.ShardLog.visible_end`).
PutRecords calls are counted per flush as ``max(ceil(records / 500), ceil(bytes / 5 MiB))`` on the
fast path (exact while the byte cap does not bind).
"""
from __future__ import annotations

import math

import numpy as np

from kinesim import writer_fused as fused
from kinesim.batch import RecordBatch
from kinesim.limits import put_records_calls
from kinesim.producer import Producer, aggregate
from kinesim.retry_window import DROPPED_MAX_ATTEMPTS, DROPPED_TTL, retry_chain


def tick(k, dt: float):
    """Time of flush ``k`` of period ``dt`` (scalar or array), snapped to the nanosecond so that
    flushes on whole seconds fall in the right one-second window despite float rounding."""
    return np.round(np.asarray(k) * dt, 9)


def _flush_of(times: np.ndarray, event_time: np.ndarray) -> np.ndarray:
    """Index in ``times`` (ascending flush times) of the first flush at or after each of the
    ascending ``event_time`` (``len(times)`` after the last): ``searchsorted(times, event_time)``,
    computed from the flushes' cuts in the records (a search per flush, not per record)."""
    cut = np.searchsorted(event_time, times, side="right")  # records at or before each flush
    return np.repeat(np.arange(len(times) + 1), np.diff(cut, prepend=0, append=len(event_time)))


class FlushClock:
    """The flushes of period ``dt``, window by window: flush ``k`` (``k >= 1``) is at ``tick(k, dt)``
    and window ``w`` holds those in ``[w, w+1)`` that are before ``duration``. The times are
    sliced from a block of flushes computed at once (a window of the standard fleet costs two
    searches, not a dozen array operations; ``tests/test_writer_paths.py`` checks them against
    the flush-by-flush definition).

    The run covers ``[0, duration)``, the span of the metrics periods: a flush at exactly
    ``duration`` would write into the next one-second window (fresh capacity) while its metrics
    fold into the last period, which would then show up to twice the shard limit. Records measured
    after the last flush are not sent (:meth:`ProducerGroup.unflushed` counts them)."""

    BLOCK = 1 << 16  # flushes per block (512 KiB)

    def __init__(self, dt: float, duration: float):
        self.dt, self.duration = dt, duration
        self._k, self._t = 0, tick(np.arange(self.BLOCK), dt)  # the block's first flush and times

    def window(self, w: int) -> tuple[np.ndarray, float]:
        """The times of the flushes in window ``w`` and the time of the flush before the first
        (0.0 when there is none)."""
        dt = self.dt
        lo, hi = max(1, math.floor(w / dt) - 1), math.ceil((w + 1) / dt) + 2  # around the window's flushes
        if lo - 1 < self._k or hi > self._k + len(self._t):
            self._k = lo - 1
            self._t = tick(np.arange(lo - 1, lo - 1 + max(self.BLOCK, hi - lo + 1)), dt)
        t, k = self._t, self._k
        a = max(int(t.searchsorted(w, side="left")), 1 - k)  # flush 0 (time 0) is never one
        b = int(t.searchsorted(min(w + 1, self.duration - 1e-9), side="left"))
        if b <= a:
            return t[:0], 0.0
        return t[a:b], float(t[a - 1])


class ProducerGroup:
    """Drives every fleet's producer; :meth:`process` is the SimPy process."""

    def __init__(self, fleets, producers: list[Producer], stream, trace, grid, duration: float):
        self.fleets = fleets
        self.producers = producers
        self.stream = stream
        self.trace = trace
        self.grid = grid
        self.duration = duration
        self.fast = stream.limits.write_model == "window"
        self.compiled = False  # use the numba twins (:mod:`kinesim.compiled`); same results
        self.windows_fast = 0  # windows computed at once (of which ``windows_fused`` in one compiled pass)
        self.windows_fused = 0
        self.windows_replayed = 0
        #: Called as ``before_window(now)`` when a write window starts, before it changes anything
        #: (:class:`kinesim.consumer_fused.FusedPolls` runs the polls due by then).
        self.before_window = None

    def process(self, env):
        last = math.ceil(self.duration)
        clocks = [FlushClock(fleet.spec.producer.max_buffered_time, self.duration) for fleet in self.fleets]
        w = 0
        while w <= last:
            plan = [clock.window(w) for clock in clocks]
            starts = [times[0] for times, _ in plan if len(times)]
            if not starts:
                w = self._next_flush_window(w + 1)
                continue
            yield env.timeout(max(0.0, min(starts) - env.now))
            if self.before_window is not None:
                self.before_window(env.now)
            self.window(plan)
            w += 1

    def unflushed(self) -> list[int]:
        """Per fleet, the records its sensors measured after its producer's last flush of the run
        (in ``(last flush, duration]``; all of them when it never flushed): never sent, they are
        counted apart (summary ``records_unflushed``). Draws from the fleets' generators, so call it
        once, after the run."""
        counts = []
        for fleet in self.fleets:
            dt = fleet.spec.producer.max_buffered_time
            k = math.floor(self.duration / dt) + 1
            while k >= 1 and float(tick(k, dt)) >= self.duration - 1e-9:  # the last flush (FlushClock)
                k -= 1
            counts.append(fleet.count_between(float(tick(k, dt)) if k >= 1 else 0.0, self.duration))
        return counts

    def _next_flush_window(self, w: int) -> int:
        """The first one-second window at or after ``w`` that holds a flush of some fleet: the
        windows in between have nothing to write, so skipping them changes nothing (long runs of
        slow producers, e.g. ``max_buffered_time: 10min`` over days, would otherwise loop over
        every second)."""
        nxt = math.inf
        for fleet in self.fleets:
            dt = fleet.spec.producer.max_buffered_time
            k = max(1, math.floor(w / dt) - 1)
            while float(tick(k, dt)) < w:
                k += 1
            nxt = min(nxt, math.floor(float(tick(k, dt))))
        return max(w, int(min(nxt, math.ceil(self.duration) + 1)))

    # ------------------------------------------------------------ one window
    def window(self, plan) -> None:
        fuse = self.fast and fused.applies(self, plan)
        if fuse:  # the retry buffer then the new records, as one batch
            src, batches = fused.window_rows(self, plan)
        else:
            batches = [self.trace.assign(fleet.generate(t_prev, times[-1])) if len(times) else RecordBatch.empty()
                       for fleet, (times, t_prev) in zip(self.fleets, plan)]
        done = fuse and fused.fused_window(self, plan, src)  # finds each record's flush itself
        self.windows_fused += done
        if not done:  # each record with the index of its flush in its fleet's times
            new = [(batch, _flush_of(times, batch.event_time) if len(times) else None)
                   for batch, (times, _) in zip(batches, plan)]
            # a window the fused pass found not exact is not exact for the numpy window either
            done = self.fast and not fuse and self._fast_window(plan, new)
            if not done:
                self.windows_replayed += 1
                self._replay(plan, new)
        if done:
            self.windows_fast += 1

    def _replay(self, plan, new) -> None:
        """Flush by flush, all fleets, in time then fleet order (the definition)."""
        events = []
        for i, (times, _) in enumerate(plan):
            for j, t in enumerate(times):
                events.append((float(t), i, j))
        for t, i, j in sorted(events):
            batch, f = new[i]
            self.producers[i].flush(t, batch.take(f == j))

    def _fast_window(self, plan, new) -> bool:
        """The whole window at once; returns False (having changed nothing) when not exact."""
        limits = self.stream.limits
        all_t = np.unique(np.concatenate([times for times, _ in plan]))  # the window's flush times
        parts, keys = [], []
        for i, ((times, _), (batch, f), prod) in enumerate(zip(plan, new, self.producers)):
            if not len(times):
                continue
            pend = prod.pending
            due_mask = pend.ready_time <= times[-1] + 1e-9 if len(pend) else np.zeros(0, bool)
            due = pend.take(due_mask) if len(pend) else pend
            f_due = np.searchsorted(times, due.ready_time - 1e-9, side="left")
            expired = times[f_due] - due.event_time > prod.spec.record_ttl + 1e-9
            too_large = batch.size > limits.max_record_size
            parts.append((i, due_mask, due, f_due, expired, batch, f, too_large))
            rank = np.searchsorted(all_t, times)  # this fleet's flushes among all fleets'
            for sub, fl, kind, ok in ((due, f_due, 0, ~expired), (batch, f, 1, ~too_large)):
                if not ok.all():
                    sub, fl = sub.take(ok), fl[ok]
                if len(sub):
                    keys.append((sub, fl, (rank[fl] * len(self.producers) + i) * 2 + kind))
        flush = np.concatenate([k[1] for k in keys]) if keys else np.zeros(0, np.int64)  # index in the fleet's times
        key = np.concatenate([k[2] for k in keys]) if keys else np.zeros(0, np.int64)
        aggregating = [p.spec.aggregation for p in self.producers]
        fleet_of = (key // 2) % len(self.producers) if len(self.producers) > 1 else np.zeros(len(key), np.int64)
        agg = np.array(aggregating)[fleet_of] if any(aggregating) else None
        shard = None
        # per flush (time, then fleet): retries before new records; an aggregating fleet groups by shard
        if agg is not None:
            shard = self.stream.route(RecordBatch.concat([k[0] for k in keys]))
            key = (key // 2 * (len(self.stream.shards) + 1) + np.where(agg, shard + 1, 0)) * 2 + key % 2
        if len(key) and not np.all(key[1:] >= key[:-1]):
            small = key.max() < np.iinfo(np.int16).max
            order = np.argsort(key.astype(np.int16) if small else key, kind="stable")
            users = RecordBatch.concat_ordered([k[0] for k in keys], order)
            flush, key, fleet_of = flush[order], key[order], fleet_of[order]
            shard = shard[order] if shard is not None else None
            agg = agg[order] if agg is not None else None
        else:
            users = RecordBatch.concat([k[0] for k in keys])
        if shard is None:
            shard = self.stream.route(users)
        t_user = self._flush_times(plan, fleet_of, flush)
        user_k, k_size, k_shard, k_time, k_fleet = self._kinesis_records(users, t_user, fleet_of, shard, agg)
        if len(k_shard) == 0:
            self._commit_drops(parts, plan)
            return True
        acc_k, avail_records = self.stream.accept(float(k_time[0]), k_shard, k_size, self.compiled)
        n_shards = len(self.stream.shards)
        rejected = np.bincount(k_shard[~acc_k], minlength=n_shards)
        if rejected.any() and np.any((rejected > 0) & (np.bincount(k_shard[acc_k], minlength=n_shards) < avail_records)):
            return False
        # ---- exact: commit
        self._commit_drops(parts, plan)
        accepted, seq, subseq = self.stream.commit(k_time, users, user_k, k_shard, k_size, acc_k)
        self.trace.put_outcome(users, accepted, shard, seq, subseq, t_user)
        k_flush = flush[np.searchsorted(user_k, np.arange(len(k_size)))] if agg is not None else flush
        for i, prod in enumerate(self.producers):
            times = plan[i][0]
            if not len(times):
                continue
            single = len(self.producers) == 1
            ks = slice(None) if single else k_fleet == i
            per_flush = _PerFlush(len(times))
            per_flush.add_sent(k_flush[ks], k_size[ks], acc_k[ks])
            st, p_flush = prod.stats, self.grid.indices(times)
            mine = slice(None) if single else fleet_of == i
            st.add_at("put_attempts", p_flush, np.bincount(flush[mine], minlength=len(times)))
            st.add_at("records_accepted", p_flush, np.bincount(flush[accepted if single else mine & accepted], minlength=len(times)))
            rej = np.flatnonzero(~accepted if single else mine & ~accepted)
            if len(rej):
                st.add_at("records_throttled", p_flush, np.bincount(flush[rej], minlength=len(times)))
                self._retry_in_window(prod, users, rej, flush[rej], key[rej] % 2, shard[rej], times, per_flush)
            per_flush.count_calls(st, p_flush, limits)
        return True

    @staticmethod
    def _flush_times(plan, fleet_of: np.ndarray, flush: np.ndarray) -> np.ndarray:
        """Time (s) of each record's flush: ``flush`` indexes the times of fleet ``fleet_of``."""
        if len(plan) == 1:
            return plan[0][0][flush]
        offsets = np.cumsum([0] + [len(times) for times, _ in plan])
        return np.concatenate([times for times, _ in plan])[offsets[fleet_of] + flush]

    def _kinesis_records(self, users, t_user, fleet_of, shard, agg):
        """Kinesis records of the sorted user records: KPL aggregates per (flush, fleet, shard) for
        aggregating fleets (:func:`kinesim.producer.aggregate`), one per user record otherwise.
        Returns the Kinesis record of each user record and each Kinesis record's size, shard,
        time and fleet. ``agg`` (bool per record, or None: no fleet aggregates)."""
        n = len(users)
        if agg is None or not agg.any():
            return np.arange(n), users.size, shard, t_user, fleet_of
        first = ~agg
        packed = []  # (user rows starting an aggregate, the aggregates' sizes) per aggregating fleet
        for i in np.unique(fleet_of[agg]):
            sel = np.flatnonzero(agg & (fleet_of == i))
            brk = np.ones(len(sel), dtype=bool)
            brk[1:] = (t_user[sel][1:] != t_user[sel][:-1]) | (np.diff(sel) != 1)
            uk, sizes, _ = aggregate(users.size[sel], shard[sel], self.producers[i].spec.aggregation_max_size, breaks=brk)
            starts = np.ones(len(sel), dtype=bool)
            starts[1:] = uk[1:] != uk[:-1]
            first[sel[starts]] = True
            packed.append((sel[starts], sizes))
        k_index = np.cumsum(first) - 1
        k_size = users.size[first].copy()  # a record of a fleet without aggregation is its own Kinesis record
        for rows, sizes in packed:
            k_size[k_index[rows]] = sizes
        return k_index, k_size, shard[first], t_user[first], fleet_of[first]

    def _retry_in_window(self, prod: Producer, users: RecordBatch, rej: np.ndarray, flush: np.ndarray,
                         kind: np.ndarray, shard: np.ndarray, times: np.ndarray, per_flush: "_PerFlush") -> None:
        """The rest of the window for the user records ``users[rej]`` of ``prod`` that the main pass
        rejected (in send order, sent at flush indices ``flush`` of ``times``; ``kind`` 0 = due
        retry, 1 = new record): their shards have spent their record capacity, so every retry that
        falls in this window is throttled too (:func:`kinesim.retry_window.retry_chain`). Counts
        those attempts, drops what runs out of attempts or ``record_ttl``, and hands the rest back
        to the producer's retry buffer in queue order."""
        spec = prod.spec
        out = retry_chain(flush, np.where(kind == 0, 0, 2), shard, users.event_time[rej], users.attempts[rej], times,
                          prod.policy, bool(spec.aggregation), prod.rng, self.compiled)
        st, p_flush = prod.stats, self.grid.indices(times)
        st.add_at("records_retried", p_flush, out.retried)
        for fate, reason in ((DROPPED_MAX_ATTEMPTS, "max_attempts"), (DROPPED_TTL, "record_ttl")):
            rows = np.flatnonzero(out.fate == fate)
            if len(rows):
                prod.drop_counted(p_flush[out.when[rows]], users.trace[rej[rows]], reason)
        tr = users.trace[rej]
        traced = tr >= 0
        if traced.any():
            self.trace.cols["attempts"][tr[traced]] = out.attempts[traced]
        if len(out.sent_row):
            per = np.bincount(out.sent_flush, minlength=len(times))
            st.add_at("put_attempts", p_flush, per)
            st.add_at("records_throttled", p_flush, per)
            k_flush, k_shard, k_size = out.sent_flush, shard[out.sent_row], users.size[rej[out.sent_row]]
            if spec.aggregation:  # the re-sent records of a flush go in aggregates of their own
                order = np.lexsort((k_shard, k_flush))
                k_flush, k_shard, k_size = k_flush[order], k_shard[order], k_size[order]
                brk = np.ones(len(k_flush), dtype=bool)
                brk[1:] = k_flush[1:] != k_flush[:-1]
                user_k, k_size, k_shard = aggregate(k_size, k_shard, spec.aggregation_max_size, breaks=brk)
                k_flush = k_flush[np.flatnonzero(np.diff(np.concatenate(([-1], user_k))))]
            self.stream.metrics.add_records("WriteProvisionedThroughputExceeded", times[k_flush], k_shard, None,
                                            p_flush[0] == p_flush[-1])
            per_flush.add_sent(k_flush, k_size)
        if len(out.queue):
            q = out.queue
            later = users.take(rej[q]).replace(attempts=out.attempts[q], ready_time=out.ready[q])
            prod.pending = RecordBatch.concat([prod.pending, later])

    def _commit_drops(self, parts, plan) -> None:
        """Take the due retries out of the producers' buffers; drop what is too old or too large;
        count the records produced."""
        for i, due_mask, due, f_due, expired, batch, f, too_large in parts:
            prod = self.producers[i]
            times = plan[i][0]
            prod.stats.add_at("records_produced", self.grid.indices(times[f]))
            if len(prod.pending):
                prod.pending = prod.pending.take(~due_mask)
            if expired.any():
                prod._drop(self.grid.indices(times[f_due[expired]]), due.take(expired), "record_ttl")
            if too_large.any():
                prod._drop(self.grid.indices(times[f[too_large]]), batch.take(too_large), "record_too_large")


class _PerFlush:
    """Kinesis records sent per flush of one producer in one window, for counting PutRecords
    calls: ``max(ceil(records / 500), ceil(bytes / 5 MiB))`` per flush (exact while the byte cap
    does not bind), and failed calls as if each flush's accepted records came first."""

    def __init__(self, n_flush: int):
        self.n_flush = n_flush
        self.records = np.zeros(n_flush, np.int64)
        self.bytes = np.zeros(n_flush, np.int64)
        self.accepted = np.zeros(n_flush, np.int64)

    def add_sent(self, flush: np.ndarray, size: np.ndarray, accepted: np.ndarray | None = None) -> None:
        """Kinesis records of ``size`` bytes sent at flush indices ``flush``; ``accepted`` (bool) or all rejected."""
        if not len(flush):
            return
        if flush[0] <= flush[-1] and np.all(flush[1:] >= flush[:-1]):  # sorted (the usual case): cut sums
            edges = np.searchsorted(flush, np.arange(self.n_flush + 1))
            self.records += np.diff(edges)
            self.bytes += np.diff(np.concatenate(([0], np.cumsum(size)))[edges])
            if accepted is not None:
                self.accepted += np.diff(np.concatenate(([0], np.cumsum(accepted, dtype=np.int64)))[edges])
            return
        self.records += np.bincount(flush, minlength=self.n_flush)
        self.bytes += np.bincount(flush, weights=size, minlength=self.n_flush).astype(np.int64)
        if accepted is not None:
            self.accepted += np.bincount(flush[accepted], minlength=self.n_flush)

    def count_calls(self, stats, p_flush: np.ndarray, limits) -> None:
        calls, failed = put_records_calls(self.records, self.bytes, self.accepted, limits)
        stats.add_at("put_records_calls", p_flush, calls)
        stats.add_at("put_records_failed_calls", p_flush, failed)
        stats.add_at("kinesis_records_sent", p_flush, self.records)
