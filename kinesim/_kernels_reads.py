"""numba-compiled GetRecords polls of the polling consumers (:mod:`kinesim.consumer_fused`), with
the results of the SimPy workers they replace (:meth:`kinesim.consumer.Worker.poll` and
:meth:`kinesim.stream.Stream.get_records`):

* :func:`compiled_polls`: every poll of every worker that falls before a time ``horizon``, shard
  by shard. The workers of one shard share its read limits, so they take turns in time order
  (ties in the order SimPy would run them); different shards share nothing a poll changes.

Each float is computed with the same operations in the same order as the Python code, so the
traces are equal bit for bit (``tests/test_consumer_fused.py``). The kernel does not check bounds."""
from __future__ import annotations

import numba
import numpy as np

from kinesim.consumer_fused import (AGE, BACKLOG, BEHIND, BORN, CALLS, EXPIRED, GET_CALLS, NEXT_SEQ, POS, PROCESSED,
                                    SEQ, THROTTLED, WINDOW)

# rows of the log block (kinesim.log.READ_COLUMNS)
_ARRIVAL, _EVENT, _K_INDEX, _KB_START, _KB_END, _TRACE = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, error_model="numpy")
def compiled_polls(blocks, log_start, log_n, horizon, inclusive, call_no, t_next, worker, shard_state, debt,
                   app_f, max_records, limits, counts, max_age, pp_processed, pp_f, m_throttled, m_records,
                   m_bytes, m_age, processed, expired, latency, latency_n):
    """Run, shard by shard, every GetRecords poll due before ``horizon`` (s): those at ``t_next <
    horizon``, and with ``inclusive`` those at ``t_next == horizon`` scheduled in an earlier call
    (SimPy runs them before the event at ``horizon``, whose timeout was made after them).

    Shapes (A consumer apps, S shards, P metrics periods, R trace rows):

    * ``blocks``: typed list of S log blocks (:class:`kinesim.log.ShardLog`, ``READ_COLUMNS`` as
      int64 rows), holding absolute positions ``[log_start[s], log_start[s] + log_n[s])``;
    * ``t_next`` (float64 [A, S]): each worker's next poll; ``worker`` (int64 [3, A, S]): its
      position, the call that scheduled its poll and the poll's order among the shard's
      (``POS``, ``BORN``, ``SEQ``); ``shard_state`` (int64 [3, S]) and ``debt`` (float64 [S]):
      the :class:`kinesim.limits.ReadLimiter` (window, calls, debt) and the next order number;
    * ``app_f`` (float64 [A, 3]): poll interval, processing time per record and per batch (s);
      ``max_records`` (int64 [A]); ``limits`` (float64 [6]): retention (s), GetRecords max bytes,
      calls/s and bytes/s per shard, metrics period (s) and number of periods;
    * ``counts`` (int64 [A, 4]), ``max_age`` (float64 [A], ms): the apps' counters;
      ``pp_processed`` (int64 [A, P, S]) and ``pp_f`` (float64 [3, A, P, S]): their per-period
      traces; ``m_*`` (float64 [P, S]): the CloudWatch metrics ``ReadProvisionedThroughputExceeded``,
      ``OutgoingRecords``, ``OutgoingBytes``, ``GetRecords.IteratorAgeMilliseconds``;
    * ``processed`` (float64 [A, R]) and ``expired`` (bool [A, R]): the ``records`` trace's columns;
    * ``latency`` (float64 [A, capacity]): the event-to-processed latencies (s) of each app's
      records in poll order, ``latency_n`` (int64 [A]) how many (reset by the caller).

    Returns 0 when every due poll has run. When a poll could return more records than its app's
    ``latency`` row has room for, it stops before that poll and returns how many it could return
    (the user records of ``max_records`` Kinesis records):
    the caller takes the latencies, makes room and calls again with the same ``call_no``."""
    retention, max_bytes = limits[0], np.int64(limits[1])
    calls_per_s, bytes_per_s, period, n_periods = np.int64(limits[2]), np.int64(limits[3]), limits[4], np.int64(limits[5])
    n_apps = t_next.shape[0]
    for s in range(len(blocks)):
        block = blocks[s]
        arrival, event = block[_ARRIVAL].view(np.float64), block[_EVENT].view(np.float64)
        k_index, kb_start, kb_end, trace = block[_K_INDEX], block[_KB_START], block[_KB_END], block[_TRACE]
        first, n = log_start[s], log_n[s]
        while True:
            a = -1  # the next poll on this shard: earliest time, then earliest scheduled
            for b in range(n_apps):
                t = t_next[b, s]
                if t < horizon or (inclusive and t == horizon and worker[BORN, b, s] < call_no):
                    if a < 0 or t < t_next[a, s] or (t == t_next[a, s] and worker[SEQ, b, s] < worker[SEQ, a, s]):
                        a = b
            if a < 0:
                break
            now = t_next[a, s]
            busy = 0.0
            # Stream.get_records: the tip, retention, the read limiter
            if n == 0 or arrival[n - 1] <= now:
                tip = first + n
            else:
                tip = first + np.searchsorted(arrival[:n], now, side="right")
            position = worker[POS, a, s]
            start = position
            horizon_t = now - retention
            if position < tip and horizon_t > 0.0:  # ShardLog.first_at_or_after
                i = position - first
                if i >= n:
                    start = max(position, first + n)
                elif not arrival[i] >= horizon_t:
                    start = position + np.searchsorted(arrival[i:n], horizon_t, side="left")
            if latency_n[a] + (tip - start) > latency.shape[1]:  # it might not fit (ShardLog.read_span
                # returns at most max_records Kinesis records): stop before it
                i = start - first
                most = np.searchsorted(k_index[i : tip - first], k_index[i] + max_records[a], side="left")
                if latency_n[a] + most > latency.shape[1]:
                    return most
            p = min(np.int64(now / period + 1e-9), n_periods - 1)
            if start > position:  # Worker._expire
                counts[a, EXPIRED] += start - position
                for r in range(position - first, start - first):
                    if trace[r] >= 0:
                        expired[a, trace[r]] = True
                position = start
            w = np.int64(np.floor(now + 1e-9))  # ReadLimiter.allow
            if w != shard_state[WINDOW, s]:
                if shard_state[WINDOW, s] >= 0:
                    d = debt[s] - bytes_per_s * (w - shard_state[WINDOW, s])
                    debt[s] = d if d > 0.0 else 0.0
                shard_state[WINDOW, s] = w
                shard_state[CALLS, s] = 0
            counts[a, GET_CALLS] += 1
            if not (shard_state[CALLS, s] < calls_per_s and debt[s] < bytes_per_s):  # throttled
                m_throttled[p, s] += 1
                counts[a, THROTTLED] += 1
                pp_f[BACKLOG, a, p, s] = tip - position  # Worker._note_waiting
                pp_f[BEHIND, a, p, s] = (now - arrival[position - first]) * 1000.0 if tip > position else 0.0
            else:
                end, records, nbytes = start, np.int64(0), np.int64(0)  # ShardLog.read_span
                if start < tip:
                    i, j = start - first, tip - first
                    k0, b0 = k_index[i], kb_start[i]
                    k1, b1 = k_index[j - 1] + 1, kb_end[j - 1]
                    if k1 - k0 <= max_records[a] and b1 - b0 <= max_bytes:
                        end = tip
                    else:
                        e = min(np.searchsorted(k_index[i:j], k0 + max_records[a], side="left"),
                                np.searchsorted(kb_end[i:j], b0 + max_bytes, side="right"))
                        if e == 0:  # one Kinesis record larger than max_bytes: alone
                            e = np.searchsorted(k_index[i:j], k0 + 1, side="left")
                        end = start + e
                        if end - first >= n:
                            k1, b1 = k_index[n - 1] + 1, kb_end[n - 1]
                        else:
                            k1, b1 = k_index[end - first], kb_start[end - first]
                    records, nbytes = k1 - k0, b1 - b0
                shard_state[CALLS, s] += 1  # ReadLimiter.charge
                debt[s] += nbytes
                age = (now - arrival[end - 1 - first]) * 1000.0 if end > start else 0.0
                behind = (now - arrival[end - first]) * 1000.0 if end < tip else 0.0
                if records:  # ShardMetrics.add_read
                    m_records[p, s] += records
                    m_bytes[p, s] += nbytes
                if not age <= m_age[p, s]:
                    m_age[p, s] = age
                position = end  # Worker.poll
                pp_f[BACKLOG, a, p, s] = tip - end
                pp_f[BEHIND, a, p, s] = behind
                if not age <= pp_f[AGE, a, p, s]:
                    pp_f[AGE, a, p, s] = age
                if age > max_age[a]:
                    max_age[a] = age
                m = end - start
                if m > 0:
                    per_record, per_batch = app_f[a, 1], app_f[a, 2]
                    k = latency_n[a]
                    for r in range(m):
                        done = now + per_record * np.float64(r + 1) if per_record else now
                        latency[a, k + r] = done - event[start - first + r]
                        row = trace[start - first + r]
                        if row >= 0:
                            processed[a, row] = done
                    latency_n[a] = k + m
                    counts[a, PROCESSED] += m
                    pp_processed[a, p, s] += m
                    busy = per_batch + m * per_record
            worker[POS, a, s] = position
            t_next[a, s] = now + (busy + app_f[a, 0])
            worker[BORN, a, s] = call_no
            worker[SEQ, a, s] = shard_state[NEXT_SEQ, s]
            shard_state[NEXT_SEQ, s] += 1
    return 0
