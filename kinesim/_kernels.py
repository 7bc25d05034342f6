"""numba-compiled twins of numpy hot spots, with the same results:

* :func:`compiled_chain` of :func:`kinesim.retry_window._numpy_chain` (the in-window retries: one
  pass over the retry queue instead of a dozen array calls per flush; same arguments);
* :func:`compiled_accept_prefix` of :func:`kinesim.limits.accept_prefix` (one pass with a counter
  per shard instead of a sort and four cumulative sums; same arguments);
* :func:`compiled_window` of the numpy write window of one producer without aggregation
  (:meth:`kinesim.writer.ProducerGroup._fast_window`): due retries, send order, acceptance,
  sequence numbers and in-window retries in one pass (caller: :mod:`kinesim.writer_fused`), with
  the window's rows built by :mod:`kinesim._kernels_rows` (imported here).

Random draws (jitter) come from the producer's ``numpy.random.Generator`` itself: numba shares
its state, so the stream is the numpy code's draw for draw. The kernels do not check bounds:
their callers pass arrays of consistent lengths.

Importing this module raises ImportError when numba is not installed; the callers then use numpy.
Callers reach them through :mod:`kinesim.compiled` (``KINESIM_NUMBA=0`` turns them off). The test suite
runs both versions and compares them."""
from __future__ import annotations

import numba
import numpy as np

from kinesim import _kernels_reads, _kernels_rows

compiled_new_records = _kernels_rows.compiled_new_records  # reached through kinesim.compiled, by name
compiled_retry_buffer = _kernels_rows.compiled_retry_buffer
compiled_log_write = _kernels_rows.compiled_log_write
compiled_dropped = _kernels_rows.compiled_dropped
compiled_polls = _kernels_reads.compiled_polls


@numba.njit(cache=True, error_model="numpy")
def compiled_accept_prefix(shard, size, avail_records, avail_bytes):
    n_shards = len(avail_records)
    count = np.zeros(n_shards, np.int64)
    nbytes = np.zeros(n_shards, np.int64)
    full = np.zeros(n_shards, np.bool_)
    accepted = np.zeros(len(shard), np.bool_)
    for i in range(len(shard)):
        s = shard[i]
        if full[s]:
            continue
        c, b = count[s] + 1, nbytes[s] + size[i]
        if c <= avail_records[s] and b <= avail_bytes[s]:
            accepted[i] = True
            count[s], nbytes[s] = c, b
        else:
            full[s] = True  # the first record that does not fit ends the shard's prefix
    return accepted


@numba.njit(cache=True, error_model="numpy")
def _delay(made, backoff, base, cap, jitter, u):
    if backoff == 0:
        d = 0.0
    elif backoff == 1:
        d = base
    else:
        d = min(cap, base * float(np.int64(1) << np.int64(min(made - 1, 60))))  # 2**k, exactly as np.exp2
    if jitter:
        d = d * u
    return d


@numba.njit(cache=True, error_model="numpy")
def _back_off(rows, m, j, times, made, ready, fate, when, retried, head, tail, nxt, max_attempts, backoff, base, cap,
              jitter, rng):
    """Flush ``j``'s rejected rows ``rows[:m]``, in send order: each drops at ``max_attempts``
    (fate 1) or gets its backoff (one draw per record from ``rng``, the producer's stream) and
    joins the queue of the first flush due at or after its ready time (the last list: after the
    window). The queues are linked lists ``head``/``tail`` per flush and ``nxt`` per row."""
    t, n_flush = times[j], len(times)
    for k in range(m):
        r = rows[k]
        if made[r] >= max_attempts:
            fate[r], when[r] = 1, j
            continue
        retried[j] += 1
        u = rng.random() if jitter else 0.0
        ready[r] = t + _delay(made[r], backoff, base, cap, jitter, u)
        f = j + 1  # the first later flush with ready <= t + 1e-9 (retries are mostly due soon)
        while f < n_flush and not ready[r] <= times[f] + 1e-9:
            f += 1
        nxt[r] = -1
        if head[f] < 0:
            head[f] = r
        else:
            nxt[tail[f]] = r
        tail[f] = r


@numba.njit(cache=True, error_model="numpy")
def compiled_chain(flush, band, shard, event, attempts, times, max_attempts, backoff, base, cap, jitter, ttl,
                   aggregation, rng):
    n, n_flush = len(flush), len(times)
    fate = np.zeros(n, np.int8)
    made = np.empty(n, np.int32)
    for i in range(n):
        made[i] = attempts[i] + 1
    when = np.full(n, -1, np.int64)
    ready = np.zeros(n)
    retried = np.zeros(n_flush, np.int64)
    # the retry queue as one list per flush it is due at (the last: after the window), each in
    # queue order: a record is queued at most once at a time
    head = np.full(n_flush + 1, -1, np.int64)
    tail = np.full(n_flush + 1, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    sent_flush = np.empty(n * min(max_attempts, n_flush) + 1, np.int64)
    sent_row = np.empty_like(sent_flush)
    n_sent = 0
    rows = np.empty(n, np.int64)
    tmp = np.empty(n, np.int64)
    i = 0
    for j in range(n_flush):
        t = times[j]
        start = i
        while i < n and flush[i] == j:
            i += 1
        m = 0
        for k in range(start, i):  # band 0: due retries of earlier windows
            if band[k] == 0:
                rows[m] = k
                m += 1
        r = head[j]
        while r >= 0:  # band 1: due retries of this window, in queue order
            if t - event[r] > ttl + 1e-9:
                fate[r] = 2
                when[r] = j
            else:
                made[r] += 1
                sent_flush[n_sent] = j
                sent_row[n_sent] = r
                n_sent += 1
                rows[m] = r
                m += 1
            r = nxt[r]
        for k in range(start, i):  # band 2: new records
            if band[k] != 0:
                rows[m] = k
                m += 1
        if aggregation and m > 1:
            order = np.argsort(shard[rows[:m]], kind="mergesort")
            for k in range(m):
                tmp[k] = rows[order[k]]
            rows[:m] = tmp[:m]
        _back_off(rows, m, j, times, made, ready, fate, when, retried, head, tail, nxt, max_attempts, backoff, base,
                  cap, jitter, rng)
    queue = np.empty(n, np.int64)
    q_len = 0
    r = head[n_flush]
    while r >= 0:
        queue[q_len] = r
        q_len += 1
        r = nxt[r]
    return fate, made, when, ready, queue[:q_len].copy(), sent_flush[:n_sent].copy(), sent_row[:n_sent].copy(), retried


@numba.njit(cache=True, error_model="numpy")
def compiled_window(n_pending, ready, event, size, attempts, key, key_shard, times, max_record_size,
                    avail_records, avail_bytes, next_seq, max_attempts, backoff, base, cap, jitter, ttl, rng):
    """One write window of one producer without aggregation, all in one pass (the caller is
    :mod:`kinesim.writer_fused`; its numpy definition is :meth:`kinesim.writer.ProducerGroup._fast_window`).

    Rows: the producer's retry buffer (the first ``n_pending``, in queue order) then the window's
    new records (in event-time order, none after the last flush: each goes to the first flush at
    or after its ``event`` time, ``searchsorted(times, event, "left")``);
    a row's shard is ``key_shard[key]`` (:meth:`kinesim.stream.Stream.route` of one fleet).
    A buffered record is due at the first flush at or after its ``ready`` time and is dropped
    there if older than ``ttl``; a new record over ``max_record_size`` is dropped. Send order: by
    flush, due retries before new records. Returns ``exact`` (False: some shard rejected records
    with record capacity left; nothing was drawn and the rest is meaningless), per row the fate
    (0 in the retry buffer, 1-3 dropped for :data:`kinesim.tracing.DROP_REASONS` ``[fate]``, 4
    accepted), the flush of its send or drop (-1: neither), the attempts made, the ready time, the
    shard (-1: not sent) and the sequence number (-1: not accepted); the accepted rows grouped by
    shard in sequence order (flush, shard, send order); the rows of the new retry buffer in queue
    order; per shard the accepted records and bytes and the rejected attempts; per flush the
    attempts, accepted records, bytes sent and records given a backoff."""
    # Passes: each row's flush and bucket; the send order (a counting sort); the acceptance, which
    # splits the sent rows into the accepted and the rejected, each in send order; the sequence
    # numbers of the accepted; the retries of the rejected (compiled_chain's loop, inlined so that
    # no per-row arrays are gathered for it and scattered back).
    n, n_flush, n_shards = len(ready), len(times), len(avail_records)
    fate = np.zeros(n, np.int8)
    when = np.full(n, -1, np.int64)
    made = attempts.copy()
    ready = ready.copy()
    shard = np.full(n, -1, np.int64)
    seq = np.full(n, -1, np.int64)
    # each row's bucket in the send order, 2 * flush + (new record), or -1: a fate without a send
    bucket = np.empty(n, np.int32)
    start = np.zeros(2 * n_flush + 1, np.int64)
    last = times[n_flush - 1] + 1e-9
    for i in range(n_pending):
        bucket[i] = -1
        if ready[i] > last:
            continue
        f = 0
        while f < n_flush - 1 and times[f] < ready[i] - 1e-9:
            f += 1
        if times[f] - event[i] > ttl + 1e-9:
            fate[i], when[i] = 2, f
            continue
        bucket[i] = 2 * f
        start[2 * f + 1] += 1
        shard[i] = key_shard[key[i]]
    f = 0
    for i in range(n_pending, n):
        while f < n_flush - 1 and times[f] < event[i]:  # the first flush at or after it
            f += 1
        if size[i] > max_record_size:
            fate[i], when[i], bucket[i] = 3, f, -1
            continue
        bucket[i] = 2 * f + 1
        start[2 * f + 2] += 1
        shard[i] = key_shard[key[i]]
    # the send order, a counting sort: bucket k is order[start[k]:start[k + 1]]
    for k in range(2 * n_flush):
        start[k + 1] += start[k]
    n_sent = start[2 * n_flush]
    order = np.empty(n_sent, np.int64)
    at = start.copy()
    for i in range(n):
        k = bucket[i]
        if k >= 0:
            order[at[k]] = i
            at[k] += 1
    # the longest prefix per shard that fits its capacity (as compiled_accept_prefix); the accepted
    # and the rejected rows each listed in send order, so the later passes visit only their own
    n_acc = np.zeros(n_shards, np.int64)
    b_acc = np.zeros(n_shards, np.int64)
    n_rej = np.zeros(n_shards, np.int64)
    full = np.zeros(n_shards, np.bool_)
    acc_fs = np.zeros(n_flush * n_shards, np.int64)  # accepted per (flush, shard)
    acc = np.empty(n_sent, np.int64)
    acc_at = np.empty(n_flush + 1, np.int64)  # flush j's accepted rows: acc[acc_at[j]:acc_at[j + 1]]
    rej = np.empty(n_sent, np.int64)
    rej_at = np.empty(2 * n_flush + 1, np.int64)  # bucket k's rejected rows: rej[rej_at[k]:rej_at[k + 1]]
    sent = np.zeros(n_flush, np.int64)
    acc_f = np.zeros(n_flush, np.int64)
    bytes_f = np.zeros(n_flush, np.int64)
    n_a, n_r = 0, 0
    for k in range(2 * n_flush):
        j = k >> 1
        if k % 2 == 0:
            acc_at[j] = n_a
        rej_at[k] = n_r
        for p in range(start[k], start[k + 1]):
            i = order[p]
            s = shard[i]
            bytes_f[j] += size[i]
            if not full[s]:
                c, b = n_acc[s] + 1, b_acc[s] + size[i]
                if c <= avail_records[s] and b <= avail_bytes[s]:
                    fate[i] = 4
                    n_acc[s], b_acc[s] = c, b
                    acc_fs[j * n_shards + s] += 1
                    acc[n_a] = i
                    n_a += 1
                    continue
                full[s] = True
            n_rej[s] += 1
            rej[n_r] = i
            n_r += 1
    acc_at[n_flush] = n_a
    rej_at[2 * n_flush] = n_r
    exact = True
    for s in range(n_shards):
        if n_rej[s] > 0 and n_acc[s] < avail_records[s]:
            exact = False
    by_shard = np.empty(n_a, np.int64)
    retried = np.zeros(n_flush, np.int64)
    # the retry queue as one linked list (head, tail, nxt[row]) per flush it is due at (the last:
    # after the window), each in queue order: a record is queued at most once at a time. Only
    # head exists when not exact (all lists empty: nothing numbered or drawn, the caller discards
    # the rest); tail and nxt are allocated where the retries are, which measured a few per cent
    # faster than allocating them here
    head = np.full(n_flush + 1, -1, np.int64)
    if exact:
        # sequence numbers by (flush, shard, send order); accepted rows grouped by shard
        seq_next = np.empty(n_flush * n_shards, np.int64)
        run = next_seq
        for q in range(n_flush * n_shards):
            seq_next[q] = run
            run += acc_fs[q]
        shard_at = np.zeros(n_shards, np.int64)
        for s in range(1, n_shards):
            shard_at[s] = shard_at[s - 1] + n_acc[s - 1]
        for j in range(n_flush):
            for p in range(acc_at[j], acc_at[j + 1]):
                i = acc[p]
                s = shard[i]
                when[i] = j
                made[i] += 1
                seq[i] = seq_next[j * n_shards + s]
                seq_next[j * n_shards + s] += 1
                by_shard[shard_at[s]] = i
                shard_at[s] += 1
            acc_f[j] = acc_at[j + 1] - acc_at[j]
            sent[j] = start[2 * j + 2] - start[2 * j]
        # the rejected rows' retries in the rest of the window (as compiled_chain, without
        # aggregation); their re-sends are throttled too. Per flush the rows to retry or drop, in
        # order: the rejected due retries, the queue (re-sent), the rejected new records
        tail = np.full(n_flush + 1, -1, np.int64)
        nxt = np.empty(n, np.int64)
        rows = np.empty(n_r, np.int64)
        for j in range(n_flush):
            t = times[j]
            m = 0
            for p in range(rej_at[2 * j], rej_at[2 * j + 1]):  # the rejected due retries
                rows[m] = rej[p]
                m += 1
            i = head[j]
            while i >= 0:  # the queue
                if t - event[i] > ttl + 1e-9:
                    fate[i], when[i] = 2, j
                else:
                    made[i] += 1
                    sent[j] += 1
                    bytes_f[j] += size[i]
                    n_rej[shard[i]] += 1
                    rows[m] = i
                    m += 1
                i = nxt[i]
            for p in range(rej_at[2 * j + 1], rej_at[2 * j + 2]):  # the rejected new records
                rows[m] = rej[p]
                m += 1
            for p in range(rej_at[2 * j], rej_at[2 * j + 2]):  # a first send: no backoff yet (ready 0)
                i = rej[p]
                when[i], made[i], ready[i] = j, made[i] + 1, 0.0
            _back_off(rows, m, j, times, made, ready, fate, when, retried, head, tail, nxt, max_attempts, backoff,
                      base, cap, jitter, rng)
    # the new retry buffer: the buffered records not due, then the queued ones in queue order
    n_kept = 0
    for i in range(n_pending):
        n_kept += bucket[i] < 0 and fate[i] == 0
    i = head[n_flush]
    while i >= 0:  # (an empty list when not exact: nxt is not read)
        n_kept += 1
        i = nxt[i]
    keep = np.empty(n_kept, np.int64)
    k = 0
    for i in range(n_pending):
        if bucket[i] < 0 and fate[i] == 0:
            keep[k] = i
            k += 1
    i = head[n_flush]
    while i >= 0:
        keep[k] = i
        k += 1
        i = nxt[i]
    return exact, fate, when, made, ready, shard, seq, by_shard, keep, n_acc, b_acc, n_rej, sent, acc_f, bytes_f, retried

