"""Load and validate scenarios from YAML files, dicts and ``--set path=value`` overrides.

Every failure is raised as :class:`kinesim.errors.ScenarioError` with the YAML path.
"""
from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any, Mapping

import pydantic
import yaml

from kinesim.errors import ScenarioError, format_path, format_sci
from kinesim.scenario import Scenario
from kinesim.scenario_checks import check_limits, check_time_range, check_trace_size
from kinesim.scenario_expect import check_expect
from kinesim.units import format_duration
from kinesim.yaml_guard import TooManyValues, bounded_repr, check_expansion


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false are booleans, so ``{on: 5s, off: 55s}`` keeps its keys."""


_Loader.yaml_implicit_resolvers = {  # no implicit booleans but true/false; timestamps stay strings
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

def _construct_document(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    check_expansion(node)
    return yaml.SafeLoader.construct_document(loader, node)


_Loader.construct_document = _construct_document


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str, source: str = "<scenario>") -> Any:
    """Parse YAML text; a syntax error becomes a one-line ScenarioError naming the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except TooManyValues as exc:
        raise ScenarioError("", f"{source}: {exc.message}") from None
    except RecursionError:
        raise ScenarioError("", f"{source}: invalid YAML: lists or mappings nested too deeply") from None
    except ValueError as exc:  # a value Python cannot build, e.g. an integer of more than 4,300 digits
        problem = str(exc).split("; use sys.")[0]
        raise ScenarioError("", f"{source}: invalid YAML value: {problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError("", f"{source}: invalid YAML{where}: {problem}") from None


def load_scenario(source: str | Path | Mapping | Scenario, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Return a validated :class:`Scenario` from a YAML path, a YAML string, a dict or a Scenario.

    ``overrides`` maps dotted paths to YAML text (``{"stream.shards": "4"}``, as ``--set``) or to
    values (``{"stream.shards": 4}``, numpy scalars too), applied before validation. Raises :class:`ScenarioError` (one line: path and what is allowed).
    """
    if isinstance(source, Scenario):
        data = source.model_dump(mode="json", exclude_none=True)
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        text_source = str(source)
        path = Path(text_source)
        looks_like_path = "\n" not in text_source and (path.suffix in (".yaml", ".yml") or path.exists() or ":" not in text_source)
        if looks_like_path:
            if path.is_dir():
                raise ScenarioError("", f"{path}: is a directory, not a scenario file")
            if not path.is_file():
                raise ScenarioError("", f"{path}: no such scenario file")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ScenarioError("", f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
            except OSError as exc:
                raise ScenarioError("", f"{path}: cannot read it ({exc.strerror})") from None
            data = read_yaml(text, str(path))
        else:
            data = read_yaml(text_source)
    if not isinstance(data, dict):
        raise ScenarioError("", f"a scenario must be a mapping of keys (name, duration, ...), got {type(data).__name__}")
    if overrides is not None and not isinstance(overrides, Mapping):
        shown = repr(overrides)
        raise ScenarioError("overrides", f"must map dotted paths to values, like {{'stream.shards': 4}}, "
                            f"got {shown if len(shown) <= 60 else shown[:57] + '...'}")
    for key, value in (overrides or {}).items():
        apply_override(data, key, value)
    try:
        scenario = Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _to_scenario_error(exc, data) from None
    check_cross_fields(scenario)
    return scenario


def apply_override(data: dict, path: str, value) -> None:
    """Set ``data[path] = yaml(value)`` for a dotted path with ``[i]`` list indices; a value that
    is not a string (a number, a list, a numpy scalar) is used as it is."""
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*", path):
        raise ScenarioError(path, "cannot read this path; write it like stream.shards or fleets[0].rate")
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise ScenarioError(path, f"no list item {key} here")
        elif not isinstance(node, dict):
            raise ScenarioError(path, f"{format_path(tuple(parts[:i]))} is not a mapping")
        if last:
            node[key] = read_yaml(value, f"--set {path}") if isinstance(value, str) else _plain(value)
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def _plain(value):
    """A Python value for the schema: numpy scalars (``np.int64(4)`` from ``np.arange``) become
    Python numbers, inside lists and mappings too."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", None) == 0 else value


def _to_scenario_error(exc: pydantic.ValidationError, data: Any) -> ScenarioError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = _real_path(first["loc"], data)
    message = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key; allowed keys: {', '.join(allowed)}" if allowed else "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "string_pattern_mismatch":
        pattern = first["ctx"]["pattern"]
        hint = " (lowercase letters, digits, '-')" if pattern.startswith("^[a-z0-9]") else ""
        message = f"must match {pattern}{hint}, got {_short(first['input'])}"
    elif "got" not in message and "not supported yet" not in message:
        message = f"{message}, got {_short(first.get('input'))}"
    if first["type"] not in ("value_error", "assertion_error") and message[:1].isupper():
        message = message[0].lower() + message[1:]  # pydantic's own ("Input should be ..."), lower-case as ours
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return ScenarioError(format_path(loc), message)


#: Longest error message shown (a huge bad value is cut, not printed whole).
MAX_MESSAGE = 300


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (without building a huge repr first)."""
    if isinstance(value, (dict, list)) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value)} items"
    text = bounded_repr(value, limit + 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_UNION_TAGS = {
    "arrival": {"name", "bursty"},
    "record_size": {"constant", "lognormal", "uniform"},
    "partition_key": {"name", "hot"},
    "processing_time": set(),
}


def _real_path(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union tags from ``loc`` by walking the input data."""
    out: list = []
    node = data
    previous_was_union = False
    for part in loc:
        if previous_was_union and part in _UNION_TAGS.get(out[-1], ()):
            previous_was_union = False
            continue
        previous_was_union = isinstance(part, str) and part in _UNION_TAGS
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_tag(part):
            out.append(part)  # a missing key: name it
            node = None
        elif node is None and isinstance(part, str) and not _is_tag(part):
            out.append(part)
    return tuple(out)


def _is_tag(part: str) -> bool:
    return any(c in part for c in "[(")


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any):
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


#: Most user records per simulated second that a scenario may offer in total (all fleets at their
#: peak): a second of records is generated at once, so this bounds the memory of a run (~1 GB).
MAX_RECORDS_PER_S = 2_000_000


def _check_load(s: Scenario) -> None:
    """Refuse fleets whose peak offered load would not fit in memory (one second at a time)."""
    total = 0.0
    for i, fleet in enumerate(s.fleets):
        peak = fleet.sensors * fleet.rate * max([1.0, *(step.factor for step in fleet.profile)])
        if not isinstance(fleet.arrival, str):
            on, off = fleet.arrival.bursty.on, fleet.arrival.bursty.off
            peak *= (on + off) / on
        total += peak
        if total > MAX_RECORDS_PER_S:
            raise ScenarioError(f"fleets[{i}].rate", f"the fleets offer up to {_count(total)} records/s at their peak "
                                f"(sensors x rate x profile factor); kinesim simulates at most {MAX_RECORDS_PER_S:,}/s")


#: Most trace periods (``duration / trace.period``) a run may record: each one is a row of metrics.
MAX_TRACE_PERIODS = 5_000_000

#: Most user records a whole run may simulate (all fleets over ``duration``): a day of 100,000
#: sensors at 1 Hz (8.6e9) fits; a century of a small fleet, which would run for weeks, does not.
MAX_RUN_RECORDS = 10_000_000_000
#: Largest number of simulation steps (write windows and GetRecords calls) in a run: about an hour
#: of wall time at tens of microseconds a step (a year of 100 readers polling each second is 3e9).
MAX_RUN_STEPS = 200_000_000


def expected_run_records(s: Scenario) -> float:
    """Expected user records of the whole run: sensors x rate x profile factor, integrated over
    ``duration`` and summed over the fleets (bursts keep ``rate`` as the long-run average)."""
    total = 0.0
    for fleet in s.fleets:
        seconds = 0.0  # factor-weighted seconds: the factor is 1 before the first step
        t, factor = 0.0, 1.0
        for step in fleet.profile:
            at = min(max(step.at, t), s.duration)
            seconds += factor * (at - t)
            t, factor = at, step.factor
        seconds += factor * (s.duration - t)
        total += fleet.sensors * fleet.rate * seconds
    return total


def _check_run_size(s: Scenario) -> None:
    """Refuse runs that would simulate more than :data:`MAX_RUN_RECORDS` user records, or take
    more than :data:`MAX_RUN_STEPS` steps (write windows and GetRecords calls, whatever the rates)."""
    records = expected_run_records(s)
    if records > MAX_RUN_RECORDS:
        raise ScenarioError("duration", f"the run would simulate {format_sci(records)} records; at most "
                            f"{format_sci(MAX_RUN_RECORDS)} (shorten duration or lower the fleets' rates)")
    check_trace_size(s, records)
    windows = sum(s.duration / max(f.producer.max_buffered_time, 1.0) for f in s.fleets)
    calls = sum(s.duration / c.poll_interval for c in s.consumers) * s.stream.shards
    if windows + calls > MAX_RUN_STEPS:
        raise ScenarioError("duration", f"the run would take about {format_sci(windows + calls)} steps (one-second "
                            f"write windows and GetRecords calls, one per consumer, shard and poll_interval); at "
                            f"most {format_sci(MAX_RUN_STEPS)} (shorten duration or raise consumers' poll_interval)")


def _count(x: float) -> str:
    """A count for messages: ``1,234,567`` up to 1e15, then ``1.23e300`` (never hundreds of digits)."""
    return f"{x:,.0f}" if abs(x) < 1e15 else format_sci(x)


def check_cross_fields(s: Scenario) -> None:
    """Checks across fields: unique names, profiles in time order, sizes within the limits."""
    seen: set[str] = set()
    for i, fleet in enumerate(s.fleets):
        if fleet.name in seen:
            raise ScenarioError(f"fleets[{i}].name", f"must be unique, {fleet.name!r} is used twice")
        seen.add(fleet.name)
        ats = [step.at for step in fleet.profile]
        if ats != sorted(ats) or len(set(ats)) != len(ats):
            raise ScenarioError(f"fleets[{i}].profile", "steps must be in increasing order of 'at'")
        size = fleet.record_size
        if hasattr(size, "uniform") and size.uniform[0] > size.uniform[1]:
            raise ScenarioError(f"fleets[{i}].record_size.uniform", "must be [low, high] with low <= high")
        producer, retries = fleet.producer, fleet.producer.retries
        if producer.max_buffered_time >= s.duration:
            raise ScenarioError(f"fleets[{i}].producer.max_buffered_time", f"must be shorter than duration "
                                f"({format_duration(s.duration)}): the producer sends what it measured every "
                                f"max_buffered_time, so no record would be sent; got {format_duration(producer.max_buffered_time)}")
        if producer.record_ttl < producer.max_buffered_time:
            raise ScenarioError(f"fleets[{i}].producer.record_ttl", "must be at least producer.max_buffered_time "
                                f"({format_duration(producer.max_buffered_time)}), got {format_duration(producer.record_ttl)}")
        if retries.base > retries.max:
            raise ScenarioError(f"fleets[{i}].producer.retries.base", f"must not exceed retries.max "
                                f"({format_duration(retries.max)}), got {format_duration(retries.base)}")
    names: set[str] = set()
    for i, consumer in enumerate(s.consumers):
        if consumer.name in names:
            raise ScenarioError(f"consumers[{i}].name", f"must be unique, {consumer.name!r} is used twice")
        names.add(consumer.name)
    check_limits(s)
    check_time_range(s)
    _check_load(s)
    _check_run_size(s)
    periods = s.duration / s.trace.period
    if periods > MAX_TRACE_PERIODS:
        # name the field the user chose: trace.period if given, else duration (the period is the default)
        path = "trace.period" if "period" in s.trace.model_fields_set else "duration"
        raise ScenarioError(path, f"duration / trace.period gives {_count(periods)} periods; at most {MAX_TRACE_PERIODS:,}: "
                            "raise trace.period or shorten duration")
    _check_lake(s)
    from kinesim.resharding import check_scaling

    check_scaling(s)
    check_expect(s)


def _check_lake(s: Scenario) -> None:
    """Checks of the Firehose → S3 → EMR path that involve several fields."""
    from kinesim import aws

    fh = s.firehose
    if fh is not None and fh.format_conversion == "parquet":
        if fh.buffer.size < aws.FIREHOSE_CONVERSION_BUFFER_MIN:
            raise ScenarioError("firehose.buffer.size", "must be at least 64 MiB with format_conversion: parquet "
                                f"(as AWS requires), got {fh.buffer.size / aws.MiB:g} MiB")
        if fh.compression.format == "zip":
            raise ScenarioError("firehose.compression.format", "Parquet output is compressed with gzip, snappy or none, got zip")
    if fh is not None and fh.s3.write_files and fh.format_conversion == "none" and fh.compression.format == "snappy":
        raise ScenarioError("firehose.compression.format", "real files (s3.write_files) are written with gzip, zip or none "
                            "(or as Parquet with format_conversion: parquet), got snappy")
    if s.emr is not None:
        if fh is None:
            raise ScenarioError("emr", "needs a firehose: EMR jobs read the objects Firehose delivers to S3")
        if s.emr.instance_price is None:
            from kinesim.cost import load_prices

            known = sorted(load_prices()["emr"]["instances"])
            if s.emr.instance_type not in known:
                raise ScenarioError("emr.instance_type", f"no price for {s.emr.instance_type!r} in kinesim/prices.yaml "
                                    f"(known: {', '.join(known)}); give emr.instance_price: {{ec2_per_hour, emr_per_hour}}")
