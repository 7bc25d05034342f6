"""Cross-field checks of a scenario's stream limits and time range (called by
:func:`kinesim.loader.check_cross_fields`); each raises :class:`~kinesim.errors.ScenarioError`
naming the field the user set."""
from __future__ import annotations

import datetime

from kinesim.errors import ScenarioError
from kinesim.scenario import Scenario
from kinesim.units import format_bytes, format_duration


#: Most rows the ``records`` trace may keep: each costs about 400 bytes at the run's peak (its
#: columns, then its DataFrame and Parquet file), so 10 million need about 4 GB.
MAX_TRACED_RECORDS = 10_000_000

#: Timestamps of a run (``start_time`` to ``start_time + duration``) must fall in these years: the
#: traces use pandas' nanosecond timestamps (years 1677 to 2262).
YEARS = (1970, 2200)


def check_time_range(s: Scenario) -> None:
    """``start_time`` in :data:`YEARS`, and the run ending in them too."""
    lo, hi = YEARS
    if not lo <= s.start_time.year < hi:
        raise ScenarioError("start_time", f"must be in the years {lo} to {hi - 1} (UTC), got {s.start_time.isoformat()}")
    try:
        end_year = (s.start_time + datetime.timedelta(seconds=s.duration)).year
    except OverflowError:  # past year 9999
        end_year = hi
    if end_year >= hi:
        raise ScenarioError("duration", f"the run would end after {hi - 1} (start_time {s.start_time.year} + "
                            f"{format_duration(s.duration)}); shorten duration or start earlier")


def check_limits(s: Scenario) -> None:
    """Refuse limits that contradict each other (AWS: a record is at most 1 MiB, a PutRecords request
    5 MiB, a GetRecords response 10 MiB, so a request or a response always holds one record of the
    maximum size; API_PutRecords.html, API_GetRecords.html), and ``burst`` outside the token bucket."""
    limits = s.stream.limits
    given = limits.model_fields_set
    for name, what in (("put_records_max_bytes", "a PutRecords request"), ("get_records_max_bytes", "a GetRecords response")):
        cap = getattr(limits, name)
        if cap < limits.max_record_size:
            # name the value the user set (the other is AWS's default)
            if "max_record_size" in given and name not in given:
                raise ScenarioError("stream.limits.max_record_size", f"must not exceed {name} ({format_bytes(cap)}): "
                                    f"{what} must hold one record of the maximum size, got {format_bytes(limits.max_record_size)}")
            raise ScenarioError(f"stream.limits.{name}", f"must be at least max_record_size ({format_bytes(limits.max_record_size)}): "
                                f"{what} must hold one record of the maximum size, got {format_bytes(cap)}")
    if limits.write_model == "token_bucket" and limits.burst * limits.write_records_per_s < 1:
        raise ScenarioError("stream.limits.burst", f"the token bucket must hold at least one record: burst x "
                            f"write_records_per_s >= 1, so at least {format_duration(1 / limits.write_records_per_s)}, "
                            f"got {format_duration(limits.burst)}")
    if "burst" in given and limits.write_model != "token_bucket":
        raise ScenarioError("stream.limits.burst", "applies only with write_model: token_bucket (the bucket's depth), "
                            f"got write_model: {limits.write_model}; remove burst or set write_model: token_bucket")
    for i, fleet in enumerate(s.fleets):
        producer = fleet.producer
        if producer.aggregation and producer.aggregation_max_size > limits.max_record_size:
            raise ScenarioError(f"fleets[{i}].producer.aggregation_max_size", "must not exceed stream.limits.max_record_size "
                                f"({format_bytes(limits.max_record_size)}) with aggregation: an aggregate is one Kinesis "
                                f"record, got {format_bytes(producer.aggregation_max_size)}")
        size = fleet.record_size
        smallest = size if isinstance(size, int) else size.uniform[0] if hasattr(size, "uniform") else None
        if smallest is not None and smallest >= limits.max_record_size:
            raise ScenarioError(f"fleets[{i}].record_size", f"every record would be dropped as too large: its data "
                                f"({format_bytes(smallest)}{' at least' if not isinstance(size, int) else ''}) plus "
                                f"its partition key exceed stream.limits.max_record_size ({format_bytes(limits.max_record_size)})")


def check_trace_size(s: Scenario, records: float) -> None:
    """Refuse a ``records`` trace of more than :data:`MAX_TRACED_RECORDS` expected rows
    (``records``: the run's expected user records): ``trace.records`` ``all``, ``sample`` at
    ``sample_rate``, or ``auto`` (all up to ``auto_limit``, then a sample of about ``auto_limit``)."""
    t = s.trace
    kept = {"all": records, "sample": records * t.sample_rate, "auto": min(records, t.auto_limit)}.get(t.records, 0.0)
    if kept > MAX_TRACED_RECORDS:
        gib = kept * 400 / 2**30
        where = f"{t.records} would keep" if t.records != "auto" else f"auto with auto_limit {t.auto_limit:,} would keep"
        fix = ("lower trace.auto_limit" if t.records == "auto" else
               f"use auto, or sample with sample_rate at most {MAX_TRACED_RECORDS / records:.3g}")
        raise ScenarioError("trace.auto_limit" if t.records == "auto" else "trace.records",
                            f"{where} about {kept:,.0f} records in the records trace (about {gib:,.0f} GiB of "
                            f"memory); at most {MAX_TRACED_RECORDS:,}: {fix}")
