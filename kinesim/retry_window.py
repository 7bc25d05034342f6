"""Retries inside one write window of records whose shard has no record capacity left.

When a shard has spent its record capacity for the one-second window (:mod:`kinesim.writer`),
every further attempt of a record routed to it in that window is throttled. So, given the user
records of one producer that the window's main pass rejected, what happens to them until the
window ends follows from the retry policy alone: :func:`retry_chain` replays the producer's
flushes of the window in time order, exactly as :meth:`kinesim.producer.Producer.flush` would:

* at each flush, the retries that are due (``ready <= t``), in retry-queue order, are checked
  against ``record_ttl`` (too old: dropped) and sent between the flush's rejected old retries
  (band 0) and its rejected new records (band 2); with KPL aggregation the flush is ordered by
  shard first (a stable sort), as the producer groups records per shard;
* every record of the flush is throttled: its attempt count goes up; with ``max_attempts`` spent
  it is dropped, otherwise it gets a backoff delay (drawn from the producer's random stream, in
  flush order, one draw per record, as ``Producer.backoff`` does) and joins the retry queue.

What is still queued at the end of the window is handed back, in queue order, to the producer's
retry buffer. The random draws, and hence every result, are those of flush-by-flush sending.

Two implementations compute the same arrays: a compiled loop (numba, for large runs: see
:mod:`kinesim.compiled`) and a pure-numpy loop over the window's flushes (the fallback; the test
suite runs both and compares them). The compiled loop exists because the numpy one costs a
dozen array calls per flush, about a third of the engine's time on an overloaded stream.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kinesim.compiled import compiled as compiled_twin

BACKOFF_CODES = {"none": 0, "constant": 1, "exponential": 2}

# fate of each rejected record at the end of the window
QUEUED, DROPPED_MAX_ATTEMPTS, DROPPED_TTL = 0, 1, 2


class RetryPolicy(NamedTuple):
    """The producer's retry settings in the kernel's terms (seconds)."""

    max_attempts: int
    backoff: int  # BACKOFF_CODES
    base: float
    max: float
    jitter: bool
    ttl: float

    @classmethod
    def of(cls, spec) -> "RetryPolicy":
        """The policy of a producer spec (:class:`kinesim.scenario.Producer`)."""
        r = spec.retries
        return cls(r.max_attempts, BACKOFF_CODES[r.backoff], float(r.base), float(r.max), r.jitter == "full",
                   float(spec.record_ttl))


class RetryOutcome(NamedTuple):
    """Arrays over the ``n`` rejected records (row ``i`` = input row ``i``) and per flush.

    ``fate`` (int8): QUEUED / DROPPED_MAX_ATTEMPTS / DROPPED_TTL; ``attempts`` (int32): attempts
    made by the end of the window; ``when`` (int64): flush index of the drop (drops) ; ``ready``
    (float64): earliest next attempt of queued records; ``queue`` (int64): the queued rows in
    retry-queue order. ``sent_flush``/``sent_row`` (int64, length S): the in-window re-sends in
    send order (flush by flush). ``retried`` (int64, per flush): records given a backoff there.
    """

    fate: np.ndarray
    attempts: np.ndarray
    when: np.ndarray
    ready: np.ndarray
    queue: np.ndarray
    sent_flush: np.ndarray
    sent_row: np.ndarray
    retried: np.ndarray


def retry_chain(flush: np.ndarray, band: np.ndarray, shard: np.ndarray, event: np.ndarray, attempts: np.ndarray,
                times: np.ndarray, policy: RetryPolicy, aggregation: bool, rng: np.random.Generator,
                compiled: bool = False) -> RetryOutcome:
    """What becomes of rejected records in the rest of their write window.

    The ``n`` rows are the records the window's main pass rejected, in send order: ``flush``
    (int64, non-decreasing) is the index in ``times`` (the producer's flush times in the window,
    s) of the flush that sent them, ``band`` 0 for a due retry and 2 for a new record, ``shard``
    the shard, ``event`` the event time (s) and ``attempts`` the attempts made before that flush.
    ``rng`` draws the jitter (may be None without jitter). ``compiled`` picks the numba twin
    (:mod:`kinesim._kernels`; numpy when numba is missing). Returns a
    :class:`RetryOutcome`. The retry policy follows the KPL's (see :class:`kinesim.scenario.Retries`).
    """
    if rng is None and policy.jitter:
        raise ValueError("retry_chain: jitter needs a random generator")
    kernel = compiled_twin("compiled_chain") if compiled else None
    if kernel is not None:
        return _compiled(kernel, flush, band, shard, event, attempts, times, policy, aggregation, rng)
    return _numpy_chain(flush, band, shard, event, attempts, times, policy, aggregation, rng)


def _compiled(kernel, flush, band, shard, event, attempts, times, policy: RetryPolicy, aggregation, rng) -> RetryOutcome:
    """The numba twin; it draws the jitter from ``rng`` itself (numba shares the generator's state,
    so the stream is the one one-draw-at-a-time sending leaves)."""
    return RetryOutcome(*kernel(flush, band, shard, event, attempts, times, *policy, aggregation, generator(rng)))


def generator(rng):
    """``rng``, or a stand-in the compiled code never draws from when there is no jitter (numba
    needs a generator object)."""
    return rng if rng is not None else _UNUSED


_UNUSED = np.random.default_rng(0)


def _numpy_chain(flush, band, shard, event, attempts, times, policy: RetryPolicy, aggregation, rng) -> RetryOutcome:
    n, n_flush = len(flush), len(times)
    fate = np.zeros(n, np.int8)
    made = attempts.astype(np.int32) + 1  # the main pass's attempt
    when = np.full(n, -1, np.int64)
    ready = np.zeros(n)
    retried = np.zeros(n_flush, np.int64)
    q_rows, q_ready = np.zeros(0, np.int64), np.zeros(0)
    sent_f, sent_r = [], []
    bounds = np.searchsorted(flush, np.arange(n_flush + 1), side="left")
    for j in range(n_flush):
        t = times[j]
        own = np.arange(bounds[j], bounds[j + 1])
        due = q_ready <= t + 1e-9
        again = q_rows[due]
        q_rows, q_ready = q_rows[~due], q_ready[~due]
        if len(again):
            old = t - event[again] > policy.ttl + 1e-9
            fate[again[old]], when[again[old]] = DROPPED_TTL, j
            again = again[~old]
            made[again] += 1
            sent_f.append(np.full(len(again), j))
            sent_r.append(again)
        if not len(own) and not len(again):
            continue
        rows = np.concatenate([own[band[own] == 0], again, own[band[own] != 0]])
        if aggregation:
            rows = rows[np.argsort(shard[rows], kind="stable")]
        spent = made[rows] >= policy.max_attempts
        fate[rows[spent]], when[rows[spent]] = DROPPED_MAX_ATTEMPTS, j
        rows = rows[~spent]
        if len(rows):
            retried[j] = len(rows)
            ready[rows] = t + delays(made[rows], policy, rng)
            q_rows, q_ready = np.concatenate([q_rows, rows]), np.concatenate([q_ready, ready[rows]])
    sent_flush = np.concatenate(sent_f) if sent_f else np.zeros(0, np.int64)
    sent_row = np.concatenate(sent_r) if sent_r else np.zeros(0, np.int64)
    return RetryOutcome(fate, made, when, ready, q_rows, sent_flush.astype(np.int64), sent_row, retried)


def delays(made: np.ndarray, policy: RetryPolicy, rng) -> np.ndarray:
    """Backoff (s) before the next attempt of records that made ``made`` attempts: none, ``base``,
    or ``min(max, base × 2**(made-1))``, times a uniform draw each with full jitter (one
    ``rng.random`` call). :meth:`kinesim.producer.Producer.flush` uses it too."""
    if policy.backoff == 0:
        delay = np.zeros(len(made))
    elif policy.backoff == 1:
        delay = np.full(len(made), policy.base)
    else:
        delay = np.minimum(policy.max, policy.base * np.exp2(np.minimum(made - 1, 60)))
    if policy.jitter:
        delay = delay * rng.random(len(made))
    return delay
