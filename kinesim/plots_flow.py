"""Plots of the readers and writers of a run: iterator age and latency per consumer, and the
producers' attempts, throttling, retries and drops (helpers and conventions: :mod:`kinesim.plots`)."""
from __future__ import annotations

import math
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter
from matplotlib.figure import Figure
from typing import TYPE_CHECKING

from kinesim.plots import MAX_FLEETS, _Timeline, _binned, _empty_note, _fmt_seconds, _new_figure, _palette, _thousands

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results


def plot_iterator_age(results: "Results") -> Figure:
    """``GetRecords.IteratorAgeMilliseconds`` per consumer over time, in seconds: the maximum over
    shards (and over the periods of a display bin) of each shard's latest reported age, held
    until that shard's next GetRecords call. Periods before any call are left out."""
    sc = results.scenario
    tl = _Timeline(results)
    col = "GetRecords.IteratorAgeMilliseconds"
    frame = results.consumers
    fig = _new_figure(11, 5)
    ax = fig.subplots()
    names = [c.name for c in sc.consumers]
    colors = dict(zip(names, _palette(len(names))))
    series = {}
    if len(frame) and col in frame:
        # The age a shard last reported holds until its next GetRecords call (at most a few poll
        # intervals later): without this, periods in which only the caught-up shards polled would
        # show a lagging consumer as caught up.
        hold = {c.name: max(1, int(math.ceil(c.poll_interval / tl.period)) + 1) for c in sc.consumers}
        parts = []
        for name, part in frame.groupby(frame["consumer"].astype(str), sort=False):
            age = part[col].groupby(part["ShardId"].astype(str), sort=False).ffill(limit=hold.get(name, 1))
            parts.append(part[["timestamp", "consumer"]].assign(**{col: age}))
        held = pd.concat(parts) if parts else frame
        series = _binned(tl, held, "consumer", [col], how="max")
    x = tl.centers()
    drawn = False
    for name in names:
        if name not in series:
            continue
        y = series[name][col] / 1000.0
        ok = ~np.isnan(y)
        if not ok.any():
            continue
        drawn = True
        marker = "." if ok.sum() <= 300 else None
        ax.plot(x[ok], y[ok], color=colors[name], lw=1.3, marker=marker, ms=4,
                label=f"{name} (max {_fmt_seconds(float(np.nanmax(y)))})")
    if drawn:
        ax.legend(loc="upper left", fontsize=9)
    else:
        _empty_note(ax, "no GetRecords calls returned records")
    tl.style_axis(ax)
    ax.set_ylim(0, max(ax.get_ylim()[1], 1e-3) * (1.15 if drawn else 1))
    ax.set_xlabel(tl.xlabel)
    ax.set_ylabel("iterator age (s), max over shards")
    ax.set_title(f"{sc.name}: GetRecords.IteratorAgeMilliseconds per consumer{tl.note()}", fontsize=12)
    return fig


# ------------------------------------------------------------------ latency.png
#: Display bins per decade of the latency histogram (the trace has 500 per decade).
LATENCY_BINS_PER_DECADE = 25


def plot_latency(results: "Results") -> Figure:
    """Distribution of event-to-processed latency per consumer (share of the consumer's records
    per log-spaced bin, log x axis), with the summary's p50 (dashed) and p99 (dotted) marked."""
    sc = results.scenario
    lat = results.latency
    fig = _new_figure(11, 5.5)
    ax = fig.subplots()
    names = [c.name for c in sc.consumers]
    colors = dict(zip(names, _palette(len(names))))
    summary = results.summary_dict
    drawn = False
    lo_all, hi_all = np.inf, 0.0
    if len(lat):
        lo_all = float(lat["bin_start_s"].min())
        hi_all = float(lat["bin_end_s"].max())
    if len(lat) and hi_all > lo_all > 0:
        d0 = math.floor(math.log10(lo_all) * LATENCY_BINS_PER_DECADE) / LATENCY_BINS_PER_DECADE
        d1 = math.ceil(math.log10(hi_all) * LATENCY_BINS_PER_DECADE) / LATENCY_BINS_PER_DECADE
        nb = max(1, int(round((d1 - d0) * LATENCY_BINS_PER_DECADE)))
        edges = 10.0 ** (d0 + np.arange(nb + 1) / LATENCY_BINS_PER_DECADE)
        for name in names:
            part = lat[lat["consumer"].astype(str) == name]
            total = float(part["records"].sum())
            if total <= 0:
                continue
            centre = np.sqrt(part["bin_start_s"].to_numpy(float) * part["bin_end_s"].to_numpy(float))
            idx = np.clip(np.searchsorted(edges, centre, side="right") - 1, 0, nb - 1)
            counts = np.bincount(idx, weights=part["records"].to_numpy(float), minlength=nb)
            share = counts / total * 100.0
            color = colors[name]
            p50 = summary.get(f"consumers.{name}.latency_p50_s")
            p99 = summary.get(f"consumers.{name}.latency_p99_s")
            ax.stairs(share, edges, color=color, lw=1.5, fill=False,
                      label=f"{name}: {int(total):,} records, p50 {_fmt_seconds(p50)}, p99 {_fmt_seconds(p99)}")
            ax.stairs(share, edges, color=color, alpha=0.15, fill=True)
            for q, style in ((p50, "--"), (p99, ":")):
                if q is not None and not (isinstance(q, float) and math.isnan(q)) and q > 0:
                    ax.axvline(q, color=color, ls=style, lw=1.5)
            drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_seconds(v)))
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="k", ls="--", label="p50"), Line2D([], [], color="k", ls=":", label="p99")]
        ax.legend(handles=handles, loc="upper left", fontsize=9)
        ax.set_ylim(bottom=0)
    else:
        _empty_note(ax, "no records processed")
        ax.set_xticks([])
        ax.set_yticks([])
    ax.grid(True, alpha=0.3, which="both")
    ax.set_xlabel("latency, event time to processed time (log scale)")
    ax.set_ylabel(f"% of the consumer's records per bin\n({LATENCY_BINS_PER_DECADE} bins per decade)")
    ax.set_title(f"{sc.name}: end-to-end latency per consumer", fontsize=12)
    return fig


# ------------------------------------------------------------------ producers.png
PRODUCER_PANELS = (
    ("put_attempts", "put attempts/s"),
    ("records_throttled", "throttled records/s"),
    ("records_retried", "retried records/s"),
    ("records_dropped", "dropped records/s"),
)


def plot_producers(results: "Results") -> Figure:
    """Per fleet and second: record-level put attempts (with records produced, dotted), records
    throttled, retried and dropped. More than :data:`MAX_FLEETS` fleets: the smallest are summed."""
    sc = results.scenario
    tl = _Timeline(results)
    frame = results.producers
    cols = [c for c, _ in PRODUCER_PANELS if c in frame] + (["records_produced"] if "records_produced" in frame else [])
    series = _binned(tl, frame, "fleet", cols) if len(frame) else {}
    fleets = [f.name for f in sc.fleets if f.name in series]
    if len(fleets) > MAX_FLEETS:
        size = {f: series[f][cols[0]].sum() for f in fleets}
        big = set(sorted(fleets, key=size.get, reverse=True)[: MAX_FLEETS - 1])
        rest = [f for f in fleets if f not in big]
        shown = [(f, series[f]) for f in fleets if f in big]
        shown.append((f"{len(rest)} other fleets (sum)", {c: np.sum([series[f][c] for f in rest], axis=0) for c in cols}))
    else:
        shown = [(f, series[f]) for f in fleets]
    colors = _palette(len(shown))
    fig = _new_figure(12, 9)
    axes = fig.subplots(len(PRODUCER_PANELS), 1, sharex=True)
    for ax, (col, label) in zip(axes, PRODUCER_PANELS):
        any_value = False
        for (name, data), color in zip(shown, colors):
            if col not in data:
                continue
            y = data[col]
            any_value |= bool(np.nansum(y) > 0)
            tl.line(ax, y, color=color, lw=1.3, label=name)
            if col == "put_attempts" and "records_produced" in data:
                tl.line(ax, data["records_produced"], color=color, lw=1.0, ls=":")
        if not any_value:
            _empty_note(ax, "none")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        tl.style_axis(ax)
        _thousands(ax)
    axes[-1].set_xlabel(tl.xlabel)
    handles = [Line2D([], [], color=c, lw=1.3, label=n) for (n, _), c in zip(shown, colors)]
    if "records_produced" in cols:
        handles.append(Line2D([], [], color="0.3", lw=1.0, ls=":", label="records produced/s\n(attempts panel)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    s = results.summary_dict
    fig.suptitle(f"{sc.name}: producers per fleet, {s.get('put_attempts', 0):,} attempts, "
                 f"{s.get('records_throttled', 0):,} throttled, {s.get('records_dropped', 0):,} dropped{tl.note()}",
                 fontsize=12)
    return fig
