"""``kinesim check``: every bundled scenario passes its own ``expect:`` checks (one test per file,
so pytest-xdist spreads them), the lesson library is complete, and the command's exit codes, table
and ``--set`` work."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

import kinesim
from kinesim import cli

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "scenarios").glob("*.yaml"))
#: The lessons of the issue "Lessons and analysis", each with its expect checks.
LESSONS = ("sensor-fleet", "overload", "aggregation", "hot-partition", "slow-consumer", "micro-bursts",
           "byte-limit", "retry-storm", "retry-backoff", "shared-reads", "lag-past-retention")


def invoke(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_scenario_passes_its_checks(path, capsys):
    code, out, err = invoke(["check", path], capsys)
    assert code == 0, out + err
    assert " 0 failed" in out and err == ""


def test_the_lesson_library():
    by_name = {p.stem: yaml.safe_load(p.read_text()) for p in BUNDLED}
    missing = [name for name in LESSONS if name not in by_name]
    assert not missing, missing
    for name in LESSONS:
        data = by_name[name]
        assert len(data.get("description", "")) > 300, f"{name}: the description must say what happens and why"
        assert len(data.get("expect", [])) >= 3, f"{name}: at least three expect checks"
    assert sum(bool(d.get("expect")) for d in by_name.values()) >= 10


TINY = {"name": "tiny", "duration": "10s", "seed": 1, "stream": {"shards": 1},
        "fleets": [{"name": "meters", "sensors": 50, "rate": "1/s", "arrival": "periodic"}],
        "consumers": [{"name": "dashboard"}],
        "expect": [{"metric": "throttle_rate", "equals": 0, "why": "50 records/s"},
                   {"metric": "IncomingRecords", "window": ["1s", "10s"], "mean_above": 45, "mean_below": 55}]}


def write(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_folder_table_and_exit_codes(tmp_path, capsys):
    write(tmp_path / "lessons", "a.yaml", TINY)
    failing = {**TINY, "name": "overloaded", "fleets": [{**TINY["fleets"][0], "sensors": 1500}]}
    write(tmp_path / "lessons", "b.yaml", failing)
    (tmp_path / "lessons" / "notes.txt").write_text("not a scenario")
    code, out, err = invoke(["check", tmp_path / "lessons"], capsys)
    assert code == 1, out + err
    assert "2 scenarios, 4 checks: 2 passed, 2 failed" in out
    assert "tiny" in out and "overloaded" in out and "PASS" in out and "FAIL" in out
    assert "throttle_rate = 0" in out
    # --set applies to every scenario: 50 sensors each, so both pass
    code, out, err = invoke(["check", tmp_path / "lessons", "--set", "fleets[0].sensors=50"], capsys)
    assert code == 0 and "4 passed, 0 failed" in out
    # -q lists only failures: nothing to list
    code, out, _ = invoke(["check", tmp_path / "lessons" / "a.yaml", "-q"], capsys)
    assert code == 0 and "PASS" not in out and "1 scenario, 2 checks: 2 passed, 0 failed" in out


def test_measured_values_are_shown(tmp_path, capsys):
    path = write(tmp_path, "m.yaml", {**TINY, "expect": [{"metric": "records_produced", "between": [450, 500]}]})
    code, out, _ = invoke(["check", path], capsys)
    produced = kinesim.simulate(path)["records_produced"]
    assert code == (0 if 450 <= produced <= 500 else 1)
    assert f"{produced:,}" in out or str(produced) in out


@pytest.mark.parametrize("args, words", [
    (["missing.yaml"], "missing.yaml: no such scenario file or folder"),
    (["{empty}"], "no scenario files (*.yaml) in this folder"),
    (["{bad}"], "bad.yaml: expect[0].metric: unknown summary figure 'throtle_rate'"),
    (["{good}", "--set", "stream.shards=0"], "stream.shards"),
    (["{good}", "--set", "nonsense"], "--set nonsense: expected PATH=VALUE"),
])
def test_invalid_input_exits_2_with_one_line_per_problem(tmp_path, capsys, args, words):
    (tmp_path / "empty").mkdir()
    bad = write(tmp_path, "bad.yaml", {**TINY, "expect": [{"metric": "throtle_rate", "below": 1}]})
    good = write(tmp_path, "good.yaml", TINY)
    args = [a.format(empty=tmp_path / "empty", bad=bad, good=good) for a in args]
    code, out, err = invoke(["check", *args], capsys)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert "Traceback" not in err


def test_invalid_and_valid_together_runs_the_valid_ones(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", TINY)
    code, out, err = invoke(["check", good, tmp_path / "nope.yaml"], capsys)
    assert code == 2
    assert "1 scenario, 2 checks: 2 passed, 0 failed; 1 invalid input" in out


def test_run_reports_the_checks(tmp_path, capsys):
    path = write(tmp_path, "tiny.yaml", TINY)
    code, out, err = invoke(["run", path, "--out", tmp_path / "out", "--no-plots"], capsys)
    assert code == 0, err
    assert "expect: 2 of 2 checks passed" in out
    saved = yaml.safe_load((tmp_path / "out" / "scenario.yaml").read_text())
    assert saved["expect"][0] == {"metric": "throttle_rate", "equals": 0.0, "why": "50 records/s"}


def test_run_suggests_a_check_command_with_its_own_set_and_seed_options(tmp_path, capsys):
    # overloaded by the --set options: the suggested command must reproduce the run, not the file
    path = write(tmp_path / "my lessons", "tiny.yaml", TINY)
    options = ["--set", "fleets[0].sensors=70", "--set", "fleets[0].rate=1 / s", "--seed", "5"]
    code, out, err = invoke(["run", path, "--out", tmp_path / "out", "--no-plots", *options], capsys)
    assert code == 0, err
    expected = (f"kinesim check {shlex.quote(str(path))} --set 'fleets[0].sensors=70' --set 'fleets[0].rate=1 / s' "
                "--seed 5")
    assert f"expect: 1 of 2 checks passed ({expected} shows them)" in out, out
    code, out, err = invoke(shlex.split(expected)[1:], capsys)  # what a shell would pass
    assert code == 1, out + err
    assert "1 scenario, 2 checks: 1 passed, 1 failed" in out
    saved = yaml.safe_load((tmp_path / "out" / "scenario.yaml").read_text())
    assert saved["seed"] == 5 and saved["fleets"][0]["sensors"] == 70


def test_check_seed_is_the_same_as_set_seed(tmp_path, capsys):
    path = write(tmp_path, "m.yaml", {**TINY, "fleets": [{**TINY["fleets"][0], "arrival": "poisson"}],
                                      "expect": [{"metric": "records_produced", "equals": 0}]})
    runs = [invoke(["check", path, *args], capsys)[1] for args in (["--seed", "4"], ["--set", "seed=4"], ["--seed", "5"])]
    measured = [re.search(r"records_produced = 0\s*│\s*([\d,]+)", out).group(1) for out in runs]  # not the wall time
    assert measured[0] == measured[1] != measured[2]
