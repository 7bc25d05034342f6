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
  that falls in the same window is then rejected again; the loop over such retries is per attempt,
  vectorised. If some shard rejected records while it still had record capacity (the byte limit
  bound first) or the model is ``token_bucket``, the window is replayed flush by flush.

Every user record's fate, attempts, shard, order and retry queue position equal flush-by-flush
sending's (``tests/test_writer_paths.py``). Two counts differ slightly: with KPL aggregation the
in-window retries are packed into aggregates of their own (so Kinesis-record counts of rejected
retries differ), and failed PutRecords calls are counted as if each flush's accepted records came
first.

Records are appended to the shards' logs with their arrival times at the start of the window;
consumers only see records whose arrival time has passed (:meth:`kinesim.log.ShardLog.visible_end`).
PutRecords calls are counted per flush as ``max(ceil(records / 500), ceil(bytes / 5 MiB))`` on the
fast path (exact while the byte cap does not bind).
"""
from __future__ import annotations

import math

import numpy as np

from kinesim.batch import RecordBatch
from kinesim.producer import Producer, aggregate


def tick(k, dt: float):
    """Time of flush ``k`` of period ``dt`` (scalar or array), snapped to the nanosecond so that
    flushes on whole seconds fall in the right one-second window despite float rounding."""
    return np.round(np.asarray(k) * dt, 9)


def flush_times(dt: float, w: int, duration: float) -> tuple[int, np.ndarray]:
    """Index of the first flush and the times of the flushes of period ``dt`` in ``[w, w+1)``
    that are in ``(0, duration)``.

    The run covers ``[0, duration)``, the span of the metrics periods: a flush at exactly
    ``duration`` would write into the next one-second window (fresh capacity) while its metrics
    fold into the last period, which would then show up to twice the shard limit. Records measured
    after the last flush are not generated (as when ``dt`` does not divide ``duration``)."""
    k = np.arange(max(1, math.floor(w / dt) - 1), math.ceil((w + 1) / dt) + 2)
    t = tick(k, dt)
    sel = (t >= w) & (t < w + 1) & (t < duration - 1e-9)
    k, t = k[sel], t[sel]
    return (int(k[0]) if len(k) else 0), t


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
        self.windows_fast = 0
        self.windows_replayed = 0

    def process(self, env):
        last = math.ceil(self.duration)
        w = 0
        while w <= last:
            plan = []
            for fleet in self.fleets:
                dt = fleet.spec.producer.max_buffered_time
                k0, times = flush_times(dt, w, self.duration)
                plan.append((times, float(tick(k0 - 1, dt)) if len(times) else 0.0))
            starts = [times[0] for times, _ in plan if len(times)]
            if not starts:
                w = self._next_flush_window(w + 1)
                continue
            yield env.timeout(max(0.0, min(starts) - env.now))
            self.window(plan)
            w += 1

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
        new = []
        for fleet, (times, t_prev) in zip(self.fleets, plan):
            batch = self.trace.assign(fleet.generate(t_prev, times[-1])) if len(times) else RecordBatch.empty()
            new.append((batch, np.searchsorted(times, batch.event_time, side="left") if len(times) else None))
        if not (self.fast and self._fast_window(plan, new)):
            self.windows_replayed += 1
            self._replay(plan, new)
        else:
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
        parts, keys = [], []
        for i, ((times, _), (batch, f), prod) in enumerate(zip(plan, new, self.producers)):
            if not len(times):
                continue
            ttl = prod.spec.record_ttl
            pend = prod.pending
            due_mask = pend.ready_time <= times[-1] + 1e-9 if len(pend) else np.zeros(0, bool)
            due = pend.take(due_mask) if len(pend) else pend
            f_due = np.searchsorted(times, due.ready_time - 1e-9, side="left")
            expired = times[f_due] - due.event_time > ttl + 1e-9
            too_large = batch.size > limits.max_record_size
            parts.append((i, due_mask, due, f_due, expired, batch, f, too_large))
            ok_due, ok_new = ~expired, ~too_large
            for sub, fl, kind in ((due.take(ok_due), f_due[ok_due], 0), (batch.take(ok_new), f[ok_new], 1)):
                keys.append((sub, times[fl], np.full(len(sub), i), np.full(len(sub), kind)))
        users = RecordBatch.concat([k[0] for k in keys])
        t_user = np.concatenate([k[1] for k in keys]) if keys else np.zeros(0)
        fleet_of = np.concatenate([k[2] for k in keys]).astype(np.int64) if keys else np.zeros(0, np.int64)
        kind = np.concatenate([k[3] for k in keys]).astype(np.int64) if keys else np.zeros(0, np.int64)
        shard = self.stream.route(users)
        agg = np.array([p.spec.aggregation for p in self.producers])[fleet_of]
        # per flush (time, then fleet): retries before new records; an aggregating fleet groups by shard
        all_t = np.unique(np.concatenate([times for times, _ in plan]))  # the window's flush times
        key = np.searchsorted(all_t, t_user) * len(self.producers) + fleet_of
        if agg.any():
            key = key * (len(self.stream.shards) + 1) + np.where(agg, shard + 1, 0)
        key = key * 2 + kind
        if len(key) and not np.all(key[1:] >= key[:-1]):
            small = key.max() < np.iinfo(np.int16).max
            order = np.argsort(key.astype(np.int16) if small else key, kind="stable")
            users, t_user, fleet_of, shard, agg = users.take(order), t_user[order], fleet_of[order], shard[order], agg[order]
        user_k, k_size, k_shard, k_time, k_fleet = self._kinesis_records(users, t_user, fleet_of, shard, agg)
        if len(k_shard) == 0:
            self._commit_drops(parts, plan)
            return True
        t_first = float(k_time[0])
        acc_k, avail_records = self.stream.accept(t_first, k_shard, k_size)
        n_shards = len(self.stream.shards)
        rejected = np.bincount(k_shard[~acc_k], minlength=n_shards)
        accepted_n = np.bincount(k_shard[acc_k], minlength=n_shards)
        if np.any((rejected > 0) & (accepted_n < avail_records)):
            return False
        # ---- exact: commit
        self._commit_drops(parts, plan)
        accepted, seq, subseq = self.stream.commit(k_time, users, user_k, k_shard, k_size, acc_k)
        self.trace.put_outcome(users, accepted, shard, seq, subseq, t_user)
        periods = self.grid.indices(t_user)
        for i, prod in enumerate(self.producers):
            sel = fleet_of == i
            if not sel.any():
                continue
            st = prod.stats
            st.add_at("put_attempts", periods[sel])
            st.add_at("records_accepted", periods[sel & accepted])
            ks = k_fleet == i
            sent = [(k_time[ks], k_size[ks], acc_k[ks])]
            rej = sel & ~accepted
            if rej.any():
                st.add_at("records_throttled", periods[rej])
                band = np.where(kind[rej] == 0, 0.0, 2.0)  # due retries come before new records
                key = np.column_stack([t_user[rej], np.where(agg[rej], shard[rej], 0), band, np.flatnonzero(rej)])
                self._retry_in_window(prod, users.take(rej), t_user[rej], shard[rej], plan[i][0], sent, key)
            self._count_calls(prod, *(np.concatenate(parts) for parts in zip(*sent)))
        return True

    def _kinesis_records(self, users, t_user, fleet_of, shard, agg):
        """Kinesis records of the sorted user records: KPL aggregates per (flush, fleet, shard) for
        aggregating fleets (:func:`kinesim.producer.aggregate`), one per user record otherwise.
        Returns the Kinesis record of each user record and each Kinesis record's size, shard,
        time and fleet."""
        n = len(users)
        if not agg.any():
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

    def _count_calls(self, prod, k_time, k_size, acc_k) -> None:
        """Count PutRecords calls per flush from all Kinesis records sent at each flush time."""
        if len(k_time) == 0:
            return
        if not np.all(k_time[1:] >= k_time[:-1]):
            order = np.argsort(k_time, kind="stable")
            k_time, k_size, acc_k = k_time[order], k_size[order], acc_k[order]
        limits = self.stream.limits
        edges = np.flatnonzero(np.diff(k_time)) + 1
        starts = np.concatenate(([0], edges))
        n = np.diff(np.concatenate((starts, [len(k_time)])))
        nbytes = np.add.reduceat(k_size, starts)
        n_acc = np.add.reduceat(acc_k.astype(np.int64), starts)
        calls = np.maximum(-(-n // limits.put_records_max_records), -(-nbytes // limits.put_records_max_bytes))
        failed = np.where(n_acc < n, calls - n_acc // limits.put_records_max_records, 0)
        p = self.grid.indices(k_time[starts])
        st = prod.stats
        st.add_at("put_records_calls", p, calls)
        st.add_at("put_records_failed_calls", p, failed)
        st.add_at("kinesis_records_sent", p, n)

    def _retry_in_window(self, prod: Producer, rejected: RecordBatch, t_rej: np.ndarray, shard: np.ndarray,
                         times: np.ndarray, sent: list, key: np.ndarray) -> None:
        """Retries of records rejected at ``t_rej``: those due again inside this window meet a
        shard whose record capacity is spent, so each such attempt is throttled too. Records due
        after the window go back to the producer's retry buffer in the order flush-by-flush
        sending would have queued them: by the time of their last rejection, then their place in
        that flush. ``key`` holds, per record, the columns that order it (time, shard for an
        aggregating fleet, band: 0 due retry / 1 retry of this window / 2 new record, position);
        a retry of this window is ordered by its earlier key, so keys grow by a prefix per attempt."""
        st = prod.stats
        ttl = prod.spec.record_ttl
        max_attempts = prod.spec.retries.max_attempts
        idx = np.arange(len(rejected))  # rows of ``rejected`` still being retried
        attempts = rejected.attempts.copy()
        event = rejected.event_time
        trace = rejected.trace
        agg = prod.spec.aggregation
        spilled: list[tuple[np.ndarray, RecordBatch]] = []
        while len(idx):
            attempts_now = attempts[idx] + 1
            p = self.grid.indices(t_rej)
            tr = trace[idx]
            if (tr >= 0).any():
                self.trace.cols["attempts"][tr[tr >= 0]] = attempts_now[tr >= 0]
            spent = attempts_now >= max_attempts
            if spent.any():
                prod._drop(p[spent], rejected.take(idx[spent]), "max_attempts")
                keep = ~spent
                idx, attempts_now, t_rej, p, shard, key = (idx[keep], attempts_now[keep], t_rej[keep], p[keep],
                                                           shard[keep], key[keep])
            if not len(idx):
                break
            attempts[idx] = attempts_now
            st.add_at("records_retried", p)
            ready = t_rej + prod.backoff(attempts_now)
            # the first flush at or after ``ready`` and after the one that rejected them: the
            # flush at ``t_rej`` has already taken its due records (``backoff: none`` retries at
            # the next flush, as Producer.flush does)
            f = np.maximum(np.searchsorted(times, ready - 1e-9, side="left"),
                           np.searchsorted(times, t_rej, side="right"))
            inside = f < len(times)
            if not inside.all():
                out = ~inside
                later = rejected.take(idx[out]).replace(attempts=attempts_now[out], ready_time=ready[out])
                spilled.append((key[out], later))
                idx, f, shard, key = idx[inside], f[inside], shard[inside], key[inside]
            if not len(idx):
                break
            t_next = times[f]
            expired = t_next - event[idx] > ttl + 1e-9
            if expired.any():
                prod._drop(self.grid.indices(t_next[expired]), rejected.take(idx[expired]), "record_ttl")
                keep = ~expired
                idx, t_next, shard, key = idx[keep], t_next[keep], shard[keep], key[keep]
            if not len(idx):
                break
            pn = self.grid.indices(t_next)
            st.add_at("put_attempts", pn)
            st.add_at("records_throttled", pn)
            if prod.spec.aggregation:
                order = np.lexsort((shard, t_next))
                idx, t_next, shard, key = idx[order], t_next[order], shard[order], key[order]
                brk = np.ones(len(idx), dtype=bool)
                brk[1:] = t_next[1:] != t_next[:-1]
                user_k, k_size, k_shard = aggregate(rejected.size[idx], shard, prod.spec.aggregation_max_size, breaks=brk)
                first = np.ones(len(idx), dtype=bool)
                first[1:] = user_k[1:] != user_k[:-1]
                k_time = t_next[first]
            else:
                k_shard, k_size, k_time = shard, rejected.size[idx], t_next
            self.stream.metrics.add_records("WriteProvisionedThroughputExceeded", k_time, k_shard, None, False)
            sent.append((k_time, k_size, np.zeros(len(k_time), dtype=bool)))
            key = np.column_stack([t_next, shard if agg else np.zeros(len(idx)), np.ones(len(idx)), key])
            t_rej = t_next
        if spilled:
            width = max(k.shape[1] for k, _ in spilled)
            keys = np.vstack([np.pad(k, ((0, 0), (0, width - k.shape[1]))) for k, _ in spilled])
            later = RecordBatch.concat([b for _, b in spilled])
            prod.pending = RecordBatch.concat([prod.pending, later.take(np.lexsort(keys.T[::-1]))])

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
