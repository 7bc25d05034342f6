"""Human-readable figures of a run: number formats and the summary tables the CLI prints
(and the HTML report reuses)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kinesim.units import format_bytes

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results


def fmt_int(v) -> str:
    """``7025 -> '7,025'``; non-integers fall back to :func:`fmt_number`."""
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return fmt_number(v)
    return f"{int(v):,}"


def fmt_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    return f"{v:,.4g}"


def fmt_rate(v) -> str:
    """A fraction as a percentage: ``0.0357 -> '3.57 %'``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v == 0:
        return "0 %"
    pct = v * 100
    if pct < 0.01:
        return "< 0.01 %"
    return f"{pct:.2f} %"


def fmt_seconds(v) -> str:
    """Seconds with a readable unit: ``0.574 -> '574 ms'``, ``690 -> '11.5 min'``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v == 0:
        return "0 s"
    a = abs(v)
    if a < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if a < 1:
        return f"{v * 1e3:.3g} ms"
    if a < 120:
        return f"{v:.3g} s"
    if a < 7200:
        return f"{v / 60:.3g} min"
    if a < 172800:
        return f"{v / 3600:.3g} h"
    return f"{v / 86400:.3g} d"


def fmt_auto(key: str, v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if key.endswith("_s"):
        return fmt_seconds(v)
    if key.endswith("_rate") or key == "throttle_rate":
        return fmt_rate(v)
    if key.startswith("cost_usd") and isinstance(v, (int, float)):
        return f"$ {v:,.4f}" if abs(v) < 100 else f"$ {v:,.2f}"
    if key.endswith("_bytes") and isinstance(v, (int, float)) and not math.isnan(v):
        return format_bytes(v)
    if isinstance(v, (int, float)) or hasattr(v, "dtype"):
        return fmt_number(v.item() if hasattr(v, "item") else v)
    return str(v)


_PREFIXES = {"firehose": "Firehose", "s3": "S3", "emr": "EMR"}


def label_for(key: str) -> str:
    """A summary key as a table label: ``cost_usd.kinesis -> 'cost, kinesis (USD)'``,
    ``firehose_latency_p50_s -> 'Firehose latency p50'`` (the value carries the unit)."""
    if key.startswith("cost_usd"):
        part = key[len("cost_usd"):].lstrip(".")
        return f"cost, {part} (USD)" if part else "cost (USD)"
    words = key.split("_")
    if words[-1] in ("s", "bytes"):
        words = words[:-1]
    if words and words[0] in _PREFIXES:
        words[0] = _PREFIXES[words[0]]
    return " ".join(words)


#: Headline rows of the summary table: key, label, formatter.
HEADLINE = (
    ("records_produced", "records produced", fmt_int),
    ("put_attempts", "put attempts (retries included)", fmt_int),
    ("records_throttled", "records throttled", fmt_int),
    ("throttle_rate", "throttle rate", fmt_rate),
    ("records_accepted", "records accepted", fmt_int),
    ("records_dropped", "records dropped", fmt_int),
    ("records_buffered", "records still buffered at the end", fmt_int),
    ("records_unflushed", "records measured after the last flush (not sent)", fmt_int),
    ("records_expired", "records expired by retention", fmt_int),
    ("put_records_calls", "PutRecords calls", fmt_int),
    ("kinesis_records_sent", "Kinesis records sent", fmt_int),
    ("kinesis_records_accepted", "Kinesis records accepted", fmt_int),
    ("get_records_calls", "GetRecords calls", fmt_int),
    ("read_throttled_calls", "GetRecords calls throttled", fmt_int),
    ("shards_final", "open shards at the end", fmt_int),
    ("duration_s", "simulated time", fmt_seconds),
)

#: Consumer rows of the summary: metric suffix, label, formatter.
CONSUMER_COLUMNS = (
    ("records_processed", "records processed", fmt_int),
    ("latency_p50_s", "latency p50 (event to processed)", fmt_seconds),
    ("latency_p99_s", "latency p99", fmt_seconds),
    ("max_iterator_age_s", "max iterator age", fmt_seconds),
    ("backlog_records", "backlog at the end (records)", fmt_int),
    ("records_expired", "records expired by retention", fmt_int),
    ("read_throttled_calls", "GetRecords calls throttled", fmt_int),
)


def split_summary(summary: dict) -> tuple[dict, dict[str, dict]]:
    """Split a summary dict into stream-level figures and ``{consumer: {metric: value}}``."""
    top: dict = {}
    consumers: dict[str, dict] = {}
    for key, value in summary.items():
        if key.startswith("consumers.") and key.count(".") >= 2:
            name, metric = key[len("consumers."):].rsplit(".", 1)
            consumers.setdefault(name, {})[metric] = value
        else:
            top[key] = value
    return top, consumers


def summary_tables(results: "Results") -> list:
    """Rich tables of the headline figures: the stream and producers, then one row per consumer."""
    from rich.table import Table

    top, consumers = split_summary(results.summary_dict)
    sc = results.scenario
    title = f"{sc.name}: {fmt_seconds(sc.duration)} simulated"
    if not math.isnan(getattr(results, "wall_time_s", float("nan"))):
        title += f" in {fmt_seconds(results.wall_time_s)}"
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    used = set()
    for key, label, fmt in HEADLINE:
        if key not in top:
            continue
        used.add(key)
        if key == "records_unflushed" and not top[key]:  # the usual case: shown only when some are
            continue
        text = fmt(top[key])
        if key == "records_dropped":
            reasons = [(k[len("records_dropped_"):], v) for k, v in top.items() if k.startswith("records_dropped_")]
            used.update(f"records_dropped_{r}" for r, _ in reasons)
            parts = [f"{r.replace('_', ' ')} {fmt_int(v)}" for r, v in reasons if v]
            if parts:
                text += f" ({', '.join(parts)})"
        table.add_row(label, text)
    for key, value in top.items():
        if key not in used:
            table.add_row(label_for(key), fmt_auto(key, value))
    tables = [table]
    if consumers:
        # One column per consumer: narrow enough for an 80-column terminal with a few consumers.
        ct = Table(title="consumers", title_justify="left", header_style="bold")
        ct.add_column("figure")
        for name in consumers:
            ct.add_column(name, justify="right")
        known = {k for k, _, _ in CONSUMER_COLUMNS}
        for key, label, fmt in CONSUMER_COLUMNS:
            if any(key in m for m in consumers.values()):
                ct.add_row(label, *[fmt(m.get(key)) for m in consumers.values()])
        extra: list[str] = []
        for metrics in consumers.values():
            extra += [m for m in metrics if m not in known and m not in extra]
        for key in extra:
            ct.add_row(label_for(key), *[fmt_auto(key, m.get(key)) for m in consumers.values()])
        tables.append(ct)
    return tables
