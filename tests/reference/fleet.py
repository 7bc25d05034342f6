"""The reference model's fleets, one Python object per record (see :mod:`tests.reference.model`
for the semantics): flush ticks, the arrival intensity ``Λ`` and its inverse, and the user and
Kinesis records the producers send."""
from __future__ import annotations

import heapq
import math
import random

#: Partition keys in the pool of ``partition_key: random`` (the engine's documented pool size).
RANDOM_KEY_POOL = 65_536


def tick(k: int, dt: float) -> float:
    return round(k * dt, 9)


def _rng(seed: int, component: str) -> random.Random:
    """An independent Python generator per component (string seeds are hashed with SHA-512)."""
    return random.Random(f"kinesim-reference/{seed}/{component}")


# ====================================================================== records
class UserRecord:
    __slots__ = ("event_time", "size", "shard", "attempts", "ready_time")

    def __init__(self, event_time: float, size: int, shard: int):
        self.event_time = event_time
        self.size = size
        self.shard = shard
        self.attempts = 0
        self.ready_time = event_time


class KinesisRecord:
    """One record as the shard stores it: arrival time, bytes, and its user records' event times."""

    __slots__ = ("arrival", "size", "events")

    def __init__(self, arrival: float, size: int, events: list[float]):
        self.arrival = arrival
        self.size = size
        self.events = events


# ====================================================================== fleet
class Intensity:
    """The per-sensor rate as a list of segments ``(start, end, rate, Λ(start))`` up to ``horizon``."""

    def __init__(self, spec, horizon: float):
        points = {0.0, horizon}
        for step in spec.profile:
            if 0.0 < step.at < horizon:
                points.add(step.at)
        bursty = None if isinstance(spec.arrival, str) else spec.arrival.bursty
        if bursty is not None:
            cycle = bursty.on + bursty.off
            c = 0
            while c * cycle < horizon:
                points.add(c * cycle)
                if c * cycle + bursty.on < horizon:
                    points.add(c * cycle + bursty.on)
                c += 1
        points = sorted(points)
        self.segments = []
        lam = 0.0
        for a, b in zip(points[:-1], points[1:]):
            mid = 0.5 * (a + b)
            factor = 1.0
            for step in spec.profile:  # steps are in increasing order of ``at``
                if step.at <= mid:
                    factor = step.factor
            if bursty is not None:
                cycle = bursty.on + bursty.off
                factor *= cycle / bursty.on if (mid % cycle) < bursty.on else 0.0
            rate = spec.rate * factor
            self.segments.append((a, b, rate, lam))
            lam += rate * (b - a)
        self.total = lam
        self._seg = 0  # cursor: callers ask for increasing Λ

    def time_of(self, lam: float) -> float:
        """The time at which ``Λ`` reaches ``lam`` (non-decreasing ``lam`` across calls); inf past the end."""
        segs = self.segments
        while self._seg < len(segs):
            a, b, rate, lam_a = segs[self._seg]
            if rate > 0 and lam <= lam_a + rate * (b - a):
                return a + (lam - lam_a) / rate
            self._seg += 1
        return math.inf


class FleetModel:
    """Generates the fleet's user records one by one, in event-time order."""

    def __init__(self, spec, horizon: float, shard_of, rng: random.Random, replay=None):
        self.spec = spec
        self.rng = rng
        self.shard_of = shard_of
        #: optional given records ``(event_time, size, partition_key)`` in event-time order, used
        #: instead of drawing arrivals, sizes and keys
        self.replay = None if replay is None else iter(replay)
        self.intensity = Intensity(spec, horizon)
        n = spec.sensors
        self.sensor_keys = [f"{spec.name}-{i}" for i in range(n)]
        pk = spec.partition_key
        self.pk_kind = pk if isinstance(pk, str) else "hot"
        self.hot_share = 0.0 if isinstance(pk, str) else pk.hot.share
        self.hot_keys = [] if isinstance(pk, str) else [f"{spec.name}-hot-{j}" for j in range(pk.hot.keys)]
        self.pool = [f"{rng.getrandbits(128):032x}" for _ in range(RANDOM_KEY_POOL)] if pk == "random" else []
        self.periodic = spec.arrival == "periodic"
        if self.periodic:
            self.heap = [(rng.random(), s) for s in range(n)]  # (Λ of the next emission, sensor)
            heapq.heapify(self.heap)
        self.lam = 0.0
        size = spec.record_size
        if isinstance(size, int):
            self.size_kind = "constant"
        elif hasattr(size, "uniform"):
            self.size_kind = "uniform"
        else:
            self.size_kind = "lognormal"
            self.mu = math.log(size.mean) - size.sigma**2 / 2
        self.next = self._make()

    def _next_time_and_sensor(self) -> tuple[float, int]:
        if self.periodic:
            lam, sensor = heapq.heappop(self.heap)
            heapq.heappush(self.heap, (lam + 1.0, sensor))
        else:
            self.lam += self.rng.expovariate(self.spec.sensors)
            lam, sensor = self.lam, self.rng.randrange(self.spec.sensors)
        if lam > self.intensity.total:
            return math.inf, sensor
        return self.intensity.time_of(lam), sensor

    def _key(self, sensor: int) -> str:
        kind = self.pk_kind
        if kind == "sensor":
            return self.sensor_keys[sensor]
        if kind == "random":
            return self.pool[self.rng.randrange(RANDOM_KEY_POOL)]
        if self.rng.random() < self.hot_share:
            return self.hot_keys[self.rng.randrange(len(self.hot_keys))]
        return self.sensor_keys[sensor]

    def _data_size(self) -> int:
        size = self.spec.record_size
        if self.size_kind == "constant":
            return size
        if self.size_kind == "uniform":
            return self.rng.randint(size.uniform[0], size.uniform[1])
        return max(1, int(round(self.rng.lognormvariate(self.mu, size.sigma))))

    def _make(self) -> UserRecord | None:
        if self.replay is not None:
            given = next(self.replay, None)
            if given is None:
                return None
            event_time, size, key = given
            return UserRecord(float(event_time), int(size), self.shard_of(key))
        t, sensor = self._next_time_and_sensor()
        if t == math.inf:
            return None
        key = self._key(sensor)
        return UserRecord(t, self._data_size() + len(key.encode("utf-8")), self.shard_of(key))

    def take_until(self, t: float) -> list[UserRecord]:
        """The records with event time ``<= t`` not taken yet, in event-time order."""
        out = []
        while self.next is not None and self.next.event_time <= t:
            out.append(self.next)
            self.next = self._make()
        return out


# ====================================================================== stream
