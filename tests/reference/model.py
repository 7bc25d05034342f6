"""An exact per-record reference model of kinesim, written the plain way.

It exists only to check the fast engine: it takes the same validated :class:`kinesim.Scenario`
and returns the same headline figures as ``Results.summary_dict``, but moves **one Python object
per record** through a hand-written event queue (a heap ordered by time; at equal times the
fleets' flushes come first, in fleet order, then the consumers' calls in scheduling order).
Nothing here imports the engine (``fleet``, ``producer``, ``writer``, ``limits``, ``stream``,
``log``, ``consumer``, ``simulation``, ``metrics``); only the scenario schema, the AWS constants
and ``even_ranges`` (the CreateStream hash key ranges). Its random draws come from Python's
:mod:`random`, so agreement with the engine is statistical, never draw-by-draw. It models a
provisioned stream with a fixed set of shards and polling consumers, and refuses scenarios with
anything else (resharding, on-demand mode, Firehose, ...).

The semantics, one record at a time (the engine's docstrings are the authority):

* **Time** runs from 0 to ``duration`` (s). Fleet ``f`` flushes at ``t_k = round(k·dt, 9)``,
  ``k = 1, 2, ...`` while ``t_k < duration``, ``dt = producer.max_buffered_time`` (the run's writes
  cover ``[0, duration)``: no flush at exactly ``duration``, see ``kinesim.writer.FlushClock``).
  A flush sends the records measured in ``(t_{k-1}, t_k]`` plus the retries that are due; accepted
  records arrive at ``t_k``. Consumers still call at times up to and including ``duration``.
* **Arrivals.** The per-sensor rate is ``rate × profile factor × burst factor`` (piecewise constant;
  profile factor 1 before the first step; burst factor ``(on+off)/on`` during the ``on`` part of
  each cycle from 0, else 0). ``Λ(t)`` is its integral. ``poisson``: exponential gaps of rate
  ``sensors`` in ``Λ``, sensor uniform; ``periodic``: sensor ``s`` emits at ``Λ = φ_s + k``,
  ``φ_s ~ U[0, 1)``.
* **Records.** Bytes = data size (constant, lognormal with ``mu = ln(mean) - sigma²/2`` rounded,
  at least 1, or uniform integer ``[a, b]``) + UTF-8 length of the partition key (sensor key
  ``<fleet>-<i>``; hot key ``<fleet>-hot-<j>`` with probability ``share``; or one of 65,536 random
  keys). Shard: the even hash key range holding ``int(md5(key))``.
* **Producer.** Records over ``max_record_size`` are dropped (``record_too_large``). Due retries
  (``ready_time <= t``) older than ``record_ttl`` are dropped (``record_ttl``). A flush sends the due
  retries (queue order), then the new records (event-time order). With aggregation, each shard's
  user records are packed greedily, in that order, into aggregates of at most
  ``aggregation_max_size - 20`` bytes of ``size + 6`` each, plus 20 bytes; a user record too big
  to share goes alone, and an aggregate of one user record is sent as that plain record (its
  own size, no framing).
* **Write limits** per shard: one-second windows ``[w, w+1)`` (or a token bucket of depth
  ``burst`` seconds). Kinesis records of a flush are taken in order; the first one of a shard that
  does not fit rejects every later one of that shard in that flush. A user record shares the fate
  of its Kinesis record. ``put_attempts``/``records_throttled``/``records_accepted`` count user
  records.
* **Retries.** A rejected record makes ``attempts += 1``; at ``max_attempts`` it is dropped
  (``max_attempts``); else it waits ``min(max, base·2**(attempts-1))`` (exponential), ``base``
  (constant) or 0 (none), times ``U[0, 1)`` with full jitter, and joins the first later flush at
  or after that (a zero delay: the next flush).
* **Consumers.** One worker per consumer app and shard, first call at ``U[0, poll_interval)``. A call
  at ``t`` first skips (and counts as expired) unread records that arrived before
  ``t - retention``; it is throttled if the shard already served ``read_calls_per_s`` calls in the
  current one-second window or its read byte debt is at least ``read_bytes_per_s`` (the debt drops
  by ``read_bytes_per_s`` per window boundary passed, never below 0). Otherwise it returns whole
  Kinesis records (at most ``max_records`` and ``get_records_max_bytes``, at least one), user record
  ``i`` is processed at ``t + (i+1)·per_record``, and the worker is busy ``per_batch + n·per_record``
  (0 when ``n = 0``). The next call is ``busy + poll_interval`` later. At ``duration`` each worker's
  unread records older than the retention are counted as expired.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import random
from bisect import bisect_right

import numpy as np

from kinesim import aws
from kinesim.hashing import even_ranges
from kinesim.scenario import Scenario

from .fleet import FleetModel, KinesisRecord, UserRecord, _rng, tick
from .limits import EPS, ReadCapacity, WriteCapacity

_FLUSH, _POLL = 0, 1


class ProducerModel:
    def __init__(self, spec, fleet: FleetModel, model: "ReferenceModel", rng: random.Random):
        self.spec = spec
        self.fleet = fleet
        self.model = model
        self.rng = rng
        #: throttled records waiting for a retry, by the index of the flush they are due at; each
        #: list is in the order the records were queued (so a flush takes its due retries in queue
        #: order, as one list of every waiting record scanned in order would give them)
        self.pending: dict[int, list[UserRecord]] = {}
        self.dt = spec.max_buffered_time
        self.counts = dict.fromkeys(("records_produced", "put_attempts", "records_throttled", "records_accepted",
                                     "records_dropped", "max_attempts", "record_ttl", "record_too_large",
                                     "kinesis_records_sent", "kinesis_records_accepted"), 0)

    def _drop(self, reason: str) -> None:
        self.counts["records_dropped"] += 1
        self.counts[reason] += 1

    def delay(self, attempts: int) -> float:
        r = self.spec.retries
        if r.backoff == "none":
            d = 0.0
        elif r.backoff == "constant":
            d = r.base
        else:
            d = min(r.max, r.base * 2.0 ** min(attempts - 1, 1000))
        if r.jitter == "full":
            d *= self.rng.random()
        return d

    def due_flush(self, k: int, ready: float) -> int:
        """Index of the first flush after flush ``k`` at which a retry ready at ``ready`` is due
        (``ready_time <= t``, with the engine's nanosecond slack)."""
        j = max(k + 1, math.ceil((ready - EPS) / self.dt))
        while j - 1 > k and tick(j - 1, self.dt) >= ready - EPS:  # float rounding of the estimate
            j -= 1
        while tick(j, self.dt) < ready - EPS:
            j += 1
        return j

    @property
    def buffered(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def flush(self, now: float, k: int) -> None:
        """Flush ``k`` (at ``now``): the due retries, then the records measured since flush ``k - 1``."""
        c, limits = self.counts, self.model.limits
        new = self.fleet.take_until(now)
        c["records_produced"] += len(new)
        batch: list[UserRecord] = []
        for r in self.pending.pop(k, []):
            assert r.ready_time <= now + EPS
            if now - r.event_time > self.spec.record_ttl + EPS:
                self._drop("record_ttl")
            else:
                batch.append(r)
        for r in new:
            if r.size > limits.max_record_size:
                self._drop("record_too_large")
            else:
                batch.append(r)
        if not batch:
            return
        # Kinesis records: (shard, bytes, user records)
        if self.spec.aggregation:
            by_shard: dict[int, list[UserRecord]] = {}
            for r in batch:
                by_shard.setdefault(r.shard, []).append(r)
            capacity = self.spec.aggregation_max_size - aws.KPL_AGGREGATE_OVERHEAD
            krecords = []
            for shard in sorted(by_shard):
                group, used = [], 0
                for r in by_shard[shard]:
                    need = r.size + aws.KPL_RECORD_OVERHEAD
                    if group and used + need > capacity:
                        krecords.append((shard, used + aws.KPL_AGGREGATE_OVERHEAD, group))
                        group, used = [], 0
                    group.append(r)
                    used += need
                krecords.append((shard, used + aws.KPL_AGGREGATE_OVERHEAD, group))
            # an aggregate of one user record is sent as that plain record (no framing)
            krecords = [(shard, users[0].size, users) if len(users) == 1 else (shard, nbytes, users)
                        for shard, nbytes, users in krecords]
        else:
            krecords = [(r.shard, r.size, [r]) for r in batch]
        c["kinesis_records_sent"] += len(krecords)
        stream = self.model
        write, logs = stream.write, stream.logs
        for cap in write:
            cap.refresh(now)
        max_attempts = self.spec.retries.max_attempts
        blocked = set()
        attempts = accepted = accepted_k = throttled = 0
        for shard, nbytes, users in krecords:
            attempts += len(users)
            if shard not in blocked and write[shard].try_take(nbytes):
                accepted += len(users)
                accepted_k += 1
                logs[shard].append(KinesisRecord(now, nbytes, [u.event_time for u in users]))
                continue
            blocked.add(shard)
            throttled += len(users)
            for r in users:
                r.attempts += 1
                if r.attempts >= max_attempts:
                    self._drop("max_attempts")
                else:
                    r.ready_time = now + self.delay(r.attempts)
                    self.pending.setdefault(self.due_flush(k, r.ready_time), []).append(r)
        c["put_attempts"] += attempts
        c["records_accepted"] += accepted
        c["kinesis_records_accepted"] += accepted_k
        c["records_throttled"] += throttled


# ====================================================================== consumers
class WorkerModel:
    def __init__(self, app: "ConsumerModel", shard: int):
        self.app = app
        self.shard = shard
        self.pos = 0  # next Kinesis record of the shard's log to read (latest == trim_horizon at t=0)

    def _skip_expired(self, now: float) -> None:
        log = self.app.model.logs[self.shard]
        horizon = now - self.app.model.retention
        while self.pos < len(log) and log[self.pos].arrival < horizon:
            self.app.records_expired += len(log[self.pos].events)
            self.pos += 1

    def poll(self, now: float) -> float:
        """One GetRecords call and its processing; returns the busy time."""
        app, model = self.app, self.app.model
        spec = app.spec
        self._skip_expired(now)
        app.get_records_calls += 1
        reads = model.reads[self.shard]
        if not reads.allow(now):
            app.throttled_calls += 1
            return 0.0
        log = model.logs[self.shard]
        taken, nbytes = [], 0
        while self.pos < len(log) and len(taken) < spec.max_records:
            k = log[self.pos]
            if taken and nbytes + k.size > model.limits.get_records_max_bytes:
                break
            if not taken and k.size > model.limits.get_records_max_bytes:
                taken.append(k)  # one record larger than the byte limit comes alone
                nbytes += k.size
                self.pos += 1
                break
            taken.append(k)
            nbytes += k.size
            self.pos += 1
        reads.charge(nbytes)
        per_record = spec.processing_time.per_record
        i = 0
        for k in taken:
            for event in k.events:
                i += 1
                app.latencies.append(now + i * per_record - event)
        app.records_processed += i
        return spec.processing_time.per_batch + i * per_record if i else 0.0

    def backlog(self) -> int:
        return sum(len(k.events) for k in self.app.model.logs[self.shard][self.pos:])


class ConsumerModel:
    def __init__(self, spec, model: "ReferenceModel", rng: random.Random):
        self.spec = spec
        self.model = model
        self.rng = rng
        self.latencies: list[float] = []
        self.records_processed = 0
        self.records_expired = 0
        self.get_records_calls = 0
        self.throttled_calls = 0
        self.workers = [WorkerModel(self, s) for s in range(model.n_shards)]


# ====================================================================== the run
def _refuse_unmodelled(s: Scenario) -> None:
    """The reference models a provisioned stream of fixed shards, polling consumers and the
    arrival processes above; anything else would be silently wrong, so it is refused."""
    unmodelled = []
    if s.stream.mode != "provisioned":
        unmodelled.append(f"stream.mode {s.stream.mode}")
    for field in ("resharding", "autoscaling", "firehose", "emr"):
        if getattr(s, field, None):
            unmodelled.append(field)
    for f in s.fleets:
        if getattr(f, "outages", None):
            unmodelled.append(f"fleets[{f.name}].outages")
    for c in s.consumers:
        if c.type != "polling":
            unmodelled.append(f"consumers[{c.name}].type {c.type}")
    if unmodelled:
        raise NotImplementedError("the reference model does not model: " + ", ".join(unmodelled))


class ReferenceModel:
    """One run of one scenario, record by record. ``run()`` returns the headline figures."""

    def __init__(self, scenario: Scenario, arrivals: dict | None = None, phases: dict | None = None):
        _refuse_unmodelled(scenario)
        self.scenario = s = scenario
        self.phases = phases or {}
        self.limits = s.stream.limits
        self.retention = s.stream.retention
        self.n_shards = s.stream.shards
        self.starts = [start for start, _ in even_ranges(self.n_shards)]
        self._shard_cache: dict[str, int] = {}
        self.write = [WriteCapacity(self.limits) for _ in range(self.n_shards)]
        self.reads = [ReadCapacity(self.limits) for _ in range(self.n_shards)]
        self.logs: list[list[KinesisRecord]] = [[] for _ in range(self.n_shards)]
        horizon = s.duration + max(f.producer.max_buffered_time for f in s.fleets)
        arrivals = arrivals or {}
        self.fleets = [FleetModel(f, horizon, self.shard_of, _rng(s.seed, f"fleet/{f.name}"), arrivals.get(f.name))
                       for f in s.fleets]
        self.producers = [ProducerModel(f.producer, fm, self, _rng(s.seed, f"producer/{f.name}"))
                          for f, fm in zip(s.fleets, self.fleets)]
        self.consumers = [ConsumerModel(c, self, _rng(s.seed, f"consumer/{c.name}")) for c in s.consumers]
        self._queue: list = []
        self._seq = 0

    def shard_of(self, key: str) -> int:
        shard = self._shard_cache.get(key)
        if shard is None:
            hash_key = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)
            shard = self._shard_cache[key] = bisect_right(self.starts, hash_key) - 1
        return shard

    def _schedule(self, t: float, kind: int, what, order: int = 0) -> None:
        """Queue an event. At equal times flushes come first, in fleet order (the engine's
        per-window writer orders flushes by time, then fleet), then polls in scheduling order."""
        heapq.heappush(self._queue, (t, kind, order, self._seq, what))
        self._seq += 1

    def run(self) -> dict:
        s = self.scenario
        end = s.duration
        for i, p in enumerate(self.producers):
            self._schedule(tick(1, p.spec.max_buffered_time), _FLUSH, (p, 1, i), i)
        for app in self.consumers:
            given = self.phases.get(app.spec.name)
            for i, w in enumerate(app.workers):
                first = given[i] if given is not None else app.rng.random() * app.spec.poll_interval
                self._schedule(first, _POLL, w)
        while self._queue:
            t, kind, _, _, what = heapq.heappop(self._queue)
            if kind == _FLUSH:
                p, k, i = what
                if not t < end - EPS:
                    continue
                p.flush(t, k)
                nxt = tick(k + 1, p.spec.max_buffered_time)
                if nxt < end - EPS:
                    self._schedule(nxt, _FLUSH, (p, k + 1, i), i)
            else:
                if t >= end + 1e-6:  # the engine runs SimPy until duration + 1 µs
                    continue
                busy = what.poll(t)
                self._schedule(t + busy + what.app.spec.poll_interval, _POLL, what)
        for app in self.consumers:
            for w in app.workers:
                w._skip_expired(end)
        return self.summary()

    def summary(self) -> dict:
        def total(name):
            return sum(p.counts[name] for p in self.producers)

        attempts, throttled = total("put_attempts"), total("records_throttled")
        out = {
            "records_produced": total("records_produced"),
            "put_attempts": attempts,
            "records_throttled": throttled,
            "throttle_rate": throttled / attempts if attempts else 0.0,
            "records_accepted": total("records_accepted"),
            "records_dropped": total("records_dropped"),
        }
        for reason in ("max_attempts", "record_ttl", "record_too_large"):
            out[f"records_dropped_{reason}"] = total(reason)
        out["records_buffered"] = sum(p.buffered for p in self.producers)
        out["records_expired"] = sum(app.records_expired for app in self.consumers)
        for app in self.consumers:
            pre = f"consumers.{app.spec.name}."
            lat = np.asarray(app.latencies, dtype=np.float64)
            out[pre + "records_processed"] = app.records_processed
            for q, name in ((0.5, "latency_p50_s"), (0.99, "latency_p99_s")):
                out[pre + name] = float(np.quantile(lat, q, method="inverted_cdf")) if len(lat) else float("nan")
            out[pre + "records_expired"] = app.records_expired
            out[pre + "backlog_records"] = sum(w.backlog() for w in app.workers)
            out[pre + "read_throttled_calls"] = app.throttled_calls
            out[pre + "get_records_calls"] = app.get_records_calls
        out["read_throttled_calls"] = sum(app.throttled_calls for app in self.consumers)
        out["get_records_calls"] = sum(app.get_records_calls for app in self.consumers)
        out["kinesis_records_sent"] = total("kinesis_records_sent")
        out["kinesis_records_accepted"] = total("kinesis_records_accepted")
        out["shards_final"] = self.n_shards
        out["duration_s"] = self.scenario.duration
        return out


def run_reference(scenario: Scenario, arrivals: dict | None = None, phases: dict | None = None) -> dict:
    """Run ``scenario`` (a validated :class:`kinesim.Scenario`) record by record; the headline
    figures under the names of ``Results.summary_dict``.

    ``arrivals`` (optional) maps a fleet name to its records as ``(event_time_s, size_bytes,
    partition_key)`` in event-time order, replacing that fleet's random arrivals, sizes and keys;
    ``phases`` (optional) maps a consumer name to the first call time of its worker on each shard
    (in shard order), replacing the random phases. With both taken from an engine run (and no
    retry jitter) the run is fully determined, so the reference must reproduce the engine's
    counts exactly."""
    return ReferenceModel(scenario, arrivals, phases).run()
