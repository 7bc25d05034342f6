"""The scenario schema of ``expect:`` checks (pydantic), and the metric names they may use.

Part of :mod:`kinesim.scenario` (which imports :class:`Check`), kept apart so the schema file stays
small. :mod:`kinesim.expect` evaluates the checks on a run's :class:`~kinesim.results.Results`.

Two kinds of check, told apart by their comparators:

* a **summary** check compares one headline figure of ``summary.json`` (``throttle_rate``,
  ``consumers.dashboard.max_iterator_age_s``, ...) with ``between: [a, b]`` (inclusive),
  ``above`` / ``below`` (strict), ``equals`` (to 1e-9 relative) or ``approx`` with ``tolerance``
  (an absolute number, or a percentage of ``approx`` such as ``"5%"``; default ``"5%"``);
* a **trace** check reduces a per-period trace column over an optional time ``window: [from, to)``
  (durations from the start; a period counts when its start falls in the window) with
  ``mean_above``/``mean_below``, ``max_above``/``max_below``, ``min_above``/``min_below``.
  CloudWatch metrics (``IncomingRecords``, ...) come from ``metrics.parquet``, for one ``shard`` or
  the stream (summed over shards; ``GetRecords.IteratorAgeMilliseconds`` takes the maximum);
  with ``consumer: <name>`` (or ``metric: consumers.<name>.<column>``) they come from
  ``consumers.parquet``; with ``fleet: <name>`` (or the producer columns) from
  ``producers.parquet``. Values are per trace period, in the trace's units (``IncomingRecords``
  per period, ages in milliseconds), as in the Parquet files. Periods without a value (an age
  where no GetRecords call happened) are left out.

Several comparators in one check must all hold (so ``above`` must be less than ``below``, and
``mean_above`` less than ``mean_below``, ...: bounds no value can meet are refused). Names that are
not known at load time are errors naming the YAML path (``expect[2].metric``). Figures of optional
components (``cost_usd``, ``firehose_*``, ...: :data:`OPTIONAL_SUMMARY_METRICS`) are known by name;
a run without the component lacks them, and the check fails there.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Optional, Union

from pydantic import BeforeValidator, Field, model_validator

from kinesim.cost import SERVICES
from kinesim.errors import did_you_mean
from kinesim.schema_types import Model as _Model, Seconds

SUMMARY_COMPARATORS = ("between", "above", "below", "equals", "approx")
TRACE_COMPARATORS = ("mean_above", "mean_below", "max_above", "max_below", "min_above", "min_below")

# ------------------------------------------------------------------ known names
#: Stream-level figures of ``summary.json`` (README.md's "What a run gives you" and :mod:`kinesim.results`).
SUMMARY_METRICS = (
    "records_produced", "put_attempts", "records_throttled", "throttle_rate", "records_accepted",
    "records_dropped", "records_dropped_max_attempts", "records_dropped_record_ttl",
    "records_dropped_record_too_large", "records_buffered", "records_unflushed", "records_expired", "read_throttled_calls",
    "get_records_calls", "put_records_calls", "kinesis_records_sent", "kinesis_records_accepted",
    "shards_final", "duration_s",
)
#: Per-consumer figures: ``consumers.<name>.<figure>``.
CONSUMER_SUMMARY_METRICS = (
    "records_processed", "latency_p50_s", "latency_p99_s", "max_iterator_age_s", "records_expired",
    "backlog_records", "read_throttled_calls",
)
#: Figures that optional components add (cost, Firehose, S3, EMR, resharding): accepted at load
#: time, looked up in the run (``tests/test_expect.py`` checks the list against the bundled scenarios).
OPTIONAL_SUMMARY_METRICS = (
    "cost_usd", *(f"cost_usd.{service}" for service in SERVICES),
    "firehose_records_read", "firehose_records_delivered", "firehose_records_buffered", "firehose_records_failed",
    "firehose_records_processing_failed", "firehose_records_expired", "firehose_bytes_read",
    "firehose_bytes_delivered", "firehose_backlog_records", "firehose_get_records_calls",
    "firehose_read_throttled_calls", "firehose_lambda_invocations", "firehose_latency_p50_s",
    "firehose_latency_p99_s", "firehose_max_iterator_age_s",
    "s3_objects", "s3_bytes_stored", "s3_object_size_mean_bytes", "s3_objects_processing_failed",
    "emr_jobs", "emr_jobs_completed", "emr_objects_read", "emr_records_read", "emr_run_time_mean_s",
    "emr_freshness_p50_s", "emr_freshness_p99_s", "emr_freshness_newest_max_s",
    "shards_max", "reshard_calls", "reshard_calls_refused",
)
#: Prefixes of trace columns that optional components add: accepted at load time, looked up in the run.
OPTIONAL_PREFIXES = ("cost_usd", "firehose", "s3", "emr", "objects", "jobs", "resharding", "autoscaling",
                     "on_demand", "shards_", "reshard", "records_delivered", "delivery")
#: CloudWatch shard metrics (``metrics.parquet``); summed over shards except the ``max`` ones.
SHARD_TRACE = ("IncomingBytes", "IncomingRecords", "WriteProvisionedThroughputExceeded",
               "ReadProvisionedThroughputExceeded", "GetRecords.IteratorAgeMilliseconds", "OutgoingBytes",
               "OutgoingRecords")
#: Per consumer, shard and period (``consumers.parquet``).
CONSUMER_TRACE = ("records_processed", "backlog_records", "MillisBehindLatest", "GetRecords.IteratorAgeMilliseconds")
#: Per fleet and period (``producers.parquet``).
FLEET_TRACE = ("records_produced", "put_attempts", "records_throttled", "records_retried", "records_accepted",
               "records_dropped", "put_records_calls", "put_records_failed_calls", "kinesis_records_sent")
#: Columns aggregated over shards (or consumers, fleets) by their maximum instead of their sum.
MAX_AGGREGATED = ("GetRecords.IteratorAgeMilliseconds", "MillisBehindLatest")


def _shard_id(v):
    """``3`` or ``"shardId-000000000003"`` → ``"shardId-000000000003"``."""
    if isinstance(v, bool):
        raise ValueError(f"must be a shard id like shardId-000000000000 or an index, got {v!r}")
    if isinstance(v, int) and v >= 0:
        return f"shardId-{v:012d}"
    if isinstance(v, str) and re.fullmatch(r"shardId-\d{12}", v):
        return v
    raise ValueError(f"must be a shard id like shardId-000000000000 or an index, got {v!r}")


def _tolerance(v):
    """A number (absolute) or ``"5%"`` (relative) → ``(value, relative)``."""
    if isinstance(v, bool):
        raise ValueError(f"must be a number or a percentage like 5%, got {v!r}")
    if isinstance(v, (int, float)):
        value, relative = float(v), False
    elif isinstance(v, str) and re.fullmatch(r"\s*[0-9.]+(e-?\d+)?\s*%\s*", v):
        value, relative = float(v.strip().rstrip("%")) / 100.0, True
    else:
        raise ValueError(f"must be a number or a percentage like 5%, got {v!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be >= 0, got {v!r}")
    return f"{value * 100:g}%" if relative else value


Number = Annotated[float, Field(allow_inf_nan=False)]


class Check(_Model):
    """One ``expect:`` item; see the module docstring for what each key means."""

    metric: Annotated[str, Field(min_length=1, max_length=200)]
    shard: Optional[Annotated[str, BeforeValidator(_shard_id)]] = None
    consumer: Optional[str] = None
    fleet: Optional[str] = None
    window: Optional[Annotated[list[Seconds], Field(min_length=2, max_length=2)]] = None
    between: Optional[Annotated[list[Number], Field(min_length=2, max_length=2)]] = None
    above: Optional[Number] = None
    below: Optional[Number] = None
    equals: Optional[Number] = None
    approx: Optional[Number] = None
    tolerance: Optional[Annotated[Union[float, str], BeforeValidator(_tolerance)]] = None
    mean_above: Optional[Number] = None
    mean_below: Optional[Number] = None
    max_above: Optional[Number] = None
    max_below: Optional[Number] = None
    min_above: Optional[Number] = None
    min_below: Optional[Number] = None
    #: Why the check holds (shown in reports); free text.
    why: str = ""

    @model_validator(mode="after")
    def _consistent(self):
        used_summary = [c for c in SUMMARY_COMPARATORS if getattr(self, c) is not None]
        used_trace = [c for c in TRACE_COMPARATORS if getattr(self, c) is not None]
        if not used_summary and not used_trace:
            raise ValueError("needs a comparison: between, above, below, equals, approx (a summary figure) or "
                             "mean_/max_/min_ above/below (a trace over a window); got none")
        if used_summary and used_trace:
            raise ValueError(f"mixes summary comparisons ({', '.join(used_summary)}) with trace comparisons "
                             f"({', '.join(used_trace)}); use one kind per check, got both")
        if self.tolerance is not None and self.approx is None:
            raise ValueError("tolerance goes with approx, got no approx")
        if used_summary:
            scoped = [k for k in ("window", "shard", "consumer", "fleet") if getattr(self, k) is not None]
            if scoped:
                raise ValueError(f"{', '.join(scoped)} goes with a trace comparison (mean_below, max_above, ...), "
                                 f"got it with {used_summary[0]}")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between must be [low, high] with low <= high, got {self.between}")
        for prefix in ("", "mean_", "max_", "min_"):  # above and below are strict: no value passes a >= b
            low, high = getattr(self, f"{prefix}above"), getattr(self, f"{prefix}below")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"{prefix}above must be less than {prefix}below (no value can pass), "
                                 f"got {prefix}above: {_g(low)}, {prefix}below: {_g(high)}")
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ValueError(f"window must be [from, to] with from < to, got {self.window}")
        if self.shard is not None and self.fleet is not None:
            raise ValueError("shard goes with a stream or consumer metric, got it with fleet")
        if self.consumer is not None and self.fleet is not None:
            raise ValueError("give consumer or fleet, got both")
        return self

    # ------------------------------------------------------------ helpers
    @property
    def kind(self) -> str:
        """``"summary"`` or ``"trace"``."""
        return "trace" if any(getattr(self, c) is not None for c in TRACE_COMPARATORS) else "summary"

    def scope(self) -> tuple[str, str, Optional[str]]:
        """For a trace check: ``(trace, column, consumer or fleet)`` with the dotted
        ``consumers.<name>.<column>`` form resolved. ``trace`` is metrics, consumers or producers."""
        metric, consumer = self.metric, self.consumer
        if metric.startswith("consumers.") and metric.count(".") >= 2 and consumer is None:
            rest = metric[len("consumers."):]
            for column in CONSUMER_TRACE:
                if rest.endswith("." + column):
                    return "consumers", column, rest[: -len(column) - 1]
        if consumer is not None:
            return "consumers", metric, consumer
        if self.fleet is not None or (metric in FLEET_TRACE and metric not in SHARD_TRACE):
            return "producers", metric, self.fleet
        return "metrics", metric, None

    def describe(self) -> str:
        """The check as one short line: ``throttle_rate between 0.15 and 0.2``."""
        if self.kind == "summary":
            parts = []
            if self.between is not None:
                parts.append(f"between {_g(self.between[0])} and {_g(self.between[1])}")
            if self.above is not None:
                parts.append(f"> {_g(self.above)}")
            if self.below is not None:
                parts.append(f"< {_g(self.below)}")
            if self.equals is not None:
                parts.append(f"= {_g(self.equals)}")
            if self.approx is not None:
                tol = self.tolerance if self.tolerance is not None else "5%"
                parts.append(f"≈ {_g(self.approx)} ± {tol if isinstance(tol, str) else _g(tol)}")
            return f"{self.metric} {' and '.join(parts)}"
        trace, column, who = self.scope()
        name = column
        if trace == "consumers":
            name = f"consumers.{who}.{column}"
        elif trace == "producers" and who:
            name = f"fleets.{who}.{column}"
        if self.shard is not None:
            name += f" [{self.shard}]"
        parts = []
        for c in TRACE_COMPARATORS:
            v = getattr(self, c)
            if v is not None:
                how, side = c.split("_")
                parts.append(f"{how} {'>' if side == 'above' else '<'} {_g(v)}")
        span = "" if self.window is None else f" over {_dur(self.window[0])}–{_dur(self.window[1])}"
        return f"{name}{span}: {' and '.join(parts)}"


def _g(v: float) -> str:
    return f"{v:,.6g}" if abs(v) >= 1e4 else f"{v:.6g}"


def _dur(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and (s / size).is_integer():
            return f"{int(s / size)}{unit}"
    return f"{s:g}s"


# ------------------------------------------------------------------ load-time checks
def check_expect(scenario) -> None:
    """Cross-field checks of ``scenario.expect``: the metric, consumer and fleet names against the
    rest of the scenario. Raises :class:`kinesim.errors.ScenarioError` naming
    the YAML path of the first problem."""
    from kinesim.errors import ScenarioError

    consumers = [c.name for c in scenario.consumers]
    fleets = [f.name for f in scenario.fleets]
    for i, check in enumerate(scenario.expect or []):
        path = f"expect[{i}]"
        problem = _name_problem(check, consumers, fleets)
        if problem is not None:
            raise ScenarioError(f"{path}.{problem[0]}", problem[1])
        # Windows and shard ids are checked when the run is measured (a window past the end or a
        # shard that does not exist fails the check): ``--set duration=...`` or ``stream.shards``
        # must not make a lesson unrunnable.


def _name_problem(check: Check, consumers: list[str], fleets: list[str]) -> Optional[tuple[str, str]]:
    """``(key, message)`` when a name in ``check`` cannot exist in a run of this scenario."""
    metric = check.metric
    if check.kind == "summary":
        if metric in SUMMARY_METRICS or metric in OPTIONAL_SUMMARY_METRICS:
            return None
        if metric.startswith("consumers."):
            rest = metric[len("consumers."):]
            name, _, figure = rest.rpartition(".")
            if name not in consumers:
                return "metric", _unknown_consumer(name, consumers)
            if figure not in CONSUMER_SUMMARY_METRICS:
                return "metric", (f"unknown consumer figure {figure!r}{did_you_mean(figure, CONSUMER_SUMMARY_METRICS)}; "
                                  f"known: {', '.join(CONSUMER_SUMMARY_METRICS)}")
            return None
        if metric in SHARD_TRACE or metric in CONSUMER_TRACE or metric in FLEET_TRACE:
            return "metric", (f"{metric} is a trace column, not a summary figure: compare it over a window with "
                              "mean_below, max_above, ...")
        known = (list(SUMMARY_METRICS) + list(OPTIONAL_SUMMARY_METRICS)
                 + [f"consumers.{c}.{m}" for c in consumers for m in CONSUMER_SUMMARY_METRICS])
        return "metric", (f"unknown summary figure {metric!r}{did_you_mean(metric, known)}; known: "
                          f"{', '.join(SUMMARY_METRICS)}, consumers.<name>.<{'|'.join(CONSUMER_SUMMARY_METRICS)}>, "
                          "and with their components cost_usd[.<service>], firehose_*, s3_*, emr_*, shards_max, reshard_*")
    trace, column, who = check.scope()
    if trace == "consumers":
        if who not in consumers:
            return ("consumer" if check.consumer is not None else "metric"), _unknown_consumer(who, consumers)
        if column not in CONSUMER_TRACE:
            return "metric", (f"unknown consumer trace column {column!r}{did_you_mean(column, CONSUMER_TRACE)}; "
                              f"known: {', '.join(CONSUMER_TRACE)}")
        if check.fleet is not None:
            return "fleet", "goes with a producer column, not with a consumer"
        return None
    if trace == "producers":
        if who is not None and who not in fleets:
            return "fleet", f"no fleet named {who!r}{did_you_mean(who, fleets)}; fleets: {', '.join(fleets)}"
        if column not in FLEET_TRACE:
            return "metric", (f"unknown producer trace column {column!r}{did_you_mean(column, FLEET_TRACE)}; "
                              f"known: {', '.join(FLEET_TRACE)}")
        if check.shard is not None:
            return "shard", "producer columns are per fleet, not per shard"
        return None
    if column in SHARD_TRACE or column.startswith(OPTIONAL_PREFIXES):
        return None
    if column in CONSUMER_TRACE:
        return "metric", f"{column} is per consumer: add consumer: <name> (one of {', '.join(consumers) or 'none'})"
    known = SHARD_TRACE + CONSUMER_TRACE + FLEET_TRACE
    return "metric", (f"unknown trace column {column!r}{did_you_mean(column, known)}; known: stream "
                      f"{', '.join(SHARD_TRACE)}; per consumer {', '.join(CONSUMER_TRACE)}; per fleet "
                      f"{', '.join(FLEET_TRACE)}")


def _unknown_consumer(name: str, consumers: list[str]) -> str:
    if not consumers:
        return f"no consumer named {name!r}: the scenario has no consumers"
    return f"no consumer named {name!r}{did_you_mean(name, consumers)}; consumers: {', '.join(consumers)}"
