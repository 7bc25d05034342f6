"""Sensor fleets: arrival processes, record sizes and partition keys, generated as arrays.

A fleet's per-sensor emission rate is piecewise constant: ``rate × profile factor × burst factor``.
Its integral ``Λ(t)`` (events per sensor up to ``t``) turns every arrival process into a simple one
in "operational time": a ``periodic`` sensor emits at ``Λ = φ + k`` (its own random phase ``φ``),
a ``poisson`` fleet is a Poisson process of rate ``sensors`` in ``Λ``. Records of a flush interval
``(t0, t1]`` are drawn at once as arrays: no Python object or SimPy event per record.
"""
from __future__ import annotations

import bisect

import numpy as np

from kinesim.batch import COLUMNS, RecordBatch
from kinesim.hashing import md5_hash_keys
from kinesim.scenario import Fleet as FleetSpec

#: Size of the pool of partition keys used for ``partition_key: random``. Routing only depends
#: on the keys' MD5 values, and 65,536 uniformly spread keys route like fresh keys per record.
RANDOM_KEY_POOL = 65_536


class Fleet:
    """A fleet of sensors. ``generate(t0, t1)`` returns the records measured in ``(t0, t1]``.

    ``keys`` is the fleet's partition-key table (strings); records refer to it by index:
    sensor keys ``<fleet>-<i>`` first, then hot keys ``<fleet>-hot-<j>``, then the random pool.
    ``key_hi``/``key_lo`` hold the keys' MD5 hash keys (the stream routes each key once,
    :meth:`kinesim.stream.Stream.set_partition_keys`), ``key_bytes`` their UTF-8 lengths.
    """

    def __init__(self, spec: FleetSpec, index: int, horizon: float, rng: np.random.Generator):
        self.spec = spec
        self.index = index
        self.rng = rng
        n = spec.sensors
        keys = [f"{spec.name}-{i}" for i in range(n)]
        self.hot_first = len(keys)
        self.hot_count = 0
        pk = spec.partition_key
        if not isinstance(pk, str):
            self.hot_count = pk.hot.keys
            keys += [f"{spec.name}-hot-{j}" for j in range(self.hot_count)]
        self.random_first = len(keys)
        if pk == "random":
            raw = rng.integers(0, 2**63, size=(RANDOM_KEY_POOL, 2), dtype=np.int64)
            keys += [f"{a:016x}{b:016x}" for a, b in raw.tolist()]
        self.keys = keys
        self.key_hi, self.key_lo = md5_hash_keys(keys)
        self.key_bytes = np.fromiter((len(k.encode("utf-8")) for k in keys), dtype=np.int64, count=len(keys))
        # a record's size by key when the data size is fixed, else None (drawn per record)
        self._record_bytes = spec.record_size + self.key_bytes if isinstance(spec.record_size, int) else None
        self._build_intensity(horizon)
        if spec.arrival == "periodic":
            phase = rng.random(n)
            self._order = np.argsort(phase, kind="stable")
            self._phase = phase[self._order]

    # ------------------------------------------------------------ intensity
    def _build_intensity(self, horizon: float) -> None:
        spec = self.spec
        edges = {0.0, horizon}
        edges.update(step.at for step in spec.profile if step.at < horizon)
        cycle = on = None
        if not isinstance(spec.arrival, str):
            on, off = spec.arrival.bursty.on, spec.arrival.bursty.off
            cycle = on + off
            k = np.arange(int(np.ceil(horizon / cycle)) + 1) * cycle
            edges.update(k[k < horizon].tolist())
            edges.update((k + on)[(k + on) < horizon].tolist())
        t = np.array(sorted(edges))
        factor = np.ones(len(t))
        for step in spec.profile:
            factor[t >= step.at] = step.factor
        if cycle is not None:
            in_on = np.mod(t, cycle) < on - 1e-12
            factor *= np.where(in_on, cycle / on, 0.0)
        self._t = t  # segment starts, last = horizon
        self._m = spec.rate * factor  # per-sensor rate on [t[i], t[i+1])
        lam = np.zeros(len(t))
        lam[1:] = np.cumsum(self._m[:-1] * np.diff(t))
        self._lam = lam
        self._segments = (t.tolist(), lam.tolist(), self._m.tolist())  # for scalar lookups

    def _cumulative_at(self, t: float) -> float:
        """:meth:`cumulative` of one time, with Python floats (the same IEEE arithmetic, no arrays)."""
        starts, lam, m = self._segments
        i = min(max(bisect.bisect_right(starts, t) - 1, 0), len(starts) - 1)
        return lam[i] + m[i] * (t - starts[i])

    def cumulative(self, t: float | np.ndarray) -> np.ndarray:
        """``Λ(t)``: expected events per sensor in ``[0, t]`` (rate integrated over time)."""
        t = np.asarray(t, dtype=np.float64)
        i = np.clip(np.searchsorted(self._t, t, side="right") - 1, 0, len(self._t) - 1)
        return self._lam[i] + self._m[i] * (t - self._t[i])

    def _inverse(self, lam: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``Λ⁻¹``: the times of the sorted operational times ``lam`` (into ``out``, which may be
        ``lam``, in the usual case of one segment)."""
        last = len(self._t) - 1
        if len(lam):
            lo, hi = np.searchsorted(self._lam, lam[[0, -1]], side="left") - 1
            if lo == hi:  # all in one segment of constant rate (the usual case): scalar arithmetic
                i = min(max(int(lo), 0), last)
                m = self._m[i]
                x = np.subtract(lam, self._lam[i], out=out)  # t[i] + (lam - Λ[i]) / m
                x /= m if m > 0 else 1.0
                x += self._t[i]
                return x
        i = np.clip(np.searchsorted(self._lam, lam, side="left") - 1, 0, last)
        m = self._m[i]
        return self._t[i] + (lam - self._lam[i]) / np.where(m > 0, m, 1.0)

    def expected_records(self, t0: float, t1: float) -> float:
        """Expected user records of the whole fleet in ``(t0, t1]``."""
        return float(self.spec.sensors * (self.cumulative(t1) - self.cumulative(t0)))

    # ------------------------------------------------------------ generation
    def generate(self, t0: float, t1: float) -> RecordBatch:
        """Records with ``t0 < event_time <= t1``, in event-time order (attempts 0, trace -1)."""
        l0, l1 = self._cumulative_at(float(t0)), self._cumulative_at(float(t1))
        if l1 <= l0:
            return RecordBatch.empty()
        if self.spec.arrival == "periodic":
            lam, sensor = self._periodic(l0, l1)
        else:
            count = self.rng.poisson(self.spec.sensors * (l1 - l0))
            # sorted uniform points without a sort: normalised partial sums of exponential spacings,
            # l0 + (l1 - l0) * (gaps / total) computed in place
            gaps = self.rng.standard_exponential(count + 1)
            np.cumsum(gaps, out=gaps)
            lam = gaps[:-1]
            lam /= gaps[-1]
            lam *= l1 - l0
            lam += l0
            sensor = self.rng.integers(0, self.spec.sensors, size=count)
        event_time = self._inverse(lam, out=lam)
        np.minimum(event_time, t1, out=event_time)
        return self._records(event_time, sensor)

    def count_between(self, t0: float, t1: float) -> int:
        """How many records :meth:`generate` would give for ``(t0, t1]`` (Poisson: a draw from
        this fleet's generator), without making them: the records measured after the producer's
        last flush of the run, which are never sent."""
        l0, l1 = self._cumulative_at(float(t0)), self._cumulative_at(float(t1))
        if l1 <= l0:
            return 0
        if self.spec.arrival == "periodic":  # per sensor, the k with l0 < k + phase <= l1
            return int(np.sum(np.floor(l1 - self._phase) - np.floor(l0 - self._phase)))
        return int(self.rng.poisson(self.spec.sensors * (l1 - l0)))

    def compiled_generation(self) -> bool:
        """Whether :meth:`generate_after` can use the compiled kernel: Poisson or bursty arrivals,
        sensor partition keys, a fixed record size."""
        spec = self.spec
        return spec.arrival != "periodic" and spec.partition_key == "sensor" and self._record_bytes is not None

    def generate_after(self, pending: RecordBatch, t0: float, t1: float, kernel) -> tuple[RecordBatch, int]:
        """``(RecordBatch.concat([pending, self.generate(t0, t1)]), new records)`` through the
        compiled ``kernel`` (:func:`kinesim._kernels_rows.compiled_new_records`; see
        :meth:`compiled_generation`): the same rows and draws."""
        l0, l1 = self._cumulative_at(float(t0)), self._cumulative_at(float(t1))
        if l1 <= l0:
            return pending, 0
        count = self.rng.poisson(self.spec.sensors * (l1 - l0))
        p = pending
        columns = kernel(count, l0, l1 - l0, float(t1), self._t, self._lam, self._m, self.spec.sensors, self._record_bytes,
                         self.index, p.event_time, p.fleet, p.sensor, p.key, p.size, p.attempts, p.ready_time, p.trace,
                         self.rng)
        return RecordBatch(**dict(zip(COLUMNS, columns))), count

    def _periodic(self, l0: float, l1: float) -> tuple[np.ndarray, np.ndarray]:
        lams, sensors = [], []
        for k in range(int(np.floor(l0)), int(np.floor(l1)) + 1):
            lo = np.searchsorted(self._phase, l0 - k, side="right")
            hi = np.searchsorted(self._phase, l1 - k, side="right")
            if hi > lo:
                lams.append(k + self._phase[lo:hi])
                sensors.append(self._order[lo:hi])
        if not lams:
            return np.empty(0), np.empty(0, dtype=np.int64)
        return np.concatenate(lams), np.concatenate(sensors)

    def _records(self, event_time: np.ndarray, sensor: np.ndarray) -> RecordBatch:
        n = len(event_time)
        key = self._keys_for(sensor)
        if self._record_bytes is not None:
            size = self._record_bytes[key]
        else:
            size = self._data_sizes(n) + self.key_bytes[key]
        return RecordBatch(
            event_time=event_time,
            fleet=np.full(n, self.index, dtype=np.int16),
            sensor=sensor.astype(np.int64, copy=False),
            key=key,
            size=size,
            attempts=np.zeros(n, dtype=np.int32),
            ready_time=event_time,
            trace=np.full(n, -1, dtype=np.int64),
        )

    def _keys_for(self, sensor: np.ndarray) -> np.ndarray:
        pk = self.spec.partition_key
        if pk == "sensor":
            return sensor.astype(np.int64, copy=True)
        if pk == "random":
            return self.random_first + self.rng.integers(0, RANDOM_KEY_POOL, size=len(sensor))
        hot = self.rng.random(len(sensor)) < pk.hot.share
        which = self.hot_first + self.rng.integers(0, self.hot_count, size=len(sensor))
        return np.where(hot, which, sensor).astype(np.int64)

    def _data_sizes(self, n: int) -> np.ndarray:
        size = self.spec.record_size
        if isinstance(size, int):
            return np.full(n, size, dtype=np.int64)
        if hasattr(size, "uniform"):
            low, high = size.uniform
            return self.rng.integers(low, high + 1, size=n)
        mu = np.log(size.mean) - size.sigma**2 / 2  # so that E[size] = mean
        return np.maximum(1, np.rint(self.rng.lognormal(mu, size.sigma, size=n))).astype(np.int64)
