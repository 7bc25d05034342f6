"""numba-compiled builders of the rows of a write window (:mod:`kinesim.writer_fused`), with the
same results as the numpy code they replace:

* :func:`compiled_new_records`: the retry buffer followed by a window's new records of a Poisson
  (or bursty) fleet with sensor partition keys and a fixed record size, i.e.
  ``RecordBatch.concat([pending, fleet.generate(t0, t1)])`` (:meth:`kinesim.fleet.Fleet.generate`);
* :func:`compiled_retry_buffer`: the rows :func:`kinesim._kernels.compiled_window` keeps for the
  next window, i.e. ``batch.take(keep).replace(attempts=..., ready_time=...)``;
* :func:`compiled_log_write`: the shard logs' columns of the window's accepted rows, numbered per
  shard and written in place, i.e. the columns :meth:`kinesim.stream.Stream.append_logs` builds
  and shifts;
* :func:`compiled_dropped`: the window's dropped rows by reason.

Random draws come from the fleet's own ``numpy.random.Generator``: numba shares its state and
its ``standard_exponential`` and ``integers`` give numpy's values draw for draw
(``tests/test_kernels.py`` compares the two). Each float is computed with the same operations in
the same order as the numpy code, so the rows are equal bit for bit."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def compiled_new_records(count, l0, width, t1, seg_t, seg_lam, seg_m, sensors, record_bytes, fleet_index,
                         p_event, p_fleet, p_sensor, p_key, p_size, p_attempts, p_ready, p_trace, rng):
    """The columns of a :class:`kinesim.batch.RecordBatch` (``event_time`` ... ``trace``): the
    ``len(p_event)`` rows ``p_*`` (the retry buffer), then ``count`` new records (``count`` drawn
    by the caller: ``rng.poisson``). Their operational times are ``l0 + width × (partial sums of
    count + 1 standard exponentials) / total`` (sorted uniform points on ``(l0, l0 + width]``),
    mapped back to time through the fleet's segments ``seg_t``/``seg_lam``/``seg_m``
    (:meth:`kinesim.fleet.Fleet._inverse`) and capped at ``t1``; each is a uniform sensor of
    ``sensors``, keyed by its sensor, of ``record_bytes[sensor]`` bytes."""
    gaps = rng.standard_exponential(count + 1)
    for i in range(1, count + 1):  # np.cumsum: sequential sums
        gaps[i] = gaps[i - 1] + gaps[i]
    sensor = rng.integers(0, sensors, size=count)
    n_p = len(p_event)
    n = n_p + count
    event, ready = np.empty(n), np.empty(n)
    fleet, attempts = np.empty(n, np.int16), np.empty(n, np.int32)
    sens, key, size, trace = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    for j in range(n_p):
        event[j], fleet[j], sens[j], key[j] = p_event[j], p_fleet[j], p_sensor[j], p_key[j]
        size[j], attempts[j], ready[j], trace[j] = p_size[j], p_attempts[j], p_ready[j], p_trace[j]
    if count == 0:
        return event, fleet, sens, key, size, attempts, ready, trace
    total, last = gaps[count], len(seg_t) - 1
    lam = np.empty(count)
    for i in range(count):
        lam[i] = (gaps[i] / total) * width + l0
    lo = np.searchsorted(seg_lam, lam[0]) - 1
    hi = np.searchsorted(seg_lam, lam[count - 1]) - 1
    for i in range(count):
        if lo == hi:  # one segment of constant rate (the usual case)
            s = min(max(lo, 0), last)
        else:
            s = min(max(np.searchsorted(seg_lam, lam[i]) - 1, 0), last)
        m = seg_m[s]
        t = (lam[i] - seg_lam[s]) / (m if m > 0 else 1.0) + seg_t[s]
        t = t if t < t1 else t1
        j = n_p + i
        event[j], ready[j], fleet[j], attempts[j], trace[j] = t, t, fleet_index, 0, -1
        sens[j], key[j], size[j] = sensor[i], sensor[i], record_bytes[sensor[i]]
    return event, fleet, sens, key, size, attempts, ready, trace


@numba.njit(cache=True, error_model="numpy")
def compiled_retry_buffer(keep, event, fleet, sensor, key, size, made, ready, trace):
    """The columns of a :class:`kinesim.batch.RecordBatch` (``event_time`` ... ``trace``) of the
    rows ``keep`` (:func:`kinesim._kernels.compiled_window`'s new retry buffer), with ``attempts``
    and ``ready_time`` from ``made`` and ``ready``: ``batch.take(keep).replace(...)`` in one pass."""
    n = len(keep)
    e, r = np.empty(n), np.empty(n)
    f, a = np.empty(n, np.int16), np.empty(n, np.int32)
    s, k, z, t = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    for j in range(n):
        i = keep[j]
        e[j], f[j], s[j], k[j], z[j], a[j], r[j], t[j] = event[i], fleet[i], sensor[i], key[i], size[i], made[i], ready[i], trace[i]
    return e, f, s, k, z, a, r, t


@numba.njit(cache=True, error_model="numpy")
def compiled_log_write(blocks, at, by_shard, n_acc, when, times, event, size, trace, total_k, total_kbytes, unit,
                       increment):
    """Write the shard logs' ``READ_COLUMNS`` (:mod:`kinesim.log`: arrival, event, k_index, kb_start,
    kb_end, trace) of the accepted rows ``by_shard`` (grouped by shard, ``n_acc`` each, one Kinesis
    record per row) into the logs' blocks: shard ``s``'s rows into columns ``at[s]`` onwards of
    ``blocks[s]`` (a typed list of int64 ``[6, capacity]`` arrays, floats by their bits, with room
    made by the caller): arrival ``times[when]``, the Kinesis-record counts continuing each shard's
    ``total_k`` and ``total_kbytes``. Returns their billing
    (:meth:`kinesim.metrics.ShardMetrics.add_put_payload_units`): the PUT payload units
    (``ceil(size / unit)`` each) and the on-demand increments (``ceil(size / increment)`` each)."""
    units, increments = 0, 0
    q = 0
    for s in range(len(n_acc)):
        if n_acc[s] == 0:
            continue
        block = blocks[s]
        floats = block.view(np.float64)
        k, kb, c = total_k[s], total_kbytes[s], at[s]
        for _ in range(n_acc[s]):
            i = by_shard[q]
            floats[0, c], floats[1, c] = times[when[i]], event[i]
            block[2, c], block[3, c] = k, kb
            kb += size[i]
            block[4, c], block[5, c] = kb, trace[i]
            units += -(-size[i] // unit)
            increments += -(-size[i] // increment)
            k += 1
            q += 1
            c += 1
    return units, increments


@numba.njit(cache=True, error_model="numpy")
def compiled_dropped(fate, codes):
    """The rows of each fate ``1 .. codes`` (:func:`kinesim._kernels.compiled_window`'s drop
    reasons), in row order, one code after the other: ``(rows, starts)``, code ``c``'s rows are
    ``rows[starts[c - 1]:starts[c]]``."""
    starts = np.zeros(codes + 1, np.int64)
    for i in range(len(fate)):
        if 1 <= fate[i] <= codes:
            starts[fate[i]] += 1
    for c in range(1, codes + 1):
        starts[c] += starts[c - 1]
    rows = np.empty(starts[codes], np.int64)
    at = starts[:codes].copy()
    for i in range(len(fate)):
        c = fate[i]
        if 1 <= c <= codes:
            rows[at[c - 1]] = i
            at[c - 1] += 1
    return rows, starts
