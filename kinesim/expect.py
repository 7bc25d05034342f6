"""Evaluate a scenario's ``expect:`` checks on the :class:`~kinesim.results.Results` of a run.

The schema of a check (what ``between``, ``mean_below``, ``window`` ... mean) is in
:mod:`kinesim.scenario_expect`. :func:`evaluate` returns one :class:`CheckResult` per check:
the value measured, whether the check passed, and a message when it could not be measured (a
figure absent from the run, a window without data). It never raises for a failed check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from kinesim.scenario_expect import MAX_AGGREGATED, TRACE_COMPARATORS, Check

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from kinesim.results import Results

#: ``approx`` without ``tolerance``: within 5% of the expected value.
DEFAULT_TOLERANCE = "5%"
#: ``equals`` on floats: equal to this relative precision (and 1e-12 absolute).
EQUALS_REL = 1e-9


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``measured`` is the summary figure, or for a trace check a dict
    of the reductions it uses (``{"mean": 512.0, "max": 1000.0}``); None when not measurable."""

    index: int
    check: Check
    passed: bool
    measured: object = None
    message: str = ""

    @property
    def text(self) -> str:
        return self.check.describe()

    def measured_text(self) -> str:
        """The measured value(s) as short text: ``0.1652`` or ``mean 512.3, max 1,000``."""
        if self.measured is None:
            return "–"
        if isinstance(self.measured, dict):
            return ", ".join(f"{k} {_fmt(v)}" for k, v in self.measured.items())
        return _fmt(self.measured)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


class _NotMeasured(Exception):
    """The check's value cannot be measured in this run; the message says why."""


def evaluate(results: "Results", checks: Optional[list[Check]] = None) -> list[CheckResult]:
    """Evaluate ``checks`` (default: the scenario's ``expect``) on ``results``."""
    checks = list(results.scenario.expect or []) if checks is None else checks
    return [evaluate_one(results, check, i) for i, check in enumerate(checks)]


def evaluate_one(results: "Results", check: Check, index: int = 0) -> CheckResult:
    try:
        if check.kind == "summary":
            value = summary_value(results, check.metric)
            return CheckResult(index, check, _summary_passes(check, value), value,
                               "" if not math.isnan(value) else "the figure is NaN (nothing to measure)")
        measured = trace_reductions(results, check)
        return CheckResult(index, check, _trace_passes(check, measured), measured)
    except _NotMeasured as exc:
        return CheckResult(index, check, False, None, str(exc))


# ------------------------------------------------------------------ summary checks
def summary_value(results: "Results", metric: str) -> float:
    """A headline figure of the run as a float (NaN stays NaN)."""
    summary = results.summary_dict
    if metric not in summary:
        raise _NotMeasured(f"{metric!r} is not in this run's summary (is the component that reports it in the "
                           "scenario?)")
    value = summary[metric]
    if value is None:
        return float("nan")
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise _NotMeasured(f"{metric!r} is not a number ({value!r})") from None


def _summary_passes(check: Check, v: float) -> bool:
    if math.isnan(v):
        return False
    ok = True
    if check.between is not None:
        ok &= check.between[0] <= v <= check.between[1]
    if check.above is not None:
        ok &= v > check.above
    if check.below is not None:
        ok &= v < check.below
    if check.equals is not None:
        ok &= math.isclose(v, check.equals, rel_tol=EQUALS_REL, abs_tol=1e-12)
    if check.approx is not None:
        ok &= abs(v - check.approx) <= tolerance_of(check)
    return bool(ok)


def tolerance_of(check: Check) -> float:
    """The absolute tolerance of an ``approx`` check."""
    tol = check.tolerance if check.tolerance is not None else DEFAULT_TOLERANCE
    if isinstance(tol, str):
        return float(tol.rstrip("%")) / 100.0 * abs(check.approx)
    return float(tol)


# ------------------------------------------------------------------ trace checks
def trace_series(results: "Results", check: Check) -> "pd.Series":
    """The per-period values a trace check reduces, indexed by period start (UTC timestamps):
    the check's column for its shard, consumer or fleet, aggregated over the rest (summed, or the
    maximum for ages), restricted to its window. Periods without a value are dropped."""
    import pandas as pd

    trace, column, who = check.scope()
    frame = getattr(results, trace, None)
    if frame is None or column not in frame.columns:
        raise _NotMeasured(f"no column {column!r} in the {trace} trace of this run")
    sel = np.ones(len(frame), dtype=bool)
    if who is not None:
        key = "consumer" if trace == "consumers" else "fleet"
        sel &= (frame[key] == who).to_numpy()
        if not sel.any():
            raise _NotMeasured(f"no rows for {key} {who!r} in the {trace} trace")
    if check.shard is not None:
        if "ShardId" not in frame.columns:
            raise _NotMeasured(f"the {trace} trace is not per shard")
        sel &= (frame["ShardId"].astype(str) == check.shard).to_numpy()
        if not sel.any():
            shards = sorted(frame["ShardId"].astype(str).unique())
            raise _NotMeasured(f"no data for shard {check.shard} (shards in the run: {', '.join(shards)})")
    part = frame.loc[sel, ["timestamp", column]]
    if check.window is not None:
        origin = pd.Timestamp(results.scenario.start_time).tz_convert("UTC")
        elapsed = (part["timestamp"] - origin).dt.total_seconds().to_numpy()
        part = part[(elapsed >= check.window[0] - 1e-9) & (elapsed < check.window[1] - 1e-9)]
    how = "max" if column in MAX_AGGREGATED else "sum"
    grouped = part.groupby("timestamp", sort=True)[column]
    series = grouped.max() if how == "max" else grouped.sum(min_count=1)
    return series.dropna().astype(float)


def trace_reductions(results: "Results", check: Check) -> dict[str, float]:
    """``{"mean": .., "max": .., "min": ..}``: the reductions the check compares (only those)."""
    series = trace_series(results, check)
    if series.empty:
        span = ""
        if check.window is not None:
            from kinesim.scenario_expect import _dur

            span = (f" in the window {_dur(check.window[0])}–{_dur(check.window[1])} (the run covers "
                    f"0s–{_dur(results.scenario.duration)})")
        raise _NotMeasured(f"no values of {check.scope()[1]}{span}")
    out: dict[str, float] = {}
    for c in TRACE_COMPARATORS:
        if getattr(check, c) is not None:
            how = c.split("_")[0]
            if how not in out:
                out[how] = float(getattr(series, how)())
    return out


def _trace_passes(check: Check, measured: dict[str, float]) -> bool:
    ok = True
    for c in TRACE_COMPARATORS:
        limit = getattr(check, c)
        if limit is None:
            continue
        how, side = c.split("_")
        v = measured[how]
        ok &= (v > limit) if side == "above" else (v < limit)
    return bool(ok)
