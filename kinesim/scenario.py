"""The scenario schema (pydantic): the only place where defaults live.

A scenario is loaded from YAML or a dict by :func:`load_scenario`; human units are converted to
seconds, bytes and events/s here (see :mod:`kinesim.units`). Unknown keys are errors, and every
error is a :class:`ScenarioError` whose message names the YAML path and what is allowed.
The format is documented in the README's "The scenario format" section; AWS defaults come from
:mod:`kinesim.aws`. Sizes are at most :data:`kinesim.units.MAX_BYTES` (int64 byte counts).
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, Discriminator, Field, Tag, model_serializer,
                      model_validator)

from kinesim import aws
from kinesim.scenario_expect import Check
from kinesim.scenario_lake import Emr, Firehose
from kinesim.scenario_scaling import Autoscaling, OnDemand, ReshardOp
from kinesim.schema_types import (Bytes, Model, PerSecond, PositiveBytes, PositiveBytesPerSecondLimit, PositiveSeconds,
                                  Seconds, no_bool, positive as _positive, refuse as _refuse)
from kinesim.units import format_bytes, parse_bytes

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


def _not_supported_yet(what: str):
    def check(v):
        if v is not None:
            raise ValueError(f"{what} is not supported yet")
        return v

    return AfterValidator(check)


# ---------------------------------------------------------------- stream
class Limits(Model):
    """Per-shard and per-request limits; defaults are AWS's documented values (:mod:`kinesim.aws`)."""

    write_bytes_per_s: PositiveBytesPerSecondLimit = aws.SHARD_WRITE_BYTES_PER_S
    write_records_per_s: Annotated[int, BeforeValidator(no_bool), Field(gt=0)] = aws.SHARD_WRITE_RECORDS_PER_S
    read_bytes_per_s: PositiveBytesPerSecondLimit = aws.SHARD_READ_BYTES_PER_S
    read_calls_per_s: Annotated[int, BeforeValidator(no_bool), Field(gt=0)] = aws.SHARD_READ_CALLS_PER_S
    get_records_max_bytes: PositiveBytes = aws.GET_RECORDS_MAX_BYTES
    put_records_max_bytes: PositiveBytes = aws.PUT_RECORDS_MAX_BYTES
    put_records_max_records: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.PUT_RECORDS_MAX_RECORDS)] = (
        aws.PUT_RECORDS_MAX_RECORDS
    )
    max_record_size: PositiveBytes = aws.MAX_RECORD_SIZE
    #: ``window``: per one-second window (AWS's "per second"); ``token_bucket``: refilled
    #: continuously, holding at most ``burst`` seconds of the rate (``burst`` may be given only
    #: with ``token_bucket``: :func:`kinesim.scenario_checks.check_limits`).
    write_model: Literal["window", "token_bucket"] = "window"
    burst: PositiveSeconds = 1.0

    @model_serializer(mode="wrap")
    def _without_unused_burst(self, handler):
        """A dump (``scenario.yaml``) leaves out the default ``burst`` under the ``window`` model, where
        it does not apply, so that it loads back (a ``burst`` given there stays, and is refused)."""
        data = handler(self)
        if self.write_model != "token_bucket" and "burst" not in self.model_fields_set and isinstance(data, dict):
            data.pop("burst", None)
        return data


class Stream(Model):
    name: str = Field(default="sensor-stream", pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    mode: Literal["provisioned", "on_demand"] = "provisioned"
    #: provisioned: open shards at the start; on_demand: 4 unless given (:mod:`kinesim.ondemand`)
    shards: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.MAX_SHARDS_PER_STREAM)] = 1
    retention: Annotated[Seconds, AfterValidator(lambda s: _check_retention(s))] = aws.RETENTION_DEFAULT_S
    limits: Limits = Limits()
    #: how long a SplitShard, MergeShards or UpdateShardCount keeps the stream UPDATING (kinesim's
    #: choice: AWS says "a few minutes" for UpdateShardCount and gives no figure for split or merge)
    updating_duration: PositiveSeconds = 60.0
    #: on-demand scaling settings (only with mode on_demand; defaults in :class:`OnDemand`)
    on_demand: Optional[OnDemand] = None

    @model_validator(mode="before")
    @classmethod
    def _on_demand_defaults(cls, data):
        if isinstance(data, dict) and data.get("mode") == "on_demand":
            data = {"shards": aws.ON_DEMAND_INITIAL_SHARDS, "on_demand": {}, **data}
            if data["on_demand"] is None:
                data["on_demand"] = {}
        return data

    @model_validator(mode="after")
    def _on_demand_only(self):
        if self.on_demand is not None and self.mode != "on_demand":
            raise ValueError(f"on_demand settings apply only with mode: on_demand, got mode: {self.mode}")
        return self


def _check_retention(s: float) -> float:
    if not aws.RETENTION_MIN_S <= s <= aws.RETENTION_MAX_S:
        raise ValueError(f"must be between 24h and 8760h, got {s / 3600:g}h")
    return s


# ---------------------------------------------------------------- fleets
def _by_type(scalar_tag: str, mapping_tag: str):
    """A union discriminator: plain values take ``scalar_tag``, mappings ``mapping_tag``."""

    def pick(v):
        return mapping_tag if isinstance(v, (dict, BaseModel)) else scalar_tag

    return pick


class OnOff(Model):
    on: PositiveSeconds
    off: Seconds


class Bursty(Model):
    """On/off arrivals: every sensor of the fleet emits only during the ``on`` part of each
    ``on + off`` cycle (a fleet-wide burst), at ``rate × (on + off) / on`` so that ``rate``
    stays the long-run average."""

    bursty: OnOff


def _arrival(v):
    if isinstance(v, str) and v in ("periodic", "poisson"):
        return v
    if isinstance(v, dict) and set(v) == {"bursty"}:
        return v
    if isinstance(v, dict) and set(v) == {"replay"}:
        raise ValueError("replay is not supported yet; use periodic, poisson or {bursty: {on, off}}")
    raise ValueError(f"must be periodic, poisson or {{bursty: {{on: 5s, off: 55s}}}}, got {v!r}")


def _at_least_1ms(v: float) -> float:
    if v < 0.001 - 1e-12:
        raise ValueError(f"must be at least 1ms (KPL RecordMaxBufferedTime counts whole milliseconds), got {v:g} s")
    return v


class ProfileStep(Model):
    at: Seconds
    factor: Annotated[float, Field(ge=0, allow_inf_nan=False)]


#: A lognormal size drawn this many standard deviations up (of the underlying normal) must fit in
#: ``LOGNORMAL_TAIL_MAX`` bytes (int64, with room to spare): a draw further up has probability
#: 6e-16, at most 6e-6 over a whole run's 1e10 records. Draws over max_record_size are dropped.
LOGNORMAL_TAIL_SIGMAS = 8
LOGNORMAL_TAIL_MAX = 2**62


class LognormalSize(Model):
    """Lognormal record sizes with the given mean (bytes) and sigma of the underlying normal.
    A draw is ``mean × exp(sigma × z - sigma²/2)`` (``z`` standard normal); the mean must keep the
    draw at ``z = 8`` within :data:`LOGNORMAL_TAIL_MAX` bytes, so sizes fit in 64-bit integers."""

    distribution: Literal["lognormal"]
    mean: PositiveBytes
    sigma: Annotated[float, Field(ge=0, le=5)]

    @model_validator(mode="after")
    def _tail_fits(self):
        top = LOGNORMAL_TAIL_MAX / math.exp(LOGNORMAL_TAIL_SIGMAS * self.sigma - self.sigma**2 / 2)
        if self.mean > top:
            raise ValueError(f"with sigma {self.sigma:g} the mean must be at most {format_bytes(top)} (a draw "
                             f"{LOGNORMAL_TAIL_SIGMAS} standard deviations up must fit in 64-bit integers), "
                             f"got {format_bytes(self.mean)}")
        return self


class UniformSize(Model):
    uniform: Annotated[list[PositiveBytes], Field(min_length=2, max_length=2)]


def _record_size(v):
    if isinstance(v, dict):
        if "distribution" in v or "uniform" in v:
            return v
        raise ValueError(
            "must be a size (512B), {distribution: lognormal, mean: 512B, sigma: 0.5} "
            f"or {{uniform: [100B, 2KiB]}}, got {v!r}"
        )
    return parse_bytes(v)


class HotKeys(Model):
    keys: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=10_000)] = 1
    share: Annotated[float, Field(ge=0, le=1)]


class HotKey(Model):
    """A share of the fleet's records use one of ``keys`` hot partition keys; the rest use the
    sensor's own key."""

    hot: HotKeys


def _partition_key(v):
    if v in ("sensor", "random"):
        return v
    if isinstance(v, dict) and set(v) == {"hot"}:
        return v
    raise ValueError(f"must be sensor, random or {{hot: {{keys: 1, share: 0.3}}}}, got {v!r}")


class Retries(Model):
    """Retry policy of throttled records. ``max_attempts`` counts the first attempt;
    the delay before attempt ``k+1`` is ``min(max, base × 2**(k-1))`` for ``exponential``,
    ``base`` for ``constant`` and 0 for ``none`` (the KPL's own behaviour: retry at the next flush);
    ``jitter: full`` draws the delay uniformly in ``[0, delay]``."""

    max_attempts: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=1000)] = 4
    backoff: Literal["exponential", "constant", "none"] = "exponential"
    base: Seconds = 0.1
    max: Seconds = 5.0
    jitter: Literal["full", "none"] = "full"


class Producer(Model):
    """KPL-like producer settings. Defaults: RecordMaxBufferedTime 100 ms, RecordTtl 30 s,
    AggregationMaxSize 51,200 bytes (KPL default_config.properties, see :mod:`kinesim.aws`)."""

    #: KPL RecordMaxBufferedTime is a whole number of milliseconds: at least 1 ms here
    max_buffered_time: Annotated[PositiveSeconds, AfterValidator(_at_least_1ms)] = aws.KPL_RECORD_MAX_BUFFERED_TIME_S
    aggregation: bool = False
    aggregation_max_size: Annotated[Bytes, Field(ge=1024, le=aws.MAX_RECORD_SIZE)] = aws.KPL_AGGREGATION_MAX_SIZE
    retries: Retries = Retries()
    record_ttl: PositiveSeconds = aws.KPL_RECORD_TTL_S


class Fleet(Model):
    name: Name
    sensors: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=1_000_000)]
    rate: Annotated[PerSecond, AfterValidator(_positive)]
    arrival: Annotated[
        Union[Annotated[Literal["periodic", "poisson"], Tag("name")], Annotated[Bursty, Tag("bursty")]],
        Discriminator(_by_type("name", "bursty")),
        BeforeValidator(_arrival),
    ] = "poisson"
    profile: list[ProfileStep] = []
    record_size: Annotated[
        Union[
            Annotated[Bytes, Tag("constant")],
            Annotated[LognormalSize, Tag("lognormal")],
            Annotated[UniformSize, Tag("uniform")],
        ],
        Discriminator(lambda v: "constant" if not isinstance(v, dict) else ("uniform" if "uniform" in v else "lognormal")),
        BeforeValidator(_record_size),
    ] = 512
    partition_key: Annotated[
        Union[Annotated[Literal["sensor", "random"], Tag("name")], Annotated[HotKey, Tag("hot")]],
        Discriminator(_by_type("name", "hot")),
        BeforeValidator(_partition_key),
    ] = "sensor"
    producer: Producer = Producer()
    outages: Annotated[object, _not_supported_yet("outages")] = None


# ---------------------------------------------------------------- consumers
#: Longest processing time per record or per GetRecords batch (s): a day.
MAX_PROCESSING_S = 86_400.0


class Processing(Model):
    """A consumer's processing time (s): ``per_record`` for each user record, ``per_batch`` for
    each served GetRecords call; each at most :data:`MAX_PROCESSING_S`."""

    per_record: Annotated[Seconds, Field(le=MAX_PROCESSING_S)] = 0.0
    per_batch: Annotated[Seconds, Field(le=MAX_PROCESSING_S)] = 0.0


def _processing(v):
    if isinstance(v, dict):
        return v
    return {"per_record": v, "per_batch": 0.0}


class Consumer(Model):
    """A polling (GetRecords, KCL-like) consumer application: one worker per shard."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)]
    type: Annotated[
        Literal["polling", "efo", "lambda"],
        AfterValidator(lambda t: _refuse(t != "polling", f"type {t} is not supported yet; use polling", t)),
    ] = "polling"
    poll_interval: PositiveSeconds = aws.KCL_IDLE_TIME_BETWEEN_READS_S
    max_records: Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=aws.GET_RECORDS_MAX_RECORDS)] = aws.KCL_MAX_RECORDS
    processing_time: Annotated[Processing, BeforeValidator(_processing)] = Processing()
    start: Literal["latest", "trim_horizon"] = "latest"
    #: KCL parentShardPollIntervalMillis: how often a worker waiting for a child shard checks that
    #: the parents are finished before it reads the child (:mod:`kinesim.consumer`)
    parent_shard_poll_interval: PositiveSeconds = aws.KCL_PARENT_SHARD_POLL_INTERVAL_S


# ---------------------------------------------------------------- trace
class Trace(Model):
    """What the run records. ``records``: ``all`` rows, a seeded ``sample`` at ``sample_rate``,
    ``none``, or ``auto`` (all while the expected count is at most ``auto_limit``, else a sample
    of at most ``auto_limit`` expected rows)."""

    records: Literal["all", "sample", "none", "auto"] = "auto"
    sample_rate: Annotated[float, Field(gt=0, le=1)] = 0.01
    auto_limit: Annotated[int, BeforeValidator(no_bool), Field(ge=1)] = 200_000
    period: PositiveSeconds = 1.0


def _utc(t: dt.datetime) -> dt.datetime:
    """A start time without a zone is taken as UTC (S3 keys and CloudWatch use UTC)."""
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


class Scenario(Model):
    """A whole scenario; see the README's "The scenario format" section and the bundled scenarios.
    All times in seconds, sizes in bytes."""

    name: Name
    description: str = ""
    duration: PositiveSeconds
    seed: Annotated[int, BeforeValidator(no_bool), Field(ge=0)] = 0
    start_time: Annotated[dt.datetime, AfterValidator(_utc)] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    stream: Stream = Stream()
    fleets: Annotated[list[Fleet], Field(min_length=1)]
    consumers: list[Consumer] = []
    resharding: list[ReshardOp] = []
    autoscaling: Optional[Autoscaling] = None
    firehose: Optional[Firehose] = None
    emr: Optional[Emr] = None
    expect: list[Check] = []  # checks for `kinesim check` (:mod:`kinesim.scenario_expect`)
    trace: Trace = Trace()
