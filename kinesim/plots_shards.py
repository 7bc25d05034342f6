"""``open_shards.png``: open shards over time with the write load, the capacity and the throttling.

Written by :func:`save_shard_plots` (called from :func:`kinesim.plots.save_plots`) for scenarios
whose stream changes its shards: scheduled ``resharding``, ``autoscaling`` or ``mode: on_demand``.

* top: open shards (steps), the UPDATING spans shaded, refused calls marked with their AWS error;
* middle: the stream's write load against its capacity (open shards × the per-shard limit), in
  Kinesis records/s or bytes/s, whichever is nearer its limit: accepted (``IncomingRecords`` /
  ``IncomingBytes``) and offered (accepted + throttled records);
* bottom: records rejected per second (``WriteProvisionedThroughputExceeded``, all shards).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kinesim.plots import DPI, THROTTLE_COLOR, _empty_note, _new_figure, _thousands, _Timeline

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results

REQUESTS = ("SplitShard", "MergeShards", "UpdateShardCount")


def shows_resharding(results: "Results") -> bool:
    """Whether the scenario can change its shards (and so gets ``open_shards.png``)."""
    sc = results.scenario
    return bool(sc.resharding) or sc.autoscaling is not None or sc.stream.mode == "on_demand"


def save_shard_plots(results: "Results", folder: Path) -> list[Path]:
    """Write ``open_shards.png`` into ``folder`` when :func:`shows_resharding`; returns the paths."""
    if not shows_resharding(results):
        return []
    fig = plot_open_shards(results)
    path = Path(folder) / "open_shards.png"
    fig.savefig(path, dpi=DPI)
    fig.clear()
    return [path]


def _seconds(ts: pd.Series, origin) -> np.ndarray:
    return (pd.to_datetime(ts, utc=True) - origin).dt.total_seconds().to_numpy()


def open_shard_counts(shards: pd.DataFrame, origin, times: np.ndarray) -> np.ndarray:
    """Open shards at each time (s from ``origin``) from the ``shards`` trace."""
    opened = _seconds(shards["opened_at"], origin)
    closed = np.nan_to_num(_seconds(shards["closed_at"], origin), nan=np.inf)
    return ((opened[None, :] <= times[:, None]) & (closed[None, :] > times[:, None])).sum(axis=1)


def updating_spans(events: pd.DataFrame, origin) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every accepted control-plane call until its completion."""
    spans, start = [], None
    for row in events.itertuples():
        t = float(_seconds(pd.Series([row.timestamp]), origin)[0])
        if row.kind in REQUESTS and not row.error and start is None:
            start = t
        elif row.kind == "ReshardComplete" and start is not None and not row.detail.startswith("OnDemandSplit"):
            spans.append((start, t))
            start = None
    return spans


def plot_open_shards(results: "Results"):
    """The figure described in the module docstring."""
    sc = results.scenario
    tl = _Timeline(results)
    origin = tl.origin if tl.origin is not None else pd.Timestamp(sc.start_time)
    limits = sc.stream.limits
    m = results.metrics
    per_t = m.groupby("timestamp", observed=True)[["IncomingRecords", "IncomingBytes", "WriteProvisionedThroughputExceeded"]].sum()
    b = tl.bin_index(pd.Series(per_t.index))
    seconds = tl.periods_per_bin() * tl.period

    def rate(col):
        return np.bincount(b, weights=per_t[col].to_numpy(float), minlength=tl.bins)[: tl.bins] / seconds

    accepted_r, accepted_b, throttled = rate("IncomingRecords"), rate("IncomingBytes"), rate("WriteProvisionedThroughputExceeded")
    edges_s = tl.edges() * tl.scale
    mids = (edges_s[:-1] + edges_s[1:]) / 2
    shards_at = open_shard_counts(results.shards, origin, mids)
    use_bytes = np.nanmax(accepted_b / limits.write_bytes_per_s, initial=0) > np.nanmax(accepted_r / limits.write_records_per_s, initial=0)

    fig = _new_figure(12, 9)
    ax_n, ax_load, ax_thr = fig.subplots(3, 1, sharex=True, height_ratios=[2, 3, 2])
    steps = np.unique(np.concatenate(([0.0], _seconds(results.shards["opened_at"], origin),
                                      np.nan_to_num(_seconds(results.shards["closed_at"], origin), nan=0.0))))
    steps = steps[steps <= tl.duration]
    counts = open_shard_counts(results.shards, origin, steps)
    ax_n.step(np.append(steps, tl.duration) / tl.scale, np.append(counts, counts[-1]), where="post", color="tab:blue", lw=2)
    for a, z in updating_spans(results.events, origin):
        ax_n.axvspan(a / tl.scale, z / tl.scale, color="tab:orange", alpha=0.25, lw=0)
    refused = results.events[results.events["error"] != ""] if len(results.events) else results.events
    for row in refused.itertuples():
        t = float(_seconds(pd.Series([row.timestamp]), origin)[0]) / tl.scale
        y = counts[np.searchsorted(steps, t * tl.scale, side="right") - 1]
        ax_n.plot([t], [y], marker="x", color=THROTTLE_COLOR, ms=8, mew=2)
        ax_n.annotate(f"{row.kind}: {row.error}", (t, y), xytext=(4, 6), textcoords="offset points", fontsize=7,
                      color=THROTTLE_COLOR)
    ax_n.set_ylabel("open shards")
    ax_n.set_ylim(0, max(counts.max(), 1) * 1.3)

    if use_bytes:
        scale, unit, per_shard = 2**20, "MiB/s", limits.write_bytes_per_s
        tl.line(ax_load, accepted_b / scale, color="tab:green", lw=1.5)
    else:
        scale, unit, per_shard = 1.0, "Kinesis records/s", limits.write_records_per_s
        tl.line(ax_load, accepted_r, color="tab:green", lw=1.5)
        tl.line(ax_load, accepted_r + throttled, color="tab:purple", lw=1.0, ls=":")
    tl.line(ax_load, shards_at * per_shard / scale, color="k", lw=1.2, ls="--")
    ax_load.set_ylabel(f"stream writes, {unit}")
    tl.line(ax_thr, throttled, color=THROTTLE_COLOR, lw=1.3)
    ax_thr.set_ylabel("throttled records/s")
    ax_thr.set_xlabel(tl.xlabel)
    if float(throttled.sum()) == 0:
        _empty_note(ax_thr, "no write throttling")
    for ax in (ax_n, ax_load, ax_thr):
        tl.style_axis(ax)
        ax.set_ylim(bottom=0)
        _thousands(ax)
    handles = [Line2D([], [], color="tab:blue", lw=2, label="open shards"),
               Patch(color="tab:orange", alpha=0.25, label="stream UPDATING"),
               Line2D([], [], color=THROTTLE_COLOR, marker="x", ls="none", label="refused call"),
               Line2D([], [], color="tab:green", lw=1.5, label="accepted"),
               Line2D([], [], color="k", ls="--", label="capacity:\nopen shards × limit")]
    if not use_bytes:
        handles.insert(4, Line2D([], [], color="tab:purple", ls=":", label="offered\n(accepted + throttled)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    rate_pct = results.summary_dict.get("throttle_rate", 0.0) or 0.0
    fig.suptitle(f"{sc.name}: open shards ({sc.stream.mode}, {sc.stream.shards} → "
                 f"{results.summary_dict.get('shards_final')}), throttle rate {rate_pct:.2%}{tl.note()}", fontsize=12)
    return fig
