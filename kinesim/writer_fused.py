"""The write window of a single producer without KPL aggregation in one compiled pass.

The usual scenario, one fleet sending plain records, spends most of its time in the write window
(:mod:`kinesim.writer`): picking the due retries, the send order, the acceptance, the numbering
and the in-window retries each cost a dozen numpy calls over the window's records.
:func:`fused_window` does all of that in one numba pass (:func:`kinesim._kernels.compiled_window`)
and keeps the rest (the shard logs, the metrics, the traces, the retry buffer's columns) in numpy.
It computes exactly what :meth:`kinesim.writer.ProducerGroup._fast_window` computes: the same
fates, attempts, sequence numbers, counts and random draws (``tests/test_writer_paths.py`` runs
both against the flush-by-flush replay). It applies when the window's flushes fall in one metrics
period (:func:`applies`); the caller uses the numpy path otherwise, and the replay when
:func:`fused_window` finds the window not exact.
"""
from __future__ import annotations

import numpy as np

from kinesim.batch import COLUMNS, RecordBatch
from kinesim.compiled import compiled
from kinesim.limits import put_records_calls
from kinesim.retry_window import generator
from kinesim.tracing import DROP_REASONS

ACCEPTED = 4  # the kernel's fate codes: 0 in the retry buffer, 1-3 the DROP_REASONS, 4 accepted


def applies(group, plan) -> bool:
    """Whether :func:`fused_window` can compute this window of ``group`` (a
    :class:`kinesim.writer.ProducerGroup`): compiled twins on, one producer, no aggregation, and
    the flushes ``plan[0][0]`` in one metrics period."""
    if not group.compiled or len(group.producers) != 1 or group.producers[0].spec.aggregation:
        return False
    times, grid = plan[0][0], group.grid
    return (len(times) > 0 and grid.index(float(times[0])) == grid.index(float(times[-1]))
            and compiled("compiled_window") is not None)  # (and compiled_retry_buffer with it)


def fused_window(group, plan, batch: RecordBatch) -> bool:
    """The window at once for one producer (see :func:`applies`) and its new records ``batch``;
    returns False, having changed nothing, when the window is not exact (:mod:`kinesim.writer`)."""
    stream, prod, limits = group.stream, group.producers[0], group.stream.limits
    times = plan[0][0]
    src = RecordBatch.concat([prod.pending, batch])  # the retry buffer, then the new records
    t0 = float(times[0])
    avail_r, avail_b = stream.writes.available(t0)
    (exact, fate, when, made, ready, shard, seq, by_shard, keep, n_acc, b_acc, n_rej, sent, acc_f, bytes_f,
     retried) = compiled("compiled_window")(
        len(prod.pending), src.ready_time, src.event_time, src.size, src.attempts, src.key, stream.key_shard, times,
        limits.max_record_size, avail_r, avail_b, stream.next_seq, *prod.policy, generator(prod.rng))
    if not exact:
        return False
    # the stream: capacity, CloudWatch metrics, sequence numbers and the shard logs (Stream.commit)
    stream.writes.consume(n_acc, b_acc)
    m = stream.metrics
    m.add_put_payload_units(src.size[by_shard])
    m.add("IncomingRecords", t0, n_acc)
    m.add("IncomingBytes", t0, b_acc)
    m.add("WriteProvisionedThroughputExceeded", t0, n_rej)
    stream.next_seq += len(by_shard)
    t_send = times[when]  # meaningful where a row was sent
    no_subseq = np.zeros(len(src), np.int32)  # no KPL aggregates
    if len(by_shard):
        stream.append_logs(src, by_shard, None, no_subseq, n_acc, t_send, src.size, seq, False)
    # the producer: counts (all flushes are in one period), drops, the records trace, the retry buffer
    st, p = prod.stats, group.grid.index(t0)
    calls, failed = put_records_calls(sent, bytes_f, acc_f, limits)
    n_sent, n_accepted = int(sent.sum()), int(acc_f.sum())
    st.add(p, records_produced=len(batch), put_attempts=n_sent, records_accepted=n_accepted,
           records_throttled=n_sent - n_accepted, records_retried=int(retried.sum()),
           put_records_calls=int(calls.sum()), put_records_failed_calls=int(failed.sum()),
           kinesis_records_sent=n_sent)
    counts = np.bincount(fate, minlength=ACCEPTED + 1)
    for code in (1, 2, 3):
        if counts[code]:
            rows = np.flatnonzero(fate == code)
            prod.drop_counted(np.full(len(rows), p), src.trace[rows], DROP_REASONS[code])
    group.trace.put_outcome(src, fate == ACCEPTED, shard, seq, no_subseq, t_send, attempts=made)
    prod.pending = RecordBatch(**dict(zip(COLUMNS, compiled("compiled_retry_buffer")(
        keep, src.event_time, src.fleet, src.sensor, src.key, src.size, made, ready, src.trace))))
    return True

