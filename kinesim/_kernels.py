"""numba-compiled twins of two numpy hot spots, with the same arguments and results:

* :func:`compiled_chain` of :func:`kinesim.retry_window._numpy_chain` (the in-window retries: one
  pass over the retry queue instead of a dozen array calls per flush);
* :func:`compiled_accept_prefix` of :func:`kinesim.limits.accept_prefix` (one pass with a counter
  per shard instead of a sort and four cumulative sums).

Importing this module raises ImportError when numba is not installed; the callers then use numpy.
Callers reach them through :mod:`kinesim.compiled` (``KINESIM_NUMBA=0`` turns them off). The test suite
runs both versions and compares them."""
from __future__ import annotations

import math

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
        d = min(cap, base * math.ldexp(1.0, min(made - 1, 60)))  # 2**k, exactly as np.exp2
    if jitter:
        d = d * u
    return d


@numba.njit(cache=True, error_model="numpy")
def compiled_chain(flush, band, shard, event, attempts, times, max_attempts, backoff, base, cap, jitter, ttl,
                   aggregation, uniforms):
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
    n_drawn = 0
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
                u = 0.0
                if jitter:
                    u = uniforms[n_drawn]
                    n_drawn += 1
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
    return fate, made, when, ready, queue[:q_len].copy(), sent_flush[:n_sent].copy(), sent_row[:n_sent].copy(), retried, n_drawn
