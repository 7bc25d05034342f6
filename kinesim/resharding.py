"""Resharding: SplitShard, MergeShards and UpdateShardCount, with AWS's lineage, status and limits.

**Lineage.** Shard ids continue the stream's sequence (``shardId-000000000004``, ...). A split
closes its parent and opens two children (lower range first, ``ParentShardId`` = the parent); a
merge closes two adjacent shards and opens one child (``ParentShardId`` = ShardToMerge,
``AdjacentParentShardId`` = AdjacentShardToMerge). A closed shard takes no writes (the router
drops it at once) and stays readable until retention expires; its ``EndingSequenceNumber`` lies
above every record it holds and below every record of its children. Sources:
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SplitShard.html, API_MergeShards.html,
https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-after-resharding.html

**Status and timing.** A call sets the stream UPDATING; reads and writes go on; another split,
merge or UpdateShardCount meanwhile is refused with ``ResourceInUseException``. After the
operation's ``duration`` (``stream.updating_duration``, default 1 min: kinesim's choice, AWS says
"a few minutes" for UpdateShardCount and gives no figure for a split) the new shards open at the
**next whole second** ``t`` and the stream is ACTIVE again. Real resharding takes seconds to
minutes, so the one-second granularity is immaterial; it is needed because the writer
(:mod:`kinesim.writer`) routes each one-second write window ``[t, t+1)`` at once, at its first
flush (which is at or after ``t``). The topology change runs in a SimPy event of URGENT priority
at ``t`` (:class:`AtWholeSecond`), so it precedes every flush, retry and GetRecords call at ``t``:
every record of a window is routed by one topology, and the per-flush path
(:meth:`kinesim.producer.Producer.flush`) sees the same router for all flushes of the window.

**UpdateShardCount (UNIFORM_SCALING).** The result is ``target`` open shards with the even ranges
CreateStream would give (:func:`kinesim.hashing.even_ranges`; "Uniform scaling creates shards of
equal size", API_UpdateShardCount.html), made by pairwise splits and merges ("performs splits or
merges on individual shards. This can cause short-lived shards to be created"). The order is a
sweep over the target ranges from hash key 0: take the open shards in hash order; a shard that
reaches past the current target range's end is split there (its upper part goes back to the
front of the queue); pieces are merged, lower piece as ShardToMerge, until they fill the range.
This makes the fewest operations any uniform result allows (one split per new boundary, one merge
per removed boundary) and reproduces the one published observation of ids we found: 4 → 3
"splits shards 1 and 2, and merges them with shards 0 and 3", leaving shards 6, 9 and 10 open
(https://github.com/risingwavelabs/risingwave/issues/9961); the sweep gives exactly that: split
1 → 4, 5; merge 0+4 → 6; split 2 → 7, 8; merge 5+7 → 9; merge 8+3 → 10 (doing all splits first
would leave 8, 9, 10 open). Doubling splits every shard and halving merges neighbour pairs, as AWS
recommends. The shards of all the steps open when the operation completes (short-lived shards
open and close at the same instant). moto's tests list total shard counts they say were verified
against AWS (https://github.com/getmoto/moto, tests/test_kinesis/test_kinesis.py): the sweep
matches 2 → 4 (6), 4 → 5 (15) and 4 → 2 (6), but not 10 → 13 (37) or 5 → 3 (7), which no
uniform result allows (10 → 13 needs 12 splits and 9 merges: 43 shards); kinesim follows the
documented equal sizes.

**Limits** (API_UpdateShardCount.html): at most 10 accepted UpdateShardCount calls per rolling
24 h, a target between half and double the open shards and at most 10,000, all
``LimitExceededException`` (messages as kinesalite words them). A shard id that does not
exist: ``ResourceNotFoundException``; a closed shard, a hash key outside the shard, shards that
are not adjacent: ``InvalidArgumentException``. A refused call changes nothing and is recorded in
``events``.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Callable

import simpy
from simpy.core import URGENT

from kinesim import aws
from kinesim.errors import ScenarioError
from kinesim.hashing import even_ranges
from kinesim.scenario_scaling import ACTIONS
from kinesim.stream import Event, Shard, Stream


class AtWholeSecond(simpy.events.Event):
    """An event that fires after ``delay`` with URGENT priority: before every ordinary event
    (flushes, GetRecords calls) scheduled for the same time (SimPy's Timeout, with URGENT)."""

    def __init__(self, env: simpy.Environment, delay: float):
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, URGENT, delay)


def completion_time(now: float, duration: float) -> float:
    """The whole second (s) at which an operation requested at ``now`` taking ``duration`` ends:
    ``duration`` rounded up to the next whole second, and always after ``now``."""
    return float(max(math.ceil(now + duration - 1e-9), math.floor(now + 1e-9) + 1))


def short(shard_id: str) -> str:
    """``shardId-000000000012`` → ``12`` (for event details)."""
    return shard_id.rsplit("-", 1)[-1].lstrip("0") or "0"


def uniform_steps(stream: Stream, target: int, now: float) -> tuple[list[Shard], list[str]]:
    """Carry out UpdateShardCount's splits and merges (see the module docstring) on ``stream`` at
    ``now``; returns the shards made (in id order) and one line per step."""
    queue = deque(sorted(stream.open_shards(), key=lambda s: s.start_hash))
    made: list[Shard] = []
    steps: list[str] = []
    for _, end in even_ranges(target):
        acc = None
        while True:
            shard = queue.popleft()
            if shard.end_hash > end:
                low, high = stream.split_shard(shard, end + 1, now)
                made += [low, high]
                steps.append(f"split {short(shard.shard_id)} → {short(low.shard_id)}, {short(high.shard_id)}")
                queue.appendleft(high)
                shard = low
            if acc is None:
                acc = shard
            else:
                child = stream.merge_shards(acc, shard, now)
                made.append(child)
                steps.append(f"merge {short(acc.shard_id)} + {short(shard.shard_id)} → {short(child.shard_id)}")
                acc = child
            if acc.end_hash == end:
                break
    return made, steps


class ControlPlane:
    """The stream's control-plane API. ``run_at(t, fn)`` must call ``fn(t)`` at the whole second
    ``t`` before any write of that second (:meth:`in_simpy`, or a dry run's queue).

    Every method returns ``""`` when the call is accepted, else the AWS error name."""

    def __init__(self, stream: Stream, run_at: Callable[[float, Callable[[float], None]], None]):
        self.stream = stream
        self.run_at = run_at
        self.scalings: list[float] = []  # times of accepted UpdateShardCount calls
        self.last_change: float | None = None  # when the topology last changed (s), None: never
        self.active_at = 0.0  # when the pending operation completes (s), while UPDATING

    @classmethod
    def in_simpy(cls, env: simpy.Environment, stream: Stream) -> "ControlPlane":
        def run_at(t, fn):
            def process():
                yield AtWholeSecond(env, t - env.now)
                fn(t)

            env.process(process())

        return cls(stream, run_at)

    # ------------------------------------------------------------ API
    def split_shard(self, now: float, shard_id: str, new_starting_hash_key: int | None = None,
                    duration: float | None = None, source: str = "schedule") -> str:
        """SplitShard at ``new_starting_hash_key`` (default the middle of the shard's range)."""
        shard, error = self._find_open(now, "SplitShard", shard_id, source)
        if error:
            return error
        key = (shard.start_hash + shard.end_hash + 1) // 2 if new_starting_hash_key is None else int(new_starting_hash_key)
        if not shard.start_hash < key <= shard.end_hash:
            return self._refuse(now, "SplitShard", aws.INVALID_ARGUMENT, source,
                                f"NewStartingHashKey {key} is not inside {shard_id} "
                                f"({shard.start_hash + 1} .. {shard.end_hash})")
        detail = f"{shard_id} at hash key {key}"

        def apply(t):
            low, high = self.stream.split_shard(shard, key, t)
            return [low, high], f"split {short(shard_id)} → {short(low.shard_id)}, {short(high.shard_id)}"

        return self._begin(now, "SplitShard", detail, duration, apply, source)

    def merge_shards(self, now: float, shard_id: str, adjacent_id: str, duration: float | None = None,
                     source: str = "schedule") -> str:
        """MergeShards of ``shard_id`` (ShardToMerge) and ``adjacent_id`` (AdjacentShardToMerge)."""
        shard, error = self._find_open(now, "MergeShards", shard_id, source)
        if error:
            return error
        adjacent, error = self._find_open(now, "MergeShards", adjacent_id, source)
        if error:
            return error
        lo, hi = sorted((shard, adjacent), key=lambda s: s.start_hash)
        if lo is hi or lo.end_hash + 1 != hi.start_hash:
            return self._refuse(now, "MergeShards", aws.INVALID_ARGUMENT, source,
                                f"{shard_id} and {adjacent_id} are not adjacent (their hash key ranges "
                                "must join with no gap)")

        def apply(t):
            child = self.stream.merge_shards(shard, adjacent, t)
            return [child], f"merge {short(shard_id)} + {short(adjacent_id)} → {short(child.shard_id)}"

        return self._begin(now, "MergeShards", f"{shard_id} + {adjacent_id}", duration, apply, source)

    def update_shard_count(self, now: float, target: int, duration: float | None = None,
                           source: str = "schedule") -> str:
        """UpdateShardCount to ``target`` open shards, ScalingType UNIFORM_SCALING."""
        kind = "UpdateShardCount"
        if self.stream.status != "ACTIVE":
            return self._in_use(now, kind, source)
        n = len(self.stream.open_shards())
        counts = f"Current open shard count: {n}, Target shard count: {target}"
        if target > aws.MAX_SHARDS_PER_STREAM:
            return self._refuse(now, kind, aws.LIMIT_EXCEEDED, source,
                                f"Target shard count or number of open shards cannot be greater than "
                                f"{aws.MAX_SHARDS_PER_STREAM}. {counts}")
        if target > 2 * n:
            return self._refuse(now, kind, aws.LIMIT_EXCEEDED, source,
                                f"UpdateShardCount cannot scale up over double your current open shard count. {counts}")
        if target < n / 2:
            return self._refuse(now, kind, aws.LIMIT_EXCEEDED, source,
                                f"UpdateShardCount cannot scale down below half your current open shard count. {counts}")
        recent = [t for t in self.scalings if t > now - aws.UPDATE_SHARD_COUNT_WINDOW_S]
        if len(recent) >= aws.UPDATE_SHARD_COUNT_PER_24H:
            return self._refuse(now, kind, aws.LIMIT_EXCEEDED, source,
                                f"UpdateShardCount was called {len(recent)} times in the last 24 hours; at most "
                                f"{aws.UPDATE_SHARD_COUNT_PER_24H} are allowed (the next one at "
                                f"{recent[0] + aws.UPDATE_SHARD_COUNT_WINDOW_S:g}s)")
        self.scalings.append(now)

        def apply(t):
            made, steps = uniform_steps(self.stream, target, t)
            opened = ", ".join(short(s.shard_id) for s in sorted(self.stream.open_shards(), key=lambda s: s.start_hash))
            return made, f"{n} → {target} open shards: {'; '.join(steps) or 'no change'}; open: {opened}"

        return self._begin(now, kind, f"{n} → {target} shards (UNIFORM_SCALING)", duration, apply, source)

    def split_later(self, now: float, shard: Shard, at: float, reason: str) -> None:
        """An AWS-managed split (on-demand mode): no API call, no UPDATING status; ``shard`` is
        split at its middle at the whole second ``at`` if it is still open then."""
        self.log(now, "OnDemandSplit", f"{shard.shard_id}: {reason}; split at {at:g}s")

        def apply(t):
            if shard.closed_at is not None:
                return
            key = (shard.start_hash + shard.end_hash + 1) // 2
            low, high = self.stream.split_shard(shard, key, t)
            self.stream.resharded([low, high], t)
            self.last_change = t
            self.log(t, "ReshardComplete", f"OnDemandSplit: split {short(shard.shard_id)} → {short(low.shard_id)}, "
                                           f"{short(high.shard_id)}; {len(self.stream.open_shards())} open shards")

        self.run_at(at, apply)

    def request(self, now: float, op, duration: float | None = None, source: str = "schedule") -> str:
        """Make the call a scheduled :class:`kinesim.scenario_scaling.ReshardOp` describes."""
        d = op.duration if op.duration is not None else duration
        if op.action == "split":
            return self.split_shard(now, op.shard, op.new_starting_hash_key, d, source)
        if op.action == "merge":
            return self.merge_shards(now, op.shards[0], op.shards[1], d, source)
        return self.update_shard_count(now, op.target, d, source)

    # ------------------------------------------------------------ internals
    def log(self, now: float, kind: str, detail: str, error: str = "") -> None:
        self.stream.events.append(Event(now, kind, detail, error))

    def _refuse(self, now, kind, error, source, message) -> str:
        self.log(now, kind, f"refused ({source}): {message}", error)
        return error

    def _in_use(self, now, kind, source) -> str:
        return self._refuse(now, kind, aws.RESOURCE_IN_USE, source,
                            f"Stream {self.stream.spec.name} is UPDATING until {self.active_at:g}s, not ACTIVE")

    def _find_open(self, now, kind, shard_id, source) -> tuple[Shard | None, str]:
        if self.stream.status != "ACTIVE":
            return None, self._in_use(now, kind, source)
        shard = next((s for s in self.stream.shards if s.shard_id == shard_id), None)
        if shard is None:
            return None, self._refuse(now, kind, aws.RESOURCE_NOT_FOUND, source,
                                      f"Could not find shard {shard_id} in stream {self.stream.spec.name}")
        if shard.closed_at is not None:
            return None, self._refuse(now, kind, aws.INVALID_ARGUMENT, source,
                                      f"Shard {shard_id} has already been merged or split, and thus is not "
                                      "eligible for merging or splitting")
        return shard, ""

    def _begin(self, now, kind, detail, duration, apply, source) -> str:
        d = self.stream.spec.updating_duration if duration is None else duration
        t = completion_time(now, d)
        self.stream.status = "UPDATING"
        self.active_at = t
        self.log(now, kind, f"{detail} ({source}); UPDATING until {t:g}s")

        def finish(t):
            made, summary = apply(t)
            self.stream.resharded(made, t)
            self.stream.status = "ACTIVE"
            self.last_change = t
            self.log(t, "ReshardComplete", f"{kind}: {summary}; ACTIVE")

        self.run_at(t, finish)
        return ""


# ------------------------------------------------------------------ wiring, summary, validation
REQUESTS = tuple(ACTIONS.values())


def summary_figures(stream: Stream) -> dict:
    """Headline figures for ``summary.json``: ``shards_max`` (most shards open at once),
    ``reshard_calls`` (SplitShard, MergeShards and UpdateShardCount calls, scheduled or by the
    autoscaler) and ``reshard_calls_refused`` (those refused with an AWS error)."""
    changes = sorted([(s.opened_at, 1) for s in stream.shards] + [(s.closed_at, -1) for s in stream.shards
                                                                   if s.closed_at is not None])
    most = count = 0
    for i, (t, step) in enumerate(changes):
        count += step
        if i + 1 == len(changes) or changes[i + 1][0] != t:  # all changes at one instant applied
            most = max(most, count)
    calls = [e for e in stream.events if e.kind in REQUESTS]
    return {"shards_max": most, "reshard_calls": len(calls), "reshard_calls_refused": sum(1 for e in calls if e.error)}


def schedule_process(env: simpy.Environment, plane: ControlPlane, ops):
    """The SimPy process making the scheduled calls, in time order (ties in list order)."""
    for _, op in sorted(enumerate(ops), key=lambda p: (p[1].at, p[0])):
        yield env.timeout(max(0.0, op.at - env.now))
        plane.request(env.now, op)


def attach(sim) -> ControlPlane:
    """Wire scheduled resharding, the autoscaler and on-demand scaling into a
    :class:`kinesim.simulation.Simulation` (before it runs); returns the control plane."""
    s = sim.scenario
    plane = ControlPlane.in_simpy(sim.env, sim.stream)
    if s.resharding:
        sim.env.process(schedule_process(sim.env, plane, s.resharding))
    if s.autoscaling is not None:
        from kinesim.autoscaling import Autoscaler

        sim.env.process(Autoscaler(s.autoscaling, plane, sim.metrics, s.duration).process(sim.env))
    if s.stream.mode == "on_demand":
        from kinesim.ondemand import OnDemandScaler

        sim.env.process(OnDemandScaler(s.stream.on_demand, plane, sim.metrics, s.duration).process(sim.env))
    return plane


def check_scaling(s) -> None:
    """Scenario checks of resharding, autoscaling and on-demand mode (raises ScenarioError).

    Without an autoscaler the schedule is played on a bare stream first: a call that names a shard
    that will not exist, is closed, or is not adjacent is an error now; calls refused for limits or
    UPDATING are left to the run, where they show in ``events``."""
    on_demand = s.stream.mode == "on_demand"
    for name, given in (("resharding", bool(s.resharding)), ("autoscaling", s.autoscaling is not None)):
        if on_demand and given:
            raise ScenarioError(name, "SplitShard, MergeShards and UpdateShardCount are for provisioned streams; "
                                      "an on_demand stream reshards itself (see stream.on_demand)")
    if (on_demand or s.autoscaling is not None) and abs(60.0 / s.trace.period - round(60.0 / s.trace.period)) > 1e-9:
        raise ScenarioError("trace.period", f"must divide 60 s when the stream scales itself (one-minute "
                                            f"CloudWatch periods), got {s.trace.period:g}s")
    for i, op in enumerate(s.resharding):
        if op.at >= s.duration:
            raise ScenarioError(f"resharding[{i}].at", f"must be before the end of the run ({s.duration:g}s), got {op.at:g}s")
    if s.resharding and s.autoscaling is None:
        _dry_run(s)


def _dry_run(s) -> None:
    from kinesim.metrics import PeriodGrid, ShardMetrics

    stream = Stream(s.stream, ShardMetrics(PeriodGrid(1.0, 1.0), s.stream.shards))
    pending: list = []
    plane = ControlPlane(stream, lambda t, fn: heapq.heappush(pending, (t, len(pending), fn)))
    for i, op in sorted(enumerate(s.resharding), key=lambda p: (p[1].at, p[0])):
        while pending and pending[0][0] <= op.at:
            t, _, fn = heapq.heappop(pending)
            fn(t)
        error = plane.request(op.at, op)
        if error in (aws.INVALID_ARGUMENT, aws.RESOURCE_NOT_FOUND):
            field = {"split": "shard", "merge": "shards"}.get(op.action, "action")
            if "NewStartingHashKey" in stream.events[-1].detail:
                field = "new_starting_hash_key"
            why = stream.events[-1].detail.split(": ", 1)[1]
            earlier = [e for e in stream.events[:-1] if e.error]
            hint = f" (an earlier call was refused: {earlier[-1].kind} at {earlier[-1].time:g}s, {earlier[-1].error})" if earlier else ""
            raise ScenarioError(f"resharding[{i}].{field}", f"{ACTIONS[op.action]} at {op.at:g}s: {why}{hint}")
