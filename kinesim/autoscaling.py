"""An autoscaler: a CloudWatch-style alarm on a stream metric that calls UpdateShardCount.

Every minute (on the minute) the autoscaler reads the stream metric ``metric`` (``IncomingBytes``,
``IncomingRecords`` or ``WriteProvisionedThroughputExceeded``, summed over all shards from
:class:`kinesim.metrics.ShardMetrics`) for the last one-minute periods and expresses each as a
percentage of the open shards' write capacity: bytes against ``shards × write_bytes_per_s``,
records and throttled records against ``shards × write_records_per_s``, per second. Kinesis stream
metrics are one-minute CloudWatch datapoints
(https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html).

The alarm works like a CloudWatch alarm with ``EvaluationPeriods = DatapointsToAlarm =
scale_after_mins``: it fires when each of the last ``scale_after_mins`` periods is above
``scale_up.scale_threshold_pct`` (or below ``scale_down.scale_threshold_pct``). Only periods that
start after the last topology change count, so a datapoint is always measured against the capacity
it is compared with, and the alarm restarts after each scaling. While the stream is UPDATING the
autoscaler waits. ``cool_off_mins``: minutes after the last change (by any call) before that
direction may act; none applies before the first change.
Scale-up wins when both would fire.

The action is UpdateShardCount (:mod:`kinesim.resharding`) to the current count plus/minus
``scale_count`` or ``scale_pct`` percent (up: ``ceil(n × (1 + pct/100))``, down:
``ceil(n × (1 - pct/100))``), kept within ``[min_shards, max_shards]`` and within what
UpdateShardCount allows (half to double the open shards, as a careful autoscaler would ask). The
10-per-24-hours limit is not anticipated: such calls are refused with ``LimitExceededException``
and appear in ``events``, and the autoscaler tries again at the next evaluation. The setting names
follow awslabs' amazon-kinesis-scaling-utils (``scaleThresholdPct``, ``scaleAfterMins``,
``scalePct``, ``scaleCount``, ``coolOffMins``, ``minShards``, ``maxShards``;
https://github.com/awslabs/amazon-kinesis-scaling-utils), which scales on the same kind of
per-minute samples against ``open shards × per-shard limit``.
"""
from __future__ import annotations

import math

import numpy as np

from kinesim import aws

#: CloudWatch period of the Kinesis stream metrics, seconds.
PERIOD_S = 60.0


def window_rate(metrics, name: str, t0: float, t1: float, shards: slice | int = slice(None)) -> float:
    """Per-second mean of metric ``name`` over ``[t0, t1)`` (whole metrics periods), summed over
    ``shards`` (all by default)."""
    grid = metrics.grid
    p0 = max(0, int(round(t0 / grid.period)))
    p1 = min(grid.n, int(round(t1 / grid.period)))
    if p1 <= p0:
        return 0.0
    block = metrics.values[name][p0:p1, shards]
    return float(np.sum(block)) / (t1 - t0)


def every_minute(env, duration: float, evaluate):
    """SimPy process: call ``evaluate(now)`` at the end of every one-minute CloudWatch period."""
    k = 1
    while k * PERIOD_S <= duration + 1e-9:
        yield env.timeout(k * PERIOD_S - env.now)
        evaluate(env.now)
        k += 1


class Autoscaler:
    """The policy ``spec`` (:class:`kinesim.scenario_scaling.Autoscaling`) acting through ``plane``
    (:class:`kinesim.resharding.ControlPlane`)."""

    def __init__(self, spec, plane, metrics, duration: float):
        self.spec = spec
        self.plane = plane
        self.metrics = metrics
        self.duration = duration
        limits = plane.stream.limits
        per_shard = limits.write_bytes_per_s if spec.metric == "IncomingBytes" else limits.write_records_per_s
        self.per_shard = float(per_shard)  # capacity of one shard in the metric's unit, per second
        self._last_note = ""

    def process(self, env):
        return every_minute(env, self.duration, self.evaluate)

    def utilisation(self, t0: float, n: int) -> float:
        """The metric over the minute ``[t0, t0 + 60)`` as a percentage of ``n`` shards' capacity."""
        return 100.0 * window_rate(self.metrics, self.spec.metric, t0, t0 + PERIOD_S) / (n * self.per_shard)

    def evaluate(self, now: float) -> None:
        plane, spec = self.plane, self.spec
        if plane.stream.status != "ACTIVE":
            return
        n = len(plane.stream.open_shards())
        since = 0.0 if plane.last_change is None else plane.last_change
        for direction, cfg in (("up", spec.scale_up), ("down", spec.scale_down)):
            if cfg is None or plane.last_change is not None and now - since < cfg.cool_off_mins * 60.0 - 1e-9:
                continue
            starts = now - PERIOD_S * np.arange(cfg.scale_after_mins, 0, -1)
            if starts[0] < since - 1e-9:
                continue  # not enough datapoints since the capacity last changed
            values = [self.utilisation(float(t0), n) for t0 in starts]
            thr = cfg.scale_threshold_pct
            if not all(v > thr if direction == "up" else v < thr for v in values):
                continue
            target = self._target(n, cfg, direction)
            shown = ", ".join(f"{v:.0f}%" for v in values)
            why = (f"{spec.metric} at {shown} of {n} shards' capacity, {'above' if direction == 'up' else 'below'} "
                   f"{thr:g}% for {cfg.scale_after_mins} period(s)")
            if target == n:
                note = f"{why}: already at {'max' if direction == 'up' else 'min'}_shards ({n})"
                if note != self._last_note:
                    plane.log(now, "Autoscaling", note)
                self._last_note = note
                return
            self._last_note = ""
            plane.log(now, "Autoscaling", f"{why}: UpdateShardCount {n} → {target}")
            plane.update_shard_count(now, target, source="autoscaler")
            return

    def _target(self, n: int, cfg, direction: str) -> int:
        """The new shard count, within ``[min_shards, max_shards]`` and UpdateShardCount's bounds."""
        sign = 1 if direction == "up" else -1
        if cfg.scale_count is not None:
            target = n + sign * cfg.scale_count
        else:
            pct = 100.0 if cfg.scale_pct is None else cfg.scale_pct
            target = math.ceil(n * (1 + sign * pct / 100.0) - 1e-9)
        target = min(max(target, self.spec.min_shards), self.spec.max_shards)
        return int(min(max(target, math.ceil(n / 2), 1), 2 * n, aws.MAX_SHARDS_PER_STREAM))
