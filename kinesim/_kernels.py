"""numba-compiled twins of numpy hot spots, with the same results:

* :func:`compiled_chain` of :func:`kinesim.retry_window._numpy_chain` (the in-window retries: one
  pass over the retry queue instead of a dozen array calls per flush; same arguments);
* :func:`compiled_accept_prefix` of :func:`kinesim.limits.accept_prefix` (one pass with a counter
  per shard instead of a sort and four cumulative sums; same arguments);
* :func:`compiled_window` of the numpy write window of one producer without aggregation
  (:meth:`kinesim.writer.ProducerGroup._fast_window`): due retries, send order, acceptance,
  sequence numbers and in-window retries in one pass (caller: :mod:`kinesim.writer_fused`).

Random draws (jitter) come from the producer's ``numpy.random.Generator`` itself: numba shares
its state, so the stream is the numpy code's draw for draw. The kernels do not check bounds:
their callers pass arrays of consistent lengths.

Importing this module raises ImportError when numba is not installed; the callers then use numpy.
Callers reach them through :mod:`kinesim.compiled` (``KINESIM_NUMBA=0`` turns them off). The test suite
runs both versions and compares them."""
from __future__ import annotations


import numba
import numpy as np


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
        for k in range(m):
            r = rows[k]
            if made[r] >= max_attempts:
                fate[r] = 1
                when[r] = j
            else:
                retried[j] += 1
                u = rng.random() if jitter else 0.0  # the producer's stream, one draw per record
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
    queue = np.empty(n, np.int64)
    q_len = 0
    r = head[n_flush]
    while r >= 0:
        queue[q_len] = r
        q_len += 1
        r = nxt[r]
    return fate, made, when, ready, queue[:q_len].copy(), sent_flush[:n_sent].copy(), sent_row[:n_sent].copy(), retried


@numba.njit(cache=True, error_model="numpy")
def compiled_window(n_pending, ready, event, size, attempts, key, key_shard, new_flush, times, max_record_size,
                    avail_records, avail_bytes, next_seq, max_attempts, backoff, base, cap, jitter, ttl, rng):
    """One write window of one producer without aggregation, all in one pass (the caller is
    :mod:`kinesim.writer_fused`; its numpy definition is :meth:`kinesim.writer.ProducerGroup._fast_window`).

    Rows: the producer's retry buffer (the first ``n_pending``, in queue order) then the window's
    new records (in time order, ``new_flush``: index in ``times`` of the flush that takes each);
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
    n, n_flush, n_shards = len(ready), len(times), len(avail_records)
    fate = np.zeros(n, np.int8)
    when = np.full(n, -1, np.int64)
    made = attempts.copy()
    ready = ready.copy()
    # each row's flush, or a fate without a send; then the send order, a counting sort by
    # (flush, due retry before new record)
    flush = np.full(n, -1, np.int64)
    start = np.zeros(2 * n_flush + 1, np.int64)
    last = times[n_flush - 1] + 1e-9
    for i in range(n):
        if i < n_pending:
            if ready[i] > last:
                continue
            f = 0
            while f < n_flush - 1 and times[f] < ready[i] - 1e-9:
                f += 1
            if times[f] - event[i] > ttl + 1e-9:
                fate[i], when[i] = 2, f
                continue
            flush[i] = f
            start[2 * f + 1] += 1
        else:
            f = new_flush[i - n_pending]
            if size[i] > max_record_size:
                fate[i], when[i] = 3, f
                continue
            flush[i] = f
            start[2 * f + 2] += 1
    for k in range(2 * n_flush):
        start[k + 1] += start[k]
    n_sent = start[2 * n_flush]
    order = np.empty(n_sent, np.int64)
    for i in range(n):
        if flush[i] >= 0:
            k = 2 * flush[i] + (i >= n_pending)
            order[start[k]] = i
            start[k] += 1
    # the longest prefix per shard that fits its capacity (as compiled_accept_prefix)
    n_acc = np.zeros(n_shards, np.int64)
    b_acc = np.zeros(n_shards, np.int64)
    n_rej = np.zeros(n_shards, np.int64)
    full = np.zeros(n_shards, np.bool_)
    acc_fs = np.zeros((n_flush, n_shards), np.int64)
    shard = np.full(n, -1, np.int64)
    for p in range(n_sent):
        i = order[p]
        s = key_shard[key[i]]
        shard[i] = s
        if not full[s]:
            c, b = n_acc[s] + 1, b_acc[s] + size[i]
            if c <= avail_records[s] and b <= avail_bytes[s]:
                fate[i] = 4
                n_acc[s], b_acc[s] = c, b
                acc_fs[flush[i], s] += 1
                continue
            full[s] = True
        n_rej[s] += 1
    exact = True
    for s in range(n_shards):
        if n_rej[s] > 0 and n_acc[s] < avail_records[s]:
            exact = False
    # sequence numbers by (flush, shard, send order); accepted rows grouped by shard
    seq_next = np.empty((n_flush, n_shards), np.int64)
    run = next_seq
    for j in range(n_flush):
        for s in range(n_shards):
            seq_next[j, s] = run
            run += acc_fs[j, s]
    shard_at = np.zeros(n_shards, np.int64)
    for s in range(1, n_shards):
        shard_at[s] = shard_at[s - 1] + n_acc[s - 1]
    seq = np.full(n, -1, np.int64)
    by_shard = np.empty(run - next_seq, np.int64)
    sent = np.zeros(n_flush, np.int64)
    acc_f = np.zeros(n_flush, np.int64)
    bytes_f = np.zeros(n_flush, np.int64)
    n_rejected = n_sent - (run - next_seq)
    rej = np.empty(n_rejected, np.int64)
    r_flush = np.empty(n_rejected, np.int64)
    r_band = np.empty(n_rejected, np.int64)
    r_shard = np.empty(n_rejected, np.int64)
    r_event = np.empty(n_rejected, np.float64)
    r_attempts = np.empty(n_rejected, np.int32)
    m = 0
    for p in range(n_sent if exact else 0):
        i = order[p]
        j, s = flush[i], shard[i]
        when[i] = j
        made[i] += 1
        sent[j] += 1
        bytes_f[j] += size[i]
        if fate[i] == 4:
            seq[i] = seq_next[j, s]
            seq_next[j, s] += 1
            by_shard[shard_at[s]] = i
            shard_at[s] += 1
            acc_f[j] += 1
        else:
            rej[m], r_flush[m], r_band[m], r_shard[m] = i, j, 0 if i < n_pending else 2, s
            r_event[m], r_attempts[m] = event[i], attempts[i]
            m += 1
    # the rejected rows' retries in the rest of the window; their re-sends are throttled too
    c_fate, c_made, c_when, c_ready, queue, sent_flush, sent_row, retried = compiled_chain(
        r_flush[:m], r_band[:m], r_shard[:m], r_event[:m], r_attempts[:m], times, max_attempts, backoff, base, cap,
        jitter, ttl, False, rng)
    for k in range(len(sent_flush)):
        j, r = sent_flush[k], sent_row[k]
        sent[j] += 1
        bytes_f[j] += size[rej[r]]
        n_rej[r_shard[r]] += 1
    for r in range(m):
        i = rej[r]
        fate[i], made[i], ready[i] = c_fate[r], c_made[r], c_ready[r]
        if c_fate[r] != 0:
            when[i] = c_when[r]
    # the new retry buffer: the buffered records not due, then the queued ones in queue order
    n_kept = 0
    for i in range(n_pending):
        n_kept += flush[i] < 0 and fate[i] == 0
    keep = np.empty(n_kept + len(queue), np.int64)
    k = 0
    for i in range(n_pending):
        if flush[i] < 0 and fate[i] == 0:
            keep[k] = i
            k += 1
    for q in range(len(queue)):
        keep[k + q] = rej[queue[q]]
    return exact, fate, when, made, ready, shard, seq, by_shard, keep, n_acc, b_acc, n_rej, sent, acc_f, bytes_f, retried
