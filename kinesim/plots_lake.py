"""PNG plots of the Firehose → S3 → EMR path (called by :func:`kinesim.plots.save_plots`).

* ``firehose.png``: per S3 object, against its delivery time: delivery latency (delivery time minus
  the oldest and the newest event time in the object, with the buffer interval dashed), object
  sizes (raw and stored, with the buffer size hint dashed), and the number of objects so far;
* ``emr.png`` (with ``emr:``): the job timeline (cluster startup, run) and each job's freshness
  (end time minus the oldest and newest event time it read).

Same conventions as :mod:`kinesim.plots`: a Figure with its own Agg canvas, no pyplot.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from kinesim.plots import DPI, _empty_note, _fmt_bytes, _fmt_seconds, _new_figure, _time_unit

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results


def save_lake_plots(results: "Results", folder: Path) -> list[Path]:
    """Write ``firehose.png`` (when the scenario has a firehose) and ``emr.png`` (with emr) into
    ``folder``; returns the paths written."""
    jobs = []
    if results.scenario.firehose is not None:
        jobs.append(("firehose.png", plot_firehose))
    if results.scenario.emr is not None:
        jobs.append(("emr.png", plot_emr))
    written = []
    for name, make in jobs:
        fig = make(results)
        path = Path(folder) / name
        fig.savefig(path, dpi=DPI)
        fig.clear()
        written.append(path)
    return written


def _seconds(results: "Results", series) -> np.ndarray:
    origin = results.metrics["timestamp"].min() if len(results.metrics) else None
    if origin is None or len(series) == 0:
        return np.zeros(len(series))
    return (series - origin).dt.total_seconds().to_numpy()


def plot_firehose(results: "Results") -> Figure:
    """Delivery latency, object sizes and object count per S3 object over simulated time."""
    sc = results.scenario
    fh = sc.firehose
    unit, scale = _time_unit(sc.duration)
    obj = results.objects
    data = obj[obj["error_output_type"] == ""] if len(obj) else obj
    fig = _new_figure(12, 9)
    ax_lat, ax_size, ax_count = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 2])
    if len(data):
        t = _seconds(results, data["delivery_time"]) / scale
        oldest = (data["delivery_time"] - data["first_event_time"]).dt.total_seconds().to_numpy()
        newest = (data["delivery_time"] - data["last_event_time"]).dt.total_seconds().to_numpy()
        few = len(t) <= 300
        style = {"marker": "o", "ms": 3, "lw": 0.8} if few else {"marker": ".", "ms": 1.5, "ls": "none"}
        ax_lat.plot(t, oldest, color="tab:red", label="oldest record in the object", **style)
        ax_lat.plot(t, newest, color="tab:blue", label="newest record in the object", **style)
        ax_lat.axhline(fh.buffer.interval, color="k", ls="--", lw=1.0, label=f"buffer interval {_fmt_seconds(fh.buffer.interval)}")
        mib = float(2**20)
        ax_size.plot(t, data["size_bytes"].to_numpy() / mib, color="tab:green", label="raw (buffered) size", **style)
        if fh.compression.format != "none" or fh.format_conversion != "none":
            ax_size.plot(t, data["compressed_bytes"].to_numpy() / mib, color="tab:olive",
                         label=f"stored size ({fh.compression.format}, ratio {fh.compression.ratio:g})", **style)
        ax_size.axhline(fh.buffer.size / mib, color="k", ls="--", lw=1.0, label=f"buffer size {_fmt_bytes(fh.buffer.size)}")
        ax_count.step(np.concatenate(([0.0], t)), np.arange(len(t) + 1), where="post", color="tab:purple")
        ax_lat.legend(loc="upper left", fontsize=8)
        ax_size.legend(loc="upper left", fontsize=8)
    else:
        _empty_note(ax_lat, "no object delivered")
    ax_lat.set_ylabel("delivery time − event time (s)")
    ax_size.set_ylabel("object size (MiB)")
    ax_count.set_ylabel("objects delivered")
    ax_count.set_xlabel(f"simulated time ({unit}), at each object's delivery")
    for ax in (ax_lat, ax_size, ax_count):
        ax.set_xlim(0, sc.duration / scale)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    s = results.summary_dict
    fig.suptitle(f"{sc.name}: Firehose {fh.name} → s3://{fh.s3.bucket}/{fh.s3.prefix}: {s.get('s3_objects', 0):,} objects, "
                 f"delivery latency p50 {_fmt_seconds(s.get('firehose_latency_p50_s'))}", fontsize=12)
    return fig


def plot_emr(results: "Results") -> Figure:
    """EMR job timeline (startup and run per job) and freshness per job."""
    sc = results.scenario
    unit, scale = _time_unit(sc.duration)
    jobs = results.jobs
    fig = _new_figure(12, 7)
    ax_tl, ax_fr = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    if len(jobs):
        start = _seconds(results, jobs["start_time"]) / scale
        run0 = _seconds(results, jobs["run_start_time"]) / scale
        end = _seconds(results, jobs["end_time"]) / scale
        y = jobs["job"].to_numpy()
        ax_tl.barh(y, run0 - start, left=start, color="0.75", height=0.6)
        ax_tl.barh(y, np.maximum(end - run0, 1e-9), left=run0, color="tab:orange", height=0.6)
        for yi, e, n in zip(y, end, jobs["objects"].to_numpy()):
            ax_tl.text(e, yi, f" {n:,} objects", va="center", fontsize=7)
        ax_tl.invert_yaxis()
        if len(y) <= 30:
            ax_tl.set_yticks(y)
        else:
            ax_tl.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_tl.legend(handles=[Patch(color="0.75", label="waiting / cluster startup"),
                              Patch(color="tab:orange", label="running")], loc="upper right", fontsize=8)
        ax_tl.axvline(sc.duration / scale, color="k", lw=0.8, ls=":")
        ax_fr.plot(end, jobs["freshness_oldest_s"].to_numpy() / 60.0, "v", color="tab:red")
        ax_fr.plot(end, jobs["freshness_newest_s"].to_numpy() / 60.0, "^", color="tab:blue")
        ax_fr.legend(handles=[Line2D([], [], color="tab:red", marker="v", ls="none", label="end − oldest event read"),
                              Line2D([], [], color="tab:blue", marker="^", ls="none", label="end − newest event read")],
                     loc="upper left", fontsize=8)
        ax_fr.set_xlim(0, max(sc.duration / scale, float(np.nanmax(end))) * 1.06)
    else:
        _empty_note(ax_tl, "no EMR job ran")
        ax_fr.set_xlim(0, sc.duration / scale)
    ax_tl.set_ylabel("job")
    ax_fr.set_ylabel("freshness at job end (min)")
    ax_fr.set_xlabel(f"simulated time ({unit})")
    ax_fr.set_ylim(bottom=0)
    for ax in (ax_tl, ax_fr):
        ax.grid(True, alpha=0.3)
    s = results.summary_dict
    mode = "long-running cluster" if sc.emr.long_running else f"a cluster per job ({_fmt_seconds(sc.emr.startup)} startup)"
    fig.suptitle(f"{sc.name}: EMR jobs on {mode}, {sc.emr.nodes} nodes; per-record freshness p50 "
                 f"{_fmt_seconds(s.get('emr_freshness_p50_s'))}", fontsize=12)
    return fig
