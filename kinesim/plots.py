"""PNG plots of a run's traces (matplotlib, Agg canvas, no pyplot).

:func:`save_plots` writes into a folder:

* ``shards.png``: per-shard incoming records/s and bytes/s against the shard write limits, and the
  records rejected with ``WriteProvisionedThroughputExceeded``;
* ``iterator_age.png``: ``GetRecords.IteratorAgeMilliseconds`` per consumer (skipped without consumers);
* ``latency.png``: event-to-processed latency distribution per consumer with p50/p99 (skipped
  without consumers);
* ``producers.png``: put attempts, throttled, retried and dropped records per second per fleet.

Every figure is a :class:`matplotlib.figure.Figure` with its own Agg canvas, so nothing touches
pyplot's global state and figures are freed when the function returns. Long runs are resampled
to at most :data:`MAX_POINTS` points per line (means of rates, maxima of ages).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results

#: Points per line at most; longer runs are averaged over bins of whole periods.
MAX_POINTS = 2000
#: Shards drawn one by one at most; the others are drawn as one "mean of the other shards" line.
MAX_SHARDS = 16
#: Fleets drawn one by one at most in ``producers.png``; the others are summed.
MAX_FLEETS = 10
DPI = 110
OTHER_COLOR = "0.45"
THROTTLE_COLOR = "tab:red"


def save_plots(results: "Results", folder: Path) -> list[Path]:
    """Write the PNG plots of ``results`` into ``folder`` (created if missing).

    Returns the paths written, in a stable order: ``shards.png``, then ``iterator_age.png`` and
    ``latency.png`` when the scenario has consumers, then ``producers.png``, then ``firehose.png``
    and ``emr.png`` for the Firehose → S3 → EMR path (:mod:`kinesim.plots_lake`), then
    ``open_shards.png`` when the stream reshards (:mod:`kinesim.plots_shards`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [("shards.png", plot_shards)]
    if len(results.scenario.consumers):
        jobs += [("iterator_age.png", plot_iterator_age), ("latency.png", plot_latency)]
    jobs.append(("producers.png", plot_producers))
    written = []
    for name, make in jobs:
        fig = make(results)
        path = folder / name
        fig.savefig(path, dpi=DPI)
        fig.clear()
        written.append(path)
    from kinesim.plots_lake import save_lake_plots

    written += save_lake_plots(results, folder)
    from kinesim.plots_shards import save_shard_plots

    written += save_shard_plots(results, folder)
    return written


# ------------------------------------------------------------------ helpers
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


class _Timeline:
    """Maps the period timestamps of a run to binned elapsed simulated time in a readable unit."""

    def __init__(self, results: "Results"):
        sc = results.scenario
        self.period = float(sc.trace.period)
        self.duration = float(sc.duration)
        self.origin = self._origin(results)
        self.n = max(1, int(math.ceil(self.duration / self.period - 1e-9)))
        self.factor = max(1, int(math.ceil(self.n / MAX_POINTS)))
        self.bins = int(math.ceil(self.n / self.factor))
        unit, scale = _time_unit(self.duration)
        self.unit, self.scale = unit, scale

    @staticmethod
    def _origin(results: "Results") -> pd.Timestamp | None:
        for frame in (results.metrics, results.producers, results.consumers):
            if len(frame) and "timestamp" in frame:
                return frame["timestamp"].min()
        return None

    def period_index(self, timestamps: pd.Series) -> np.ndarray:
        """Period index of each timestamp (0 for the first period)."""
        if self.origin is None or len(timestamps) == 0:
            return np.zeros(len(timestamps), dtype=np.int64)
        seconds = (timestamps - self.origin).dt.total_seconds().to_numpy()
        return np.clip(np.rint(seconds / self.period).astype(np.int64), 0, self.n - 1)

    def bin_index(self, timestamps: pd.Series) -> np.ndarray:
        """Display bin of each timestamp (``period_index // factor``)."""
        return self.period_index(timestamps) // self.factor

    def edges(self) -> np.ndarray:
        """Display bin edges (``bins + 1``), in :attr:`unit`; the last edge is the end of the run."""
        e = np.arange(self.bins + 1) * self.factor * self.period
        e[-1] = self.n * self.period
        return e / self.scale

    def centers(self) -> np.ndarray:
        """Middle of every display bin, in :attr:`unit`."""
        e = self.edges()
        return (e[:-1] + e[1:]) / 2

    def line(self, ax, y: np.ndarray, **kw):
        """Draw a per-bin series: steps over each bin for short runs, a line through bin centres
        for long ones."""
        if self.bins <= 200:
            return ax.stairs(y, self.edges(), baseline=None, **kw)
        return ax.plot(self.centers(), y, **kw)

    def periods_per_bin(self) -> np.ndarray:
        """How many periods fall in each display bin (the last one may be partial)."""
        counts = np.full(self.bins, self.factor, dtype=float)
        counts[-1] = self.n - self.factor * (self.bins - 1)
        return counts

    @property
    def xlabel(self) -> str:
        return f"simulated time ({self.unit})"

    def note(self) -> str:
        """A subtitle fragment saying how the data was resampled, or ''."""
        if self.factor == 1:
            return ""
        return f" (each point: {_fmt_seconds(self.factor * self.period)} bin)"

    def style_axis(self, ax) -> None:
        ax.set_xlim(0, max(self.duration / self.scale, 1e-9))
        ax.grid(True, alpha=0.3)


def _time_unit(duration: float) -> tuple[str, float]:
    if duration <= 300:
        return "s", 1.0
    if duration <= 5 * 3600:
        return "min", 60.0
    if duration <= 5 * 86400:
        return "h", 3600.0
    return "d", 86400.0


def _fmt_seconds(s: float) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "n/a"
    if s == 0:
        return "0 s"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def _binned(tl: _Timeline, frame: pd.DataFrame, key: str, columns: list[str], how: str = "rate") -> dict:
    """``{key value: {column: array over display bins}}``.

    ``how="rate"``: per-second rate, the sum in a bin divided by the bin's simulated seconds;
    ``how="max"``: the maximum in a bin (NaN when the bin has no value).
    """
    out: dict = {}
    if len(frame) == 0:
        return out
    b = tl.bin_index(frame["timestamp"])
    keys = frame[key].astype(str).to_numpy()
    work = pd.DataFrame({"bin": b, "key": keys})
    for c in columns:
        work[c] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
    grouped = work.groupby(["key", "bin"], sort=False)
    agg = grouped[columns].max() if how == "max" else grouped[columns].sum(min_count=1)
    seconds = tl.periods_per_bin() * tl.period
    for k in pd.unique(keys):
        part = agg.loc[k]
        series = {}
        for c in columns:
            arr = np.full(tl.bins, np.nan if how == "max" else 0.0)
            idx = part.index.to_numpy()
            vals = part[c].to_numpy(dtype=float)
            arr[idx] = vals if how == "max" else np.nan_to_num(vals)
            if how == "rate":
                arr = arr / seconds
            series[c] = arr
        out[k] = series
    return out


def _short_shard(shard_id: str) -> str:
    if shard_id.startswith("shardId-"):
        digits = shard_id[len("shardId-"):].lstrip("0") or "0"
        return f"shard {digits}"
    return shard_id


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _bytes_unit(peak: float) -> tuple[str, float]:
    if peak >= 10 * 2**20:
        return "MiB/s", float(2**20)
    if peak >= 10 * 2**10:
        return "KiB/s", float(2**10)
    return "B/s", 1.0


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.35")


def _thousands(ax) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 100 or v == 0 else f"{v:.3g}"))


# ------------------------------------------------------------------ shards.png
def plot_shards(results: "Results") -> Figure:
    """Per-shard incoming records/s and bytes/s against the per-shard write limits (dashed), and
    the records rejected with ``WriteProvisionedThroughputExceeded`` per second (bottom panel,
    red markers on the records panel where a shard was throttled). At most :data:`MAX_SHARDS`
    lines: the busiest shards (most throttled, then most records) one by one, the others as
    their per-shard mean."""
    sc = results.scenario
    tl = _Timeline(results)
    limits = sc.stream.limits
    cols = ["IncomingRecords", "IncomingBytes", "WriteProvisionedThroughputExceeded"]
    series = _binned(tl, results.metrics, "ShardId", cols)
    shard_order = [str(s) for s in pd.unique(results.metrics["ShardId"].astype(str))] if len(results.metrics) else []
    shard_order = [s for s in shard_order if s in series]

    if len(shard_order) > MAX_SHARDS:
        score = {s: (series[s][cols[2]].sum(), series[s][cols[0]].sum()) for s in shard_order}
        busiest = sorted(shard_order, key=lambda s: score[s], reverse=True)[: MAX_SHARDS - 1]
        shown = [s for s in shard_order if s in busiest]
        rest = [s for s in shard_order if s not in busiest]
    else:
        shown, rest = shard_order, []
    lines: list[tuple[str, dict, object, float]] = []  # label, series, color, width
    for s, color in zip(shown, _palette(len(shown))):
        lines.append((_short_shard(s), series[s], color, 1.3))
    if rest:
        mean = {c: np.mean([series[s][c] for s in rest], axis=0) for c in cols}
        lines.append((f"mean of {len(rest)} other shards", mean, OTHER_COLOR, 2.0))

    peak_bytes = max([float(np.nanmax(ln[1][cols[1]])) for ln in lines if len(ln[1][cols[1]])] + [float(limits.write_bytes_per_s)])
    bunit, bscale = _bytes_unit(peak_bytes)

    fig = _new_figure(12, 9)
    ax_rec, ax_bytes, ax_thr = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 2])
    x = tl.centers()
    for label, data, color, width in lines:
        tl.line(ax_rec, data[cols[0]], color=color, lw=width, label=label)
        tl.line(ax_bytes, data[cols[1]] / bscale, color=color, lw=width)
        tl.line(ax_thr, data[cols[2]], color=color, lw=width)
        hit = data[cols[2]] > 0
        if hit.any():
            ax_rec.plot(x[hit], data[cols[0]][hit], linestyle="none", marker="v", ms=4, color=THROTTLE_COLOR, zorder=5)

    ax_rec.axhline(limits.write_records_per_s, color="k", ls="--", lw=1.2)
    ax_bytes.axhline(limits.write_bytes_per_s / bscale, color="k", ls="--", lw=1.2)
    ax_rec.set_ylabel("incoming records/s per shard")
    ax_bytes.set_ylabel(f"incoming {bunit} per shard")
    ax_thr.set_ylabel("throttled records/s")
    ax_thr.set_xlabel(tl.xlabel)
    for ax in (ax_rec, ax_bytes, ax_thr):
        tl.style_axis(ax)
        ax.set_ylim(bottom=0)
        _thousands(ax)
    ax_rec.set_ylim(top=max(ax_rec.get_ylim()[1], limits.write_records_per_s * 1.15))
    ax_bytes.set_ylim(top=max(ax_bytes.get_ylim()[1], limits.write_bytes_per_s / bscale * 1.15))
    total_thr = float(results.metrics[cols[2]].sum()) if len(results.metrics) else 0.0
    if total_thr == 0:
        _empty_note(ax_thr, "no write throttling")
    if not len(results.metrics) or float(results.metrics[cols[0]].sum()) == 0:
        _empty_note(ax_rec, "no records written")

    handles = [Line2D([], [], color=c, lw=w, label=lab) for lab, _, c, w in lines]
    handles += [
        Line2D([], [], color="k", ls="--", lw=1.2,
               label=f"shard limit\n{limits.write_records_per_s:,} records/s\n{_fmt_bytes(limits.write_bytes_per_s)}/s"),
        Line2D([], [], color=THROTTLE_COLOR, marker="v", ls="none", label="throttled\n(WriteProvisioned-\nThroughputExceeded)"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    rate = results.summary_dict.get("throttle_rate", 0.0) or 0.0
    fig.suptitle(f"{sc.name}: shard writes, {sc.stream.shards} initial shards, "
                 f"throttle rate {rate:.2%}{tl.note()}", fontsize=12)
    return fig


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} B"


# ------------------------------------------------------------------ iterator_age.png
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
