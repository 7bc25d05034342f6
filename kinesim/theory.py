"""Closed forms that tests and lessons compare the simulator against.

Each function states its model, its derivation and its source. Units: records, bytes, seconds.
Only the standard library and numpy are used (no scipy).
"""
from __future__ import annotations

import math

import numpy as np

from kinesim import aws

_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _poisson_pmf(lam: float, k: np.ndarray) -> np.ndarray:
    """``P(N = k)`` for ``N ~ Poisson(lam)``, computed in log space (no overflow for large ``lam``)."""
    k = np.asarray(k, dtype=np.float64)
    if lam == 0:
        return (k == 0).astype(np.float64)
    log_pmf = k * math.log(lam) - lam - _lgamma(k + 1.0).astype(np.float64)
    return np.exp(log_pmf)


def poisson_throttle_rate(lam: float, limit: int = aws.SHARD_WRITE_RECORDS_PER_S) -> float:
    """Share of records rejected when ``N ~ Poisson(lam)`` records arrive in a one-second window
    that accepts at most ``limit``: ``E[(N - limit)+] / E[N]``.

    Model: one shard, the per-second record limit (1,000 records/s,
    https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html) applied to
    independent one-second windows, no retries (a rejected record is never offered again), records
    small enough that the byte limit never binds. Poisson arrivals at ``lam``/s give a
    ``Poisson(lam)`` count per window; the window accepts ``min(N, limit)``.

    Derivation: ``E[(N - L)+] = sum_{k > L} (k - L) p(k)``. Both sides of
    ``E[(N - L)+] = lam - L + E[(L - N)+]`` are sums of positive terms, so to avoid cancellation the
    upper-tail sum is used when ``lam <= L`` and ``lam - L + sum_{k < L} (L - k) p(k)`` when
    ``lam > L``. Terms beyond 40 standard deviations (+40) of the mean are below ``e**-800`` and are
    left out, so the cost is ``O(sqrt(lam))`` and the result is exact to double precision for
    ``lam`` up to 1e5 and beyond. ``p(k)`` uses ``math.lgamma``.
    """
    lam = float(lam)
    if lam < 0 or not math.isfinite(lam):
        raise ValueError(f"lam must be a finite rate >= 0, got {lam}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if lam == 0:
        return 0.0
    spread = 40.0 * math.sqrt(lam) + 40.0
    lo = max(0, math.floor(lam - spread))
    hi = math.ceil(lam + spread)
    if lam <= limit:
        k = np.arange(max(limit + 1, lo), max(limit + 1, hi + 1))
        excess = float(np.sum((k - limit) * _poisson_pmf(lam, k)))
    else:
        k = np.arange(lo, limit)  # empty when lo >= limit: the lower tail is negligible
        excess = (lam - limit) + float(np.sum((limit - k) * _poisson_pmf(lam, k)))
    return excess / lam


def fluid_throttle_rate(rate: float, limit: float) -> float:
    """Share of records rejected when a steady flow of ``rate`` meets a capacity ``limit`` (same
    units): ``max(0, 1 - limit / rate)``.

    The fluid (deterministic) limit of :func:`poisson_throttle_rate`: without randomness the
    capacity takes ``limit`` of every ``rate`` offered and rejects the rest. Exact for periodic
    arrivals spread evenly over each window; a lower bound for Poisson arrivals, whose busy
    windows throttle more than the quiet ones can make up.
    """
    if rate <= 0:
        return 0.0
    return max(0.0, 1.0 - limit / rate)


def backlog_growth_rate(arrival_rate: float, service_rate: float) -> float:
    """Records/s by which an unread backlog grows: ``max(0, lambda - mu)``.

    Conservation of records (fluid approximation of a queue): what arrives and is not served
    stays. When ``mu >= lambda`` the backlog is stable (it does not grow on average).
    """
    return max(0.0, float(arrival_rate) - float(service_rate))


def polling_service_rate(per_record: float, per_batch: float, poll_interval: float, max_records: int) -> float:
    """Maximum records/s one polling worker (one shard) processes when every GetRecords call
    returns a full batch: ``max_records / (per_batch + max_records * per_record + poll_interval)``.

    Model (:mod:`kinesim.consumer`, KCL-like): a worker calls GetRecords, is busy
    ``per_batch + n * per_record`` with the ``n`` records returned, then idles ``poll_interval``
    (KCL idleTimeBetweenReads) before the next call. With a backlog every call returns
    ``max_records`` (GetRecords ``Limit``, at most 10,000:
    https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html), so one cycle
    takes the denominator and serves the numerator. Ignores the shard's read limits
    (5 calls/s, 2 MiB/s), which must not bind for this to hold.
    """
    cycle = per_batch + max_records * per_record + poll_interval
    if cycle <= 0:
        return math.inf
    return max_records / cycle


def mean_polling_delay(poll_interval: float, processing: float = 0.0) -> float:
    """Mean time from a record's arrival in the shard to the GetRecords call that reads it, for a
    polling consumer that keeps up: ``(poll_interval + processing) / 2``.

    Model: the worker calls GetRecords every ``poll_interval + processing`` seconds (it idles
    ``poll_interval`` after a busy time of ``processing`` seconds per cycle, taken constant) and
    every call returns all records that arrived since the previous one. Arrivals independent of the
    worker's phase fall uniformly in the cycle, so the wait to the next call is uniform on
    ``[0, cycle]``, mean ``cycle / 2`` (the inspection paradox with a constant cycle:
    ``E[T**2] / (2 E[T]) = T / 2``). ``processing = 0`` gives ``poll_interval / 2``.
    """
    return (poll_interval + processing) / 2.0


def drain_time(backlog: float, arrival_rate: float, service_rate: float) -> float:
    """Seconds to clear a ``backlog`` of records when records keep arriving at ``arrival_rate`` and
    are served at ``service_rate``: ``backlog / (mu - lambda)``; ``inf`` when ``mu <= lambda`` and
    there is a backlog, 0 when there is none.

    Fluid model: the backlog shrinks at the net rate ``mu - lambda`` (see
    :func:`backlog_growth_rate`).
    """
    if backlog <= 0:
        return 0.0
    net = float(service_rate) - float(arrival_rate)
    if net <= 0:
        return math.inf
    return backlog / net


def shards_for(write_bytes_per_s: float, consumers: int = 1, write_records_per_s: float | None = None) -> int:
    """Provisioned shards a stream needs: AWS's sizing formula
    ``max(incoming_write_KiB / 1024, outgoing_read_KiB / 2048)`` with
    ``outgoing_read = incoming_write x consumers``, rounded up; at least
    ``write_records_per_s / 1000`` (the per-shard record limit) when given, and at least 1.

    Source: https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html (the
    formula: 1 MiB/s write and 2 MiB/s shared read per shard); the record limit from
    https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html. Like the formula,
    it sizes for the average rate: Poisson bursts above it still throttle
    (:func:`poisson_throttle_rate`).
    """
    if write_bytes_per_s < 0 or consumers < 0:
        raise ValueError("write_bytes_per_s and consumers must be >= 0")
    write_kib = write_bytes_per_s / aws.KiB
    read_kib = write_kib * consumers
    need = max(write_kib / (aws.SHARD_WRITE_BYTES_PER_S / aws.KiB), read_kib / (aws.SHARD_READ_BYTES_PER_S / aws.KiB))
    if write_records_per_s is not None:
        need = max(need, write_records_per_s / aws.SHARD_WRITE_RECORDS_PER_S)
    return max(1, math.ceil(need - 1e-9))
