"""The ``kinesim`` command line: ``run`` output, ``--set``/``--seed``, ``validate``, and bad input
(exit 2, one line on stderr naming the YAML path, never a traceback).

Most tests call :func:`kinesim.cli.main` in-process (fast); a few run ``python -m kinesim.cli``
in a subprocess to check the real entry point.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kinesim
from kinesim import cli
from kinesim.plots import MAX_POINTS, plot_shards, save_plots

TINY = {
    "name": "tiny",
    "duration": "3s",
    "seed": 7,
    "stream": {"shards": 1, "limits": {"write_records_per_s": 40}},
    "fleets": [{"name": "thermostats", "sensors": 50, "rate": "1/s"}],
    "consumers": [{"name": "dashboard", "poll_interval": "500ms"}],
}

TRACE_FILES = ["metrics.parquet", "records.parquet", "consumers.parquet", "producers.parquet", "shards.parquet"]
PLOTS = ["shards.png", "iterator_age.png", "latency.png", "producers.png"]


def write_scenario(tmp_path: Path, data=TINY, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def invoke(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def normalized(summary: dict) -> dict:
    """A summary as JSON holds it: NaN as None, numpy scalars as Python numbers."""
    out = {}
    for k, v in summary.items():
        v = v.item() if hasattr(v, "item") else v
        out[k] = None if isinstance(v, float) and math.isnan(v) else v
    return out


def assert_one_error_line(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one stderr line, got {err!r}"
    assert lines[0].startswith("error: "), lines[0]
    assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"


# ------------------------------------------------------------------ run
def test_run_writes_results_equal_to_python_api(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = invoke(["run", scenario, "--out", out], capsys)
    assert code == 0, err
    assert err == ""
    for name in ["summary.json", "scenario.yaml", *TRACE_FILES]:
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted(PLOTS)
    assert all((out / "plots" / p).stat().st_size > 10_000 for p in PLOTS)
    assert "throttle rate" in stdout and "dashboard" in stdout and "wrote" in stdout

    saved = json.loads((out / "summary.json").read_text())
    api = kinesim.simulate(kinesim.load_scenario(scenario)).summary_dict
    assert saved == normalized(api)
    assert saved["records_produced"] > 0 and saved["records_throttled"] > 0  # the tiny scenario throttles


def test_run_default_out_quiet_and_no_plots(tmp_path, capsys, monkeypatch):
    scenario = write_scenario(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, stdout, err = invoke(["run", scenario, "--quiet", "--no-plots"], capsys)
    assert code == 0, err
    assert (tmp_path / "results" / "tiny" / "summary.json").is_file()
    assert not (tmp_path / "results" / "tiny" / "plots").exists()
    assert stdout.strip() == "wrote results/tiny/"
    # a second run replaces the earlier results
    code, _, err = invoke(["run", scenario, "-q", "--no-plots"], capsys)
    assert code == 0, err


def test_set_and_seed_override_the_scenario(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    code, _, err = invoke(["run", scenario, "--out", out, "--no-plots", "-q",
                           "--set", "stream.shards=2", "--set", "fleets[0].rate=2/s", "--seed", "11"], capsys)
    assert code == 0, err
    saved = json.loads((out / "summary.json").read_text())
    assert saved["shards_final"] == 2
    api = kinesim.simulate(scenario, overrides={"stream.shards": "2", "fleets[0].rate": "2/s", "seed": "11"})
    assert saved == normalized(api.summary_dict)
    written = yaml.safe_load((out / "scenario.yaml").read_text())
    assert written["stream"]["shards"] == 2 and written["seed"] == 11


def test_out_folder_that_is_not_a_results_folder_is_refused(tmp_path, capsys, monkeypatch):
    scenario = write_scenario(tmp_path)
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, _, err = invoke(["run", scenario, "--out", precious], capsys)
    assert_one_error_line(code, err, "--out")
    assert (precious / "notes.txt").read_text() == "keep me"
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke(["run", scenario, "--out", "."], capsys)
    assert_one_error_line(code, err, "--out .")
    assert scenario.exists()


# ------------------------------------------------------------------ validate
def test_validate_prints_ok_and_fails_on_any_invalid(tmp_path, capsys):
    good = write_scenario(tmp_path)
    bad = write_scenario(tmp_path, {**TINY, "stream": {"shards": 0}}, "bad.yaml")
    code, out, err = invoke(["validate", good, good], capsys)
    assert code == 0 and err == ""
    assert out.splitlines() == [f"ok {good}", f"ok {good}"]
    code, out, err = invoke(["validate", good, bad], capsys)
    assert out.splitlines() == [f"ok {good}"]
    assert_one_error_line(code, err, f"{bad}: stream.shards:")


# ------------------------------------------------------------------ bad input
def mutate(fn):
    data = copy.deepcopy(TINY)
    fn(data)
    return data


BAD_SCENARIOS = {
    "shards-0": (mutate(lambda d: d["stream"].update(shards=0)), [], "stream.shards: input should be greater than or equal to 1"),
    "unknown-key": (mutate(lambda d: d.update(colour="red")), [], "colour: unknown key"),
    "unknown-nested-key": (mutate(lambda d: d["consumers"][0].update(poll=1)), [], "consumers[0].poll: unknown key"),
    "rate-5m": (mutate(lambda d: d["fleets"][0].update(rate="5m")), [], "fleets[0].rate:"),
    "arrival-weird": (mutate(lambda d: d["fleets"][0].update(arrival="weird")), [], "fleets[0].arrival:"),
    "consumer-efo": (mutate(lambda d: d["consumers"][0].update(type="efo")), [], "consumers[0].type:"),
    "stream-mode-unknown": (mutate(lambda d: d["stream"].update(mode="serverless")), [], "stream.mode:"),
    "missing-duration": (mutate(lambda d: d.pop("duration")), [], "duration: required key is missing"),
    "negative-duration": (mutate(lambda d: d.update(duration="-5s")), [], "duration:"),
    "retention-1h": (mutate(lambda d: d["stream"].update(retention="1h")), [], "stream.retention:"),
    "max-records-20000": (mutate(lambda d: d["consumers"][0].update(max_records=20000)), [], "consumers[0].max_records:"),
    "name-with-capitals": (mutate(lambda d: d.update(name="Tiny")), [], "tiny.yaml: name: must match"),
    "sensors-0": (mutate(lambda d: d["fleets"][0].update(sensors=0)), [], "fleets[0].sensors:"),
    "record-size-weird": (mutate(lambda d: d["fleets"][0].update(record_size="big")), [], "fleets[0].record_size:"),
    "duplicate-fleet": (mutate(lambda d: d["fleets"].append(dict(d["fleets"][0]))), [], "fleets[1].name: must be unique"),
    "no-fleets": (mutate(lambda d: d.update(fleets=[])), [], "fleets:"),
    "bad-yaml-syntax": ("name: tiny\nstream: {shards: 2\nduration: 3s\n", [], "tiny.yaml: invalid YAML at line"),
    "not-a-mapping": ("- just\n- a list\n", [], "tiny.yaml: a scenario must be a mapping"),
    "set-without-equals": (TINY, ["--set", "stream.shards"], "--set stream.shards: expected PATH=VALUE"),
    "set-empty-path": (TINY, ["--set", "=3"], "--set =3"),
    "set-invalid-value": (TINY, ["--set", "stream.shards=abc"], "stream.shards: input should be a valid integer"),
    "set-unknown-path": (TINY, ["--set", "stream.shardz=3"], "stream.shardz: unknown key"),
    "set-bad-yaml": (TINY, ["--set", "stream.shards=[1"], "--set stream.shards: invalid YAML"),
    "set-list-index-out-of-range": (TINY, ["--set", "fleets[3].rate=1/s"], "fleets[3].rate: no list item 3"),
    "seed-negative": (TINY, ["--seed", "-1"], "seed: input should be greater than or equal to 0"),
    "set-fractional-shards": (TINY, ["--set", "stream.shards=1.5"],
                              "stream.shards: input should be a valid integer, got a number with a fractional part"),
    "set-fractional-seed": (TINY, ["--set", "seed=1.5"], "seed: input should be a valid integer, got a number"),
    "alias-holds-itself": ("name: tiny\nduration: 3s\ndescription: &a [*a]\n", [],
                           "tiny.yaml: a YAML alias at line 3 refers to a value that contains it"),
    "set-int-too-long": (TINY, ["--set", "seed=" + "9" * 5000], "--set seed: invalid YAML value: Exceeds the limit"),
    "set-nested-too-deeply": (TINY, ["--set", "description=" + "[" * 5000 + "]" * 5000],
                              "--set description: invalid YAML: lists or mappings nested too deeply"),
    "run-too-large": (TINY, ["--set", "duration=36500d", "--set", "trace.period=1d"],
                      "duration: the run would simulate 1.58e11 records; at most 1e10 (shorten duration"),
    "trace-periods-from-duration": (TINY, ["--set", "duration=58d"],
                                    "duration: duration / trace.period gives 5,011,200 periods; at most 5,000,000: "
                                    "raise trace.period or shorten duration"),
    "trace-periods-from-period": (TINY, ["--set", "duration=30d", "--set", "trace.period=0.5s"],
                                  "trace.period: duration / trace.period gives 5,184,000 periods"),
}


@pytest.mark.parametrize("case, command", [(case, command) for case in BAD_SCENARIOS for command in ("run", "validate")
                                           if not (command == "validate" and "--seed" in BAD_SCENARIOS[case][1])])
def test_bad_input_exits_2_with_one_line_naming_the_path(case, command, tmp_path, capsys):
    data, extra, expected = BAD_SCENARIOS[case]
    scenario = write_scenario(tmp_path, data)
    code, out, err = invoke([command, scenario, "--out", tmp_path / "out", *extra] if command == "run"
                            else [command, scenario, *extra], capsys)
    assert_one_error_line(code, err, expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["run", "{tmp}/missing.yaml"], "missing.yaml: no such scenario file"),
    (["run", "{tmp}/missing"], "missing: no such scenario file"),
    (["run", "{tmp}"], "is a directory"),
    (["validate", "{tmp}/missing.yaml"], "missing.yaml: no such scenario file"),
    (["run"], "Missing argument"),
    (["run", "{tmp}/tiny.yaml", "--bogus"], "No such option: --bogus"),
    (["run", "{tmp}/tiny.yaml", "--seed", "abc"], "--seed"),
    (["frobnicate"], "No such command"),
])
def test_missing_files_and_usage_errors_exit_2_with_one_line(args, expected, tmp_path, capsys):
    write_scenario(tmp_path)
    code, _, err = invoke([a.format(tmp=tmp_path) for a in args], capsys)
    assert_one_error_line(code, err, expected)


def test_non_utf8_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00name: x")
    code, _, err = invoke(["validate", path], capsys)
    assert_one_error_line(code, err, "binary.yaml: not UTF-8")


# ------------------------------------------------------------------ the real entry point
def _python_m(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_python_m_kinesim_cli_bad_input_subprocess(tmp_path):
    scenario = write_scenario(tmp_path, mutate(lambda d: d["stream"].update(shards=0)))
    proc = _python_m("kinesim.cli", "run", str(scenario), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {scenario}: stream.shards: input should be greater than or equal to 1, got 0"]
    assert proc.stdout == ""


def test_python_m_kinesim_validate_subprocess(tmp_path):
    write_scenario(tmp_path)
    proc = _python_m("kinesim", "validate", "tiny.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["ok tiny.yaml"]
    proc = _python_m("kinesim", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "run" in proc.stdout and "validate" in proc.stdout


# ------------------------------------------------------------------ plots
def test_plots_without_consumers_and_without_records(tmp_path):
    data = {"name": "quiet", "duration": "1s", "fleets": [{"name": "f", "sensors": 1, "rate": "1/min", "arrival": "periodic"}]}
    results = kinesim.simulate(data)
    assert results["records_produced"] == 0
    written = save_plots(results, tmp_path / "plots")
    assert [p.name for p in written] == ["shards.png", "producers.png"]
    data["consumers"] = [{"name": "c"}]
    written = save_plots(kinesim.simulate(data), tmp_path / "plots2")
    assert [p.name for p in written] == ["shards.png", "iterator_age.png", "latency.png", "producers.png"]
    assert all(p.stat().st_size > 5_000 for p in written)


def test_long_runs_are_resampled_and_many_shards_aggregated(tmp_path):
    data = {
        "name": "long", "duration": "75min", "seed": 1,
        "stream": {"shards": 20},
        "fleets": [{"name": "f", "sensors": 40, "rate": "1/min", "producer": {"max_buffered_time": "5s"}}],
        "consumers": [{"name": "c", "poll_interval": "30s"}],
    }
    results = kinesim.simulate(data)
    fig = plot_shards(results)
    records_ax = fig.axes[0]
    assert len(records_ax.lines) >= 16
    for line in records_ax.lines:
        assert len(line.get_xdata()) <= MAX_POINTS
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "mean of 5 other shards" in labels
    assert len(save_plots(results, tmp_path)) == 4


# ------------------------------------------------------------------ found by a new user
def test_rerun_keeps_a_results_folder_that_holds_the_users_own_files(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert invoke(["run", scenario, "--out", out, "--no-plots", "-q"], capsys)[0] == 0
    (out / "my-notes.md").write_text("mine")
    code, _, err = invoke(["run", scenario, "--out", out, "--no-plots", "-q"], capsys)
    assert_one_error_line(code, err, "my-notes.md")
    assert (out / "my-notes.md").read_text() == "mine"
    fake = tmp_path / "proj"
    fake.mkdir()
    (fake / "summary.json").write_text("{}")
    (fake / "thesis.tex").write_text("mine")
    code, _, err = invoke(["run", scenario, "--out", fake, "--no-plots", "-q"], capsys)
    assert_one_error_line(code, err, "not a kinesim results folder")
    assert (fake / "thesis.tex").read_text() == "mine"
    with pytest.raises(FileExistsError):
        kinesim.simulate(scenario).save(out)


def test_out_below_a_file_says_the_file_is_not_a_folder(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    (tmp_path / "x").write_text("a file")
    for out in (tmp_path / "x" / "sub", tmp_path / "x" / "sub" / "deeper"):
        code, _, err = invoke(["run", scenario, "--out", out, "--no-plots"], capsys)
        assert_one_error_line(code, err, f"--out {out}: cannot be created: {tmp_path / 'x'} is a file, not a folder")
    code, _, err = invoke(["run", scenario, "--out", tmp_path / "x", "--no-plots"], capsys)
    assert_one_error_line(code, err, "exists and is not a folder")
    assert (tmp_path / "x").read_text() == "a file"


@pytest.mark.parametrize("override", ["stream.shards=1.5", "seed=1.5", "stream.shards=abc", "fleets[0].sensors=[1]"])
def test_pydantic_messages_start_lower_case_like_ours(override):
    """pydantic's own messages ("Input should be ...") are shown as ours are, lower-case first."""
    from kinesim import load_scenario
    from kinesim.errors import ScenarioError

    path, _, value = override.partition("=")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(TINY, {path: value})
    assert exc.value.message[:1].islower(), exc.value.message


@pytest.mark.parametrize("override, path", [
    ("start_time=2026-13-01T00:00:00Z", "start_time"),
    ("start_time=2026-02-30", "start_time"),
    ("fleets[0].rate=1e9/s", "fleets[0].rate"),
    ("fleets[0].sensors=10000000", "fleets[0].sensors"),
    ("stream.shards=true", "stream.shards"),
])
def test_impossible_dates_and_unbounded_loads_are_bad_input(tmp_path, capsys, override, path):
    scenario = write_scenario(tmp_path)
    code, _, err = invoke(["validate", scenario, "--set", override], capsys)
    assert_one_error_line(code, err, path)


def test_huge_bad_values_give_a_short_message(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    code, _, err = invoke(["validate", scenario, "--set", "name=" + "x" * 100_000], capsys)
    assert_one_error_line(code, err, "name")
    assert len(err) < 500


def _alias_bomb(levels: int) -> str:
    """``&a0 [1 x 10]``, ``&a1 [*a0 x 10]``, ...: the last alias expands to about 10**(levels + 1) values."""
    value = "&a0 [1,1,1,1,1,1,1,1,1,1]"
    for i in range(1, levels + 1):
        value = f"&a{i} [{value}," + ",".join([f"*a{i - 1}"] * 9) + "]"
    return value


def test_yaml_alias_bomb_is_refused_at_once_with_one_line(tmp_path):
    text = Path(__file__).parents[1].joinpath("scenarios", "overload.yaml").read_text(encoding="utf-8")
    start, end = text.index("description:"), text.index("\nduration:")
    bomb = tmp_path / "bomb8.yaml"
    bomb.write_text(text[:start] + f"description: {_alias_bomb(8)}" + text[end:], encoding="utf-8")
    # a subprocess, so that a regression fails at the timeout instead of holding the test run
    proc = _python_m("kinesim", "validate", str(bomb), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {bomb}: description: YAML aliases expand this value (line 2) to "
                                        "1,111,111,111 values; at most 1,000,000 are allowed"]


def test_a_huge_shared_value_gives_a_short_message_at_once():
    from kinesim.errors import ScenarioError
    from kinesim.loader import load_scenario

    value: list = [1] * 10
    for _ in range(30):  # 10**31 items once expanded, all sharing one list per level
        value = [value] * 10
    with pytest.raises(ScenarioError) as exc:
        load_scenario({**TINY, "description": value})
    assert str(exc.value).startswith("description: input should be a valid string, got [[[[[[[[[[")
    assert len(str(exc.value)) < 200


def test_run_size_cap_names_duration_and_lets_a_day_of_100k_sensors_at_1hz_pass():
    from kinesim.errors import ScenarioError
    from kinesim.loader import MAX_RUN_RECORDS, expected_run_records, load_scenario

    day = {**TINY, "duration": "1d", "fleets": [{"name": "meters", "sensors": 100_000, "rate": "1/s"}]}
    assert expected_run_records(load_scenario(day)) == 8.64e9 <= MAX_RUN_RECORDS
    profiled = {**day, "fleets": [{**day["fleets"][0], "profile": [{"at": "12h", "factor": 1.5}]}]}
    with pytest.raises(ScenarioError) as exc:  # 100,000 x (43,200 + 1.5 x 43,200) = 1.08e10
        load_scenario(profiled)
    assert exc.value.path == "duration"
    assert exc.value.message == ("the run would simulate 1.08e10 records; at most 1e10 "
                                 "(shorten duration or lower the fleets' rates)")
