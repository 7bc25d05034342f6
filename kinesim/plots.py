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

from kinesim.summary_format import fmt_seconds

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
    from kinesim.plots_flow import plot_iterator_age, plot_latency, plot_producers

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
    """Seconds with a readable unit for labels (``n/a`` when missing)."""
    text = fmt_seconds(s)
    return "n/a" if text == "–" else text


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
    open_mask = _open_bins(results, tl)
    for s, color in zip(shown, _palette(len(shown))):
        data = series[s]
        if s in open_mask:  # no line while the shard does not exist or after it closed
            data = {c: np.where(open_mask[s], data[c], np.nan) for c in cols}
        lines.append((_short_shard(s), data, color, 1.3))
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
        if hit.any():  # just above the shard's line, so the line stays visible
            ax_rec.plot(x[hit], data[cols[0]][hit] + 0.05 * limits.write_records_per_s, linestyle="none",
                        marker="v", ms=4, color=THROTTLE_COLOR, zorder=5)

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


def _open_bins(results: "Results", tl: _Timeline) -> dict[str, np.ndarray]:
    """Per shard id, which display bins overlap the time the shard was open (for resharding)."""
    shards = results.shards
    if tl.origin is None or not len(shards) or shards["closed_at"].isna().all() and (
            shards["opened_at"] <= tl.origin).all():
        return {}
    edges = tl.edges() * tl.scale  # seconds from the start
    out = {}
    for row in shards.itertuples():
        opened = (row.opened_at - tl.origin).total_seconds()
        closed = np.inf if pd.isna(row.closed_at) else (row.closed_at - tl.origin).total_seconds()
        out[row.ShardId] = (edges[1:] > opened) & (edges[:-1] < closed)
    return out


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} B"


# ------------------------------------------------------------------ iterator_age.png
