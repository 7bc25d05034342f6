"""The scenario schema of resharding, autoscaling and on-demand capacity (pydantic).

Part of :mod:`kinesim.scenario` (which imports these models), kept apart so that the schema file
stays small; like it, this is the only place where the defaults of these features live. Units:
seconds, bytes, counts. What the models mean is in :mod:`kinesim.resharding`,
:mod:`kinesim.autoscaling` and :mod:`kinesim.ondemand`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BeforeValidator, Field, model_validator

from kinesim import aws
from kinesim.schema_types import no_bool, Model as _Model, PositiveBytesPerSecondLimit, PositiveSeconds, Seconds


def _hash_key(v):
    """A hash key: an int or a decimal string (as the API writes it) in 0 .. 2**128 - 1."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"must be a hash key (a decimal integer 0 .. 2**128-1), got {v!r}")
    try:
        key = int(v)
    except ValueError:
        raise ValueError(f"must be a hash key (a decimal integer 0 .. 2**128-1), got {v!r}") from None
    if not 0 <= key < aws.HASH_KEY_SPACE:
        raise ValueError(f"must be between 0 and 2**128-1, got {key}")
    return key


ShardId = Annotated[str, Field(pattern=r"^shardId-\d{12}$")]
HashKey = Annotated[object, BeforeValidator(_hash_key)]

#: ``resharding[i].action`` → the AWS operation it calls.
ACTIONS = {"split": "SplitShard", "merge": "MergeShards", "update_shard_count": "UpdateShardCount"}


class ReshardOp(_Model):
    """One scheduled control-plane call, made at ``at`` (s from the start).

    * ``split``: SplitShard of ``shard`` at ``new_starting_hash_key`` (default: the middle of its
      range, ``(start + end + 1) // 2``);
    * ``merge``: MergeShards of ``shards: [ShardToMerge, AdjacentShardToMerge]``;
    * ``update_shard_count``: UpdateShardCount to ``target`` open shards (UNIFORM_SCALING).

    The stream is UPDATING for ``duration`` (default ``stream.updating_duration``), then the new
    shards open at the next whole second (:mod:`kinesim.resharding`)."""

    at: Annotated[Seconds, Field(ge=0)]
    action: Literal["split", "merge", "update_shard_count"]
    shard: Optional[ShardId] = None
    new_starting_hash_key: Optional[HashKey] = None
    shards: Optional[Annotated[list[ShardId], Field(min_length=2, max_length=2)]] = None
    target: Optional[Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=1_000_000)]] = None
    duration: Optional[PositiveSeconds] = None

    @model_validator(mode="after")
    def _fields_match_action(self):
        needs = {"split": "shard", "merge": "shards", "update_shard_count": "target"}[self.action]
        if getattr(self, needs) is None:
            example = {"shard": "shard: shardId-000000000001", "target": "target: 8",
                       "shards": "shards: [shardId-000000000000, shardId-000000000001]"}[needs]
            raise ValueError(f"action {self.action} needs '{needs}' (e.g. {example}), got no {needs}")
        allowed = {"split": {"shard", "new_starting_hash_key"}, "merge": {"shards"},
                   "update_shard_count": {"target"}}[self.action]
        for name in ("shard", "new_starting_hash_key", "shards", "target"):
            if name not in allowed and getattr(self, name) is not None:
                raise ValueError(f"'{name}' does not apply to action {self.action} (it takes {', '.join(sorted(allowed))}), "
                                 f"got {name}: {getattr(self, name)}")
        return self


class ScalingConfig(_Model):
    """One direction of an autoscaling policy; names after awslabs amazon-kinesis-scaling-utils
    (``ScalingConfig``: scaleThresholdPct, scaleAfterMins, scalePct, scaleCount, coolOffMins;
    https://github.com/awslabs/amazon-kinesis-scaling-utils).

    The alarm fires when the metric, as a percentage of the open shards' write capacity, is above
    (scale up) or below (scale down) ``scale_threshold_pct`` in each of the last
    ``scale_after_mins`` one-minute periods. The new count is the current one plus or minus
    ``scale_count`` shards, or ``scale_pct`` percent of it. ``cool_off_mins``: minutes after the
    previous scaling completed before this direction may act again."""

    scale_threshold_pct: Annotated[float, Field(ge=0, le=1000)]
    scale_after_mins: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=1440)] = 2
    scale_pct: Optional[Annotated[float, Field(gt=0, le=1000)]] = None
    scale_count: Optional[Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.MAX_SHARDS_PER_STREAM)]] = None
    cool_off_mins: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _one_amount(self):
        if self.scale_pct is not None and self.scale_count is not None:
            raise ValueError("give scale_pct or scale_count, got both")
        return self


class Autoscaling(_Model):
    """A CloudWatch-alarm autoscaler acting through UpdateShardCount (:mod:`kinesim.autoscaling`).

    ``metric`` is a stream metric summed over one-minute periods (CloudWatch's period for Kinesis
    stream metrics); ``min_shards``/``max_shards`` bound the count (scaling-utils minShards,
    maxShards). Give ``scale_up``, ``scale_down`` or both: a direction left out is not used. With
    neither, both take scaling-utils' sample ``conf/configuration.json``: up at 75% after 2 minutes
    by 100%, down at 25% after 2 minutes by 50% with a 2-minute cool-off."""

    metric: Literal["IncomingBytes", "IncomingRecords", "WriteProvisionedThroughputExceeded"] = "IncomingBytes"
    min_shards: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.MAX_SHARDS_PER_STREAM)] = 1
    max_shards: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.MAX_SHARDS_PER_STREAM)] = aws.MAX_SHARDS_PER_STREAM
    scale_up: Optional[ScalingConfig] = None
    scale_down: Optional[ScalingConfig] = None

    @model_validator(mode="before")
    @classmethod
    def _sample_policy(cls, data):
        if isinstance(data, dict) and "scale_up" not in data and "scale_down" not in data:
            data = {**data, "scale_up": {"scale_threshold_pct": 75, "scale_after_mins": 2, "scale_pct": 100},
                    "scale_down": {"scale_threshold_pct": 25, "scale_after_mins": 2, "scale_pct": 50, "cool_off_mins": 2}}
        return data

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_shards > self.max_shards:
            raise ValueError(f"min_shards must not exceed max_shards, got {self.min_shards} and {self.max_shards}")
        if self.scale_up is None and self.scale_down is None:
            raise ValueError("give at least one of scale_up and scale_down, got neither")
        if self.scale_up is not None and self.scale_down is not None and \
                self.scale_up.scale_threshold_pct <= self.scale_down.scale_threshold_pct:
            raise ValueError(f"scale_up.scale_threshold_pct must be above scale_down.scale_threshold_pct (between them "
                             f"both alarms would fire and the stream would scale up and down in turn), got "
                             f"{self.scale_up.scale_threshold_pct:g} and {self.scale_down.scale_threshold_pct:g}")
        return self


class OnDemand(_Model):
    """On-demand capacity (``stream.mode: on_demand``, :mod:`kinesim.ondemand`): a shard whose
    incoming traffic over a minute exceeds ``split_bytes_per_s`` (AWS: 500 KB/s) or
    ``split_records_per_s`` (kinesim's counterpart: half the record limit) is split at the middle
    of its range ``split_delay`` later (AWS: "within 15 minutes")."""

    split_bytes_per_s: PositiveBytesPerSecondLimit = aws.ON_DEMAND_SPLIT_BYTES_PER_S
    split_records_per_s: Annotated[int, BeforeValidator(no_bool), Field(ge=1)] = aws.SHARD_WRITE_RECORDS_PER_S // 2
    split_delay: PositiveSeconds = float(aws.ON_DEMAND_SPLIT_DELAY_S)
