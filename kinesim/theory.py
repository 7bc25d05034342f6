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


# ------------------------------------------------------------------ lessons: bursts, limits, lag
def bursty_throttle_rate(rate: float, on: float, off: float, limit: int = aws.SHARD_WRITE_RECORDS_PER_S) -> float:
    """Share of records rejected (no retries) when a fleet of long-run rate ``rate`` records/s
    emits only during ``on`` seconds of every ``on + off`` cycle (``arrival: {bursty: {on, off}}``)
    into a one-second-window limit of ``limit`` records.

    During a burst the rate is ``rate × (on + off) / on``; with whole-second ``on`` and ``off`` the
    bursts cover whole windows, each holding ``Poisson(rate × (on + off) / on)`` records, and the
    quiet windows hold none. Every record is in a burst window, so the answer is
    :func:`poisson_throttle_rate` at the burst rate. It shows why an average (CloudWatch's
    one-minute ``IncomingRecords`` / 60) under the limit does not mean no throttling: the limit
    applies per second (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
    """
    if on <= 0 or off < 0:
        raise ValueError("on must be > 0 and off >= 0")
    return poisson_throttle_rate(rate * (on + off) / on, limit)


def token_bucket_burst_throttle_rate(burst_rate: float, on: float, off: float, limit: float, depth: float) -> float:
    """Share of records rejected when a steady (fluid) burst of ``burst_rate`` lasting ``on``
    seconds, followed by ``off`` quiet seconds, meets a token bucket refilled at ``limit`` per
    second holding at most ``depth`` tokens (``stream.limits.write_model: token_bucket``, depth =
    ``limit × burst``).

    The bucket is full when a burst starts if the quiet time refills it (``off × limit >= depth``,
    assumed). It drains at ``burst_rate - limit`` and, once empty, rejects ``burst_rate - limit``
    per second, so a burst loses ``max(0, (burst_rate - limit) × on - depth)`` of its
    ``burst_rate × on`` records. ``depth = 0`` gives :func:`fluid_throttle_rate`. A fluid model:
    it ignores the randomness of arrivals (compare :func:`poisson_throttle_rate`).
    """
    if burst_rate <= 0 or on <= 0:
        return 0.0
    lost = max(0.0, (burst_rate - limit) * on - depth)
    return lost / (burst_rate * on)


def effective_record_limit(record_bytes: float, bytes_per_s: float = aws.SHARD_WRITE_BYTES_PER_S,
                           records_per_s: int = aws.SHARD_WRITE_RECORDS_PER_S) -> int:
    """Records of ``record_bytes`` (data + partition key) one shard accepts per second:
    ``min(records_per_s, floor(bytes_per_s / record_bytes))``. Above about 1 KiB per record the
    byte limit (1 MiB/s) binds before the record limit (1,000/s)
    (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html), so
    ``poisson_throttle_rate(lam, effective_record_limit(size))`` is the throttle rate of
    fixed-size records."""
    if record_bytes <= 0:
        raise ValueError("record_bytes must be > 0")
    return int(min(records_per_s, math.floor(bytes_per_s / record_bytes)))


def iterator_age_growth(arrival_rate: float, service_rate: float) -> float:
    """Seconds of iterator age gained per second by a consumer that reads in order at
    ``service_rate`` records/s while records arrive at ``arrival_rate``: ``max(0, 1 - mu/lambda)``.

    Fluid model from a common start (the consumer at the oldest record at ``t = 0``): by ``t`` it
    has read ``mu t`` records, which arrived by ``mu t / lambda``, so the record it reads at ``t``
    is ``t (1 - mu/lambda)`` old (``GetRecords.IteratorAgeMilliseconds`` / 1000).
    """
    if arrival_rate <= 0:
        return 0.0
    return max(0.0, 1.0 - float(service_rate) / float(arrival_rate))


def time_to_iterator_age(age: float, arrival_rate: float, service_rate: float) -> float:
    """Seconds until the iterator age of :func:`iterator_age_growth` reaches ``age``;
    ``inf`` when the consumer keeps up. With ``age = retention`` this is when data loss starts;
    with ``age = retention / 2`` when the usual 50%-of-retention iterator-age alarm fires
    (:func:`iterator_age_alarm_threshold`)."""
    growth = iterator_age_growth(arrival_rate, service_rate)
    return math.inf if growth <= 0 else age / growth


def records_expired_by(t: float, retention: float, arrival_rate: float, service_rate: float) -> float:
    """Records trimmed by retention before the consumer of :func:`iterator_age_growth` read them,
    by time ``t``: ``max(0, (lambda - mu) × (t - t_loss))`` with ``t_loss`` =
    :func:`time_to_iterator_age` of ``retention``.

    Once the consumer's position reaches the trim horizon it stays there: records reach the
    horizon at ``lambda`` per second and the consumer takes ``mu`` of them, so the rest expire
    (https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html: records older
    than the retention period are no longer accessible).
    """
    t_loss = time_to_iterator_age(retention, arrival_rate, service_rate)
    if not t > t_loss:
        return 0.0
    return (float(arrival_rate) - float(service_rate)) * (t - t_loss)


def iterator_age_alarm_threshold(retention: float, share: float = 0.5) -> float:
    """The iterator-age alarm threshold in seconds: ``share`` (50%) of the retention period.

    Alarming on ``GetRecords.IteratorAgeMilliseconds`` (Maximum) at half the retention period is
    the usual guidance, which leaves as long again before records expire unread
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Best_Practice_Recommended_Alarms_AWS_Services.html
    lists the iterator-age alarm; the 50% figure as quoted by
    https://www.bluematador.com/docs/troubleshooting/aws-kinesis-iterator-age; not confirmed word
    for word on an AWS page here)."""
    return share * float(retention)


def shared_read_throttle_share(consumers: int, poll_interval: float = aws.KCL_IDLE_TIME_BETWEEN_READS_S,
                               busy: float = 0.0, calls_per_s: int = aws.SHARD_READ_CALLS_PER_S) -> float:
    """Share of GetRecords calls throttled when ``consumers`` polling applications share one
    shard's ``calls_per_s`` (5) read calls per second.

    Fluid model of :mod:`kinesim.consumer`: a served call is followed by ``busy`` seconds of
    processing and ``poll_interval`` of idling, a throttled call by ``poll_interval`` only. If
    ``consumers / (poll_interval + busy) <= calls_per_s`` nothing is throttled. Otherwise the shard
    serves ``calls_per_s`` calls per second, ``s = calls_per_s / consumers`` per application, and
    each application fills the rest of its time with throttled calls:
    ``f = (1 - s (poll_interval + busy)) / poll_interval``; the share is ``f / (s + f)``. With
    ``busy = 0`` it is ``1 - calls_per_s / consumers``. The limit:
    https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html (5 transactions
    per second per shard, shared by all consumers). One-second windows that hold fewer than
    ``calls_per_s`` calls waste capacity, so the simulated share is a little higher.
    """
    if consumers <= 0:
        return 0.0
    cycle = poll_interval + busy
    if consumers / cycle <= calls_per_s:
        return 0.0
    s = calls_per_s / consumers
    f = (1.0 - s * cycle) / poll_interval
    return f / (s + f)
