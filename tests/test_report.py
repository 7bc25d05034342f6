"""``kinesim run --report``: a self-contained ``report.html`` (description, summary, cost, expect
results, every plot as base64 PNG), written inside the atomic save, and rendered by headless
Chromium without errors and with every image decoded.

The Chromium test is skipped only when Chromium is absent and this is not CI (``CI=true``);
``.ci/run`` installs Debian's ``chromium`` when it is missing.
"""
from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import kinesim
from kinesim import cli

SCENARIO = {
    "name": "report-demo",
    "description": "One shard offered 1,200 records/s: a sixth of the records <throttle> & the consumer keeps up.",
    "duration": "20s",
    "seed": 7,
    "stream": {"shards": 1},
    "fleets": [{"name": "meters", "sensors": 1200, "rate": "1/s", "record_size": "100B",
                "producer": {"retries": {"max_attempts": 1}}}],
    "consumers": [{"name": "dashboard"}],
    "expect": [{"metric": "throttle_rate", "approx": 0.1667, "tolerance": 0.03, "why": "Poisson(1200) windows"},
               {"metric": "records_dropped", "equals": 0, "why": "deliberately wrong: no retries drop records"}],
}
CORE_PLOTS = ("shards.png", "iterator_age.png", "latency.png", "producers.png")
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]*)" alt="([^"]+)"')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(path), "--out", str(folder / "out"), "--report", "-q"])
    assert exc.value.code == 0
    return folder / "out" / "report.html"


def test_report_is_self_contained_and_complete(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    images = IMG.findall(text)
    plots_dir = report.parent / "plots"
    written = {p.name for p in plots_dir.glob("*.png")}
    assert set(CORE_PLOTS) <= written
    assert sorted(alt for _, alt in images) == sorted(written)          # every plot, once
    assert [alt for _, alt in images][:2] == ["shards.png", "iterator_age.png"]
    for data, alt in images:
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG_MAGIC) and raw == (plots_dir / alt).read_bytes()
    # nothing is loaded from elsewhere: no external src/href, no script
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "<script" not in text
    # the description is escaped, the summary, the expect results and the resolved scenario are there
    assert html.escape(SCENARIO["description"]) in text
    results_summary = __import__("json").loads((report.parent / "summary.json").read_text())
    assert f"{results_summary['records_produced']:,}" in text
    assert "1 of 2 checks passed" in text and text.count('class="pass"') == 1 and text.count('class="fail"') == 1
    assert "Poisson(1200) windows" in text and "name: report-demo" in text
    assert "<h2>Cost</h2>" in text
    if "cost_usd" in results_summary:
        assert "Total: <b>$" in text


def test_report_without_plots_still_embeds_them(tmp_path, capsys):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    code, out, err = invoke(["run", path, "--out", tmp_path / "out", "--report", "--no-plots"], capsys)
    assert code == 0, err
    assert not (tmp_path / "out" / "plots").exists()
    text = (tmp_path / "out" / "report.html").read_text()
    from kinesim.plots import save_plots

    expected = [p.name for p in save_plots(kinesim.simulate(SCENARIO), tmp_path / "fresh")]
    assert sorted(alt for _, alt in IMG.findall(text)) == sorted(expected)
    assert set(CORE_PLOTS) <= set(expected)
    assert "report.html" in out


def test_report_through_the_python_api_and_atomic_save(tmp_path):
    results = kinesim.simulate(SCENARIO)
    written = results.save(tmp_path / "out", report=True)
    assert (written / "report.html").is_file() and (written / "summary.json").is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []           # the temporary folder was moved into place


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _render(browser: str, page: Path, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
    return subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)


# Appended to a copy of the report (the report itself has no script): after the load event it
# records how many images the browser decoded, where --dump-dom shows it.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 100 && i.naturalHeight > 100; });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-decoded", String(ok.length));
});
</script></body>"""


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        if _in_ci():
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium); CI runs this test")
    # 1. the report as written: loads, no console message (errors, refused resources), every <img> with data
    done = _render(browser, report, tmp_path / "profile-1")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<h1>report-demo</h1>" in dom and "Expect checks" in dom
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    images = IMG.findall(dom)
    n = len(list((report.parent / "plots").glob("*.png")))
    assert n >= len(CORE_PLOTS)
    assert len(images) == n and all(len(data) > 10_000 for data, _ in images)
    # 2. a probed copy: the browser decoded every image to a real picture
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    done = _render(browser, probed, tmp_path / "profile-2")
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    assert f'data-images="{n}"' in body and f'data-decoded="{n}"' in body, body
