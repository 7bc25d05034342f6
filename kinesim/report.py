"""``report.html``: one self-contained page per run (``kinesim run --report``).

The page holds the scenario's description, the summary table (stream, then one column per
consumer), the cost when the run has one (:mod:`kinesim.cost`: the ``cost`` trace, or the
``cost_usd`` figures of the summary), the ``expect:`` results (:mod:`kinesim.expect`), every plot
of :mod:`kinesim.plots` embedded as base64 PNG (``<img src="data:image/png;base64,...">``) and
the resolved scenario. No script, no external file, no network: it opens from a mail attachment.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.results import Results

#: What each plot of :func:`kinesim.plots.save_plots` shows; other PNGs get their file name.
CAPTIONS = {
    "shards.png": "Per-shard incoming records/s and bytes/s against the shard write limits "
                  "(1,000 records/s, 1 MiB/s); records rejected with WriteProvisionedThroughputExceeded in red.",
    "iterator_age.png": "GetRecords.IteratorAgeMilliseconds per consumer application: how old the last record "
                        "each GetRecords call returned was.",
    "latency.png": "Event-to-processed latency per consumer (from the sensor's measurement to the consumer's "
                   "processing), with p50 and p99.",
    "producers.png": "Producers: put attempts, throttled, retried and dropped records per second per fleet.",
}
ORDER = ("shards.png", "iterator_age.png", "latency.png", "producers.png")

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em} .description{background:#f6f8fa;padding:.8em 1em;border-left:4px solid #4a7}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em;max-width:100%}
th,td{border:1px solid #ddd;padding:.3em .7em;overflow-wrap:anywhere}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#176c2f;font-weight:bold} .fail{color:#b3261e;font-weight:bold}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:.85em} .note{color:#666}
"""


def write_report(results: "Results", folder: Path, plots_dir: Optional[Path] = None) -> Path:
    """Write ``folder/report.html`` and return its path. The plots are read from ``plots_dir``
    (``*.png``, as :func:`kinesim.plots.save_plots` wrote them) or, without it, drawn now."""
    folder = Path(folder)
    if plots_dir is not None and Path(plots_dir).is_dir():
        images = _read_pngs(Path(plots_dir))
    else:
        from kinesim.plots import save_plots

        with tempfile.TemporaryDirectory(prefix="kinesim-plots-") as tmp:
            save_plots(results, Path(tmp))
            images = _read_pngs(Path(tmp))
    path = folder / "report.html"
    path.write_text(render(results, images), encoding="utf-8")
    return path


def _read_pngs(folder: Path) -> list[tuple[str, bytes]]:
    files = sorted(folder.glob("*.png"), key=lambda p: (ORDER.index(p.name) if p.name in ORDER else len(ORDER), p.name))
    return [(p.name, p.read_bytes()) for p in files]


def render(results: "Results", images: list[tuple[str, bytes]]) -> str:
    """The report as an HTML string; ``images`` are ``(file name, PNG bytes)`` in display order."""
    sc = results.scenario
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>kinesim report: {e(sc.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(sc.name)}</h1>",
        f'<p class="meta">{e(_meta(results))}</p>',
    ]
    if sc.description:
        parts.append(f'<div class="description"><p>{e(sc.description.strip())}</p></div>')
    parts += ["<h2>Summary</h2>", *_summary_tables(results)]
    parts += ["<h2>Cost</h2>", _cost_section(results)]
    parts += ["<h2>Expect checks</h2>", _expect_section(results)]
    parts.append("<h2>Plots</h2>")
    for name, data in images:
        caption = CAPTIONS.get(name, name)
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{e(name)}" data-plot="{e(name)}">'
                     f"<figcaption>{e(name)}: {e(caption)}</figcaption></figure>")
    if not images:
        parts.append('<p class="note">No plots.</p>')
    parts += ["<h2>Scenario</h2>", "<details><summary>the resolved scenario (every default filled in)</summary>",
              f"<pre>{e(_scenario_yaml(sc))}</pre></details>"]
    parts.append(f'<p class="meta">Written by kinesim {e(_version())} on '
                 f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.</p></body></html>")
    return "\n".join(parts) + "\n"


def _meta(results: "Results") -> str:
    from kinesim.summary_format import fmt_seconds

    sc = results.scenario
    text = f"{fmt_seconds(sc.duration)} simulated from {sc.start_time:%Y-%m-%d %H:%M:%S} UTC, seed {sc.seed}"
    wall = getattr(results, "wall_time_s", float("nan"))
    if wall == wall:  # not NaN
        text += f", in {fmt_seconds(wall)} of wall time"
    return text


def _table(header: list[str], rows: list[list[str]], numeric: Optional[set[int]] = None) -> str:
    """An HTML table; columns in ``numeric`` (default: all but the first) are right-aligned."""
    e = html.escape
    numeric = set(range(1, len(header))) if numeric is None else numeric
    out = ["<table><thead><tr>", *[f"<th>{e(h)}</th>" for h in header], "</tr></thead><tbody>"]
    for row in rows:
        cells = [f'<td class="num">{e(c)}</td>' if i in numeric else f"<td>{e(c)}</td>" for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _summary_tables(results: "Results") -> list[str]:
    from kinesim.summary_format import CONSUMER_COLUMNS, HEADLINE, fmt_auto as _fmt_auto, label_for as _label, split_summary

    top, consumers = split_summary(results.summary_dict)
    rows, used = [], set()
    for key, label, fmt in HEADLINE:
        if key in top:
            used.add(key)
            rows.append([label, fmt(top[key])])
    for key, value in top.items():
        if key not in used and not key.startswith("cost_usd"):
            rows.append([_label(key), _fmt_auto(key, value)])
    tables = [_table(["figure", "value"], rows)]
    if consumers:
        names = list(consumers)
        crow = []
        known = {k for k, _, _ in CONSUMER_COLUMNS}
        for key, label, fmt in CONSUMER_COLUMNS:
            if any(key in m for m in consumers.values()):
                crow.append([label, *[fmt(consumers[n].get(key)) for n in names]])
        extra = sorted({m for ms in consumers.values() for m in ms} - known)
        for key in extra:
            crow.append([_label(key), *[_fmt_auto(key, consumers[n].get(key)) for n in names]])
        tables.append(_table(["consumer figure", *names], crow))
    return tables


def _cost_section(results: "Results") -> str:
    """The bill: the ``cost`` trace when the run has one, else the summary's ``cost_usd`` figures."""
    frame = getattr(results, "cost", None)
    summary = results.summary_dict
    total = summary.get("cost_usd")
    if frame is not None and hasattr(frame, "columns") and len(frame) and "cost_usd" in frame.columns:
        cols = [c for c in ("service", "item", "quantity", "unit", "unit_price_usd", "cost_usd", "source") if c in frame.columns]
        rows = []
        for _, r in frame.iterrows():
            rows.append([_cell(c, r[c]) for c in cols])
        head = f"<p>Total: <b>{_usd(total if total is not None else frame['cost_usd'].sum())}</b> "
        head += "for the simulated time (prices: kinesim/prices.yaml, each with its source).</p>"
        numeric = {i for i, c in enumerate(cols) if c in ("quantity", "unit_price_usd", "cost_usd")}
        return head + _table(cols, rows, numeric)
    if total is not None:
        rows = [[k, _usd(v)] for k, v in summary.items() if k.startswith("cost_usd") and v is not None]
        return _table(["figure", "USD"], rows)
    return ('<p class="note">No cost for this run: the cost model (<code>kinesim.cost</code>) did not report '
            "one (<code>cost_usd</code> in the summary, or a <code>cost</code> trace).</p>")


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if column == "cost_usd":
        return _usd(value)
    if column == "unit_price_usd":
        return f"${float(value):,.6g}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def _usd(value) -> str:
    """``$1,234.50`` for a dollar or more, else four significant digits (``$0.0004567``)."""
    v = float(value)
    return f"${v:,.2f}" if abs(v) >= 1 or v == 0 else f"${v:.4g}"


def _expect_section(results: "Results") -> str:
    from kinesim.expect import evaluate

    outcomes = evaluate(results)
    if not outcomes:
        return '<p class="note">The scenario has no <code>expect:</code> checks.</p>'
    e = html.escape
    passed = sum(o.passed for o in outcomes)
    out = [f"<p>{passed} of {len(outcomes)} checks passed.</p>",
           "<table><thead><tr><th>check</th><th>measured</th><th>result</th><th>why</th></tr></thead><tbody>"]
    for o in outcomes:
        measured = o.measured_text() if o.measured is not None else o.message
        verdict = '<span class="pass">PASS</span>' if o.passed else '<span class="fail">FAIL</span>'
        out.append(f"<tr><td>{e(o.text)}</td><td class=\"num\">{e(measured)}</td><td>{verdict}</td>"
                   f"<td>{e(o.check.why)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _scenario_yaml(sc) -> str:
    import yaml

    return yaml.safe_dump(sc.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _version() -> str:
    try:
        from kinesim import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "?"
