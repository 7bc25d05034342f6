"""Bad input found by a new user: each case must be refused by ``kinesim validate`` with one line
(exit 2) naming the YAML path and what is allowed, never accepted and then crashing or misleading.

Sizes are bounded (int64 byte counts), contradictory limits are refused, ``stream.limits.burst``
needs the token bucket, Firehose prefix expressions are checked, and messages show the values.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import kinesim
from kinesim import cli
from kinesim.cli_schema import scenario_json_schema
from kinesim.errors import ScenarioError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 512 * 2**20  # kinesim.units.MAX_BYTES

TINY = {
    "name": "tiny",
    "duration": "3s",
    "seed": 7,
    "stream": {"shards": 1},
    "fleets": [{"name": "thermostats", "sensors": 50, "rate": "1/s"}],
    "consumers": [{"name": "dashboard", "poll_interval": "500ms"}],
}
LAKE = {**TINY, "firehose": {"name": "to-lake", "s3": {"bucket": "sensor-lake", "prefix": "raw/"}}}


def validate(tmp_path: Path, capsys, *overrides: str, data: dict = TINY) -> tuple[int, str]:
    """``kinesim validate`` on ``data`` with ``--set`` overrides; returns (exit code, stderr)."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    args = ["validate", str(path)]
    for o in overrides:
        args += ["--set", o]
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    _, err = capsys.readouterr()
    return exc.value.code, err


def refused(tmp_path, capsys, override: str, *expected: str, data: dict = TINY) -> str:
    code, err = validate(tmp_path, capsys, override, data=data)
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


# ------------------------------------------------------------------ 1. sizes fit in int64
@pytest.mark.parametrize("override, path", [
    ("fleets[0].record_size=1e30", "fleets[0].record_size: "),
    ("fleets[0].record_size=8 EiB", "fleets[0].record_size: "),
    ("fleets[0].record_size={distribution: lognormal, mean: 1e30, sigma: 0.5}", "fleets[0].record_size.mean: "),
    ("fleets[0].record_size={uniform: [1B, 8EiB]}", "fleets[0].record_size.uniform[1]: "),
    ("stream.limits.write_bytes_per_s=1e30", "stream.limits.write_bytes_per_s: "),
    ("stream.limits.read_bytes_per_s=1TiB", "stream.limits.read_bytes_per_s: "),
    ("stream.limits.max_record_size=8EiB", "stream.limits.max_record_size: "),
    ("stream.limits.get_records_max_bytes=1e19", "stream.limits.get_records_max_bytes: "),
    ("stream.limits.put_records_max_bytes=1e19", "stream.limits.put_records_max_bytes: "),
    ("fleets[0].producer.aggregation_max_size=1e30", "fleets[0].producer.aggregation_max_size: "),
])
def test_huge_sizes_are_refused_with_the_path_and_the_bound(tmp_path, capsys, override, path):
    refused(tmp_path, capsys, override, path, "at most 512 MiB")


def test_huge_sizes_in_the_lake_and_on_demand_settings_are_refused(tmp_path, capsys):
    refused(tmp_path, capsys, "firehose.buffer.size=8EiB", "firehose.buffer.size: ", "at most 512 MiB", data=LAKE)
    on_demand = {**TINY, "stream": {"mode": "on_demand"}}
    refused(tmp_path, capsys, "stream.on_demand.split_bytes_per_s=1e30", "stream.on_demand.split_bytes_per_s: ",
            "at most 512 MiB", data=on_demand)


def test_lognormal_sizes_whose_tail_overflows_are_refused(tmp_path, capsys):
    refused(tmp_path, capsys, "fleets[0].record_size={distribution: lognormal, mean: 100MiB, sigma: 5}",
            "fleets[0].record_size: ", "sigma 5", "100.00 MiB")
    code, err = validate(tmp_path, capsys, "fleets[0].record_size={distribution: lognormal, mean: 1MiB, sigma: 5}")
    assert code == 0, err


def test_a_record_size_at_the_bound_runs(tmp_path):
    """The largest sizes allowed run to the end: the records are dropped as too large, no overflow."""
    from kinesim import units

    assert units.MAX_BYTES == MAX_BYTES
    data = {**TINY, "fleets": [{**TINY["fleets"][0], "record_size": {"uniform": [1, MAX_BYTES]}}]}
    assert kinesim.simulate(data).summary_dict["records_produced"] > 0
    huge = {**TINY, "stream": {"shards": 1, "limits": {"write_bytes_per_s": MAX_BYTES, "max_record_size": MAX_BYTES,
                                                       "put_records_max_bytes": MAX_BYTES,
                                                       "get_records_max_bytes": MAX_BYTES}},
            "fleets": [{**TINY["fleets"][0], "record_size": MAX_BYTES - 64}]}
    assert kinesim.simulate(huge).summary_dict["records_accepted"] > 0


# ------------------------------------------------------------------ 2. contradictory limits
def test_a_put_records_request_must_hold_a_maximum_size_record(tmp_path, capsys):
    refused(tmp_path, capsys, "stream.limits.put_records_max_bytes=100", "stream.limits.put_records_max_bytes: ",
            "max_record_size", "1.00 MiB", "100 B")
    refused(tmp_path, capsys, "stream.limits.max_record_size=8MiB", "stream.limits.max_record_size: ",
            "put_records_max_bytes", "5.00 MiB")


def test_a_get_records_response_must_hold_a_maximum_size_record(tmp_path, capsys):
    refused(tmp_path, capsys, "stream.limits.get_records_max_bytes=100", "stream.limits.get_records_max_bytes: ",
            "max_record_size", "1.00 MiB")


def test_kpl_aggregates_must_fit_in_a_record(tmp_path, capsys):
    data = {**TINY, "fleets": [{**TINY["fleets"][0], "producer": {"aggregation": True}}]}
    refused(tmp_path, capsys, "stream.limits.max_record_size=10KiB", "fleets[0].producer.aggregation_max_size: ",
            "max_record_size", "10.00 KiB", data=data)
    # without aggregation the aggregate size does not matter; smaller limits that agree are fine
    assert validate(tmp_path, capsys, "stream.limits.max_record_size=10KiB")[0] == 0
    assert validate(tmp_path, capsys, "stream.limits.max_record_size=10KiB", "stream.limits.put_records_max_bytes=10KiB",
                    "stream.limits.get_records_max_bytes=10KiB")[0] == 0


# ------------------------------------------------------------------ 3. burst needs the token bucket
def test_burst_applies_only_to_the_token_bucket(tmp_path, capsys):
    refused(tmp_path, capsys, "stream.limits.burst=5s", "stream.limits.burst: ", "write_model: token_bucket")
    assert validate(tmp_path, capsys, "stream.limits.burst=5s", "stream.limits.write_model=token_bucket")[0] == 0
    assert kinesim.load_scenario(TINY).stream.limits.burst == 1.0  # the default still works


@pytest.mark.parametrize("model", ["window", "token_bucket"])
def test_a_resolved_scenario_loads_back(model):
    """``scenario.yaml`` (every default filled in) and a Scenario object load back unchanged."""
    data = {**TINY, "stream": {"shards": 1, "limits": {"write_model": model}}}
    sc = kinesim.load_scenario(data)
    again = kinesim.load_scenario(yaml.safe_load(yaml.safe_dump(sc.model_dump(mode="json", exclude_none=True))))
    assert again == sc == kinesim.load_scenario(sc)
    assert ("burst" in sc.model_dump()["stream"]["limits"]) == (model == "token_bucket")


def test_a_burst_set_in_python_is_refused_too():
    sc = kinesim.load_scenario(TINY)
    odd = sc.model_copy(update={"stream": sc.stream.model_copy(update={"limits": kinesim.scenario.Limits(burst=5)})})
    with pytest.raises(ScenarioError, match=r"stream\.limits\.burst: applies only with write_model: token_bucket"):
        kinesim.load_scenario(odd)


# ------------------------------------------------------------------ 4. Firehose prefixes
@pytest.mark.parametrize("where, value, expected", [
    ("prefix", "!{timestamp:yyyy/", "unclosed expression"),
    ("prefix", "raw/!{firehose:random-string", "unclosed expression"),
    ("prefix", "!{timestamp:%Q}/", "'Q'"),
    ("prefix", "!{timestamp:%Y/%m}/", "strftime"),
    ("prefix", "!{timestamp:MMM}/", "'MMM'"),
    ("prefix", "!{timestamp:yyyy'/}", "unclosed quote"),
    ("prefix", "!{timestamp:yyyy[MM]}/", "'['"),
    ("error_prefix", "err/!{timestamp:yyyy/", "unclosed expression"),
    ("error_prefix", "!{firehose:error-output-type}/!{timestamp:EEE}/", "'EEE'"),
])
def test_bad_prefix_expressions_are_refused(tmp_path, capsys, where, value, expected):
    err = refused(tmp_path, capsys, f"firehose.s3.{where}={value!r}", f"firehose.s3.{where}: ", expected, data=LAKE)
    if "timestamp" in value and "unclosed" not in expected:
        assert "yyyy, yy, MM, dd, HH, mm, ss" in err


def test_the_timestamp_patterns_checked_are_those_evaluated():
    from kinesim import s3, scenario_lake

    assert set(scenario_lake.TIMESTAMP_PATTERNS) == set(s3._JAVA_TOKENS)


@pytest.mark.parametrize("value", [
    "raw/", "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/",
    "dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", "!{timestamp:yyyy-MM-dd HH.mm.ss}/",
    "!{timestamp:yy''MM}/!{firehose:random-string}/",
])
def test_good_prefix_expressions_pass(tmp_path, capsys, value):
    assert validate(tmp_path, capsys, f"firehose.s3.prefix={value!r}", data=LAKE)[0] == 0


# ------------------------------------------------------------------ 5. messages show the values
def test_cross_field_messages_show_both_values(tmp_path, capsys):
    refused(tmp_path, capsys, "fleets[0].producer.record_ttl=1ms", "fleets[0].producer.record_ttl: ",
            "max_buffered_time (100ms)", "got 1ms")
    refused(tmp_path, capsys, "fleets[0].producer.retries.base=10s", "fleets[0].producer.retries.base: ",
            "retries.max (5s)", "got 10s")


@pytest.mark.parametrize("value", ["1e400s", "nan", ".nan", ".inf"])
def test_durations_must_be_finite(tmp_path, capsys, value):
    refused(tmp_path, capsys, f"duration={value}", "duration: ", "finite non-negative duration")


@pytest.mark.parametrize("override, path", [
    ("fleets[0].profile=[{at: 1s, factor: 1e300}]", "fleets[0].rate: "),
    ("trace.period=1e-300s", "trace.period: "),
])
def test_huge_numbers_in_messages_are_compact(tmp_path, capsys, override, path):
    err = refused(tmp_path, capsys, override, path, "e30")
    assert len(err) < 300 and "0" * 20 not in err, err


def test_profile_factors_must_be_finite():
    with pytest.raises(ScenarioError, match=r"fleets\[0\]\.profile\[0\]\.factor"):
        kinesim.load_scenario({**TINY, "fleets": [{**TINY["fleets"][0], "profile": [{"at": 1, "factor": float("inf")}]}]})


# ------------------------------------------------------------------ 6. the format's documentation
def test_documentation_pointers_exist():
    """The schema and the docstrings point to the README's scenario section, which exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## The scenario format" in readme
    assert "README.md" in scenario_json_schema()["description"]
    for name in ("cli_schema.py", "scenario.py", "results.py", "scenario_expect.py"):
        text = (ROOT / "kinesim" / name).read_text(encoding="utf-8")
        assert "shared/scenario-format.md" not in text, name


def test_a_run_of_too_many_steps_is_refused_whatever_the_rates():
    """A tiny rate over a huge duration passes the records cap but would poll for days: refused,
    naming duration; a processing time over a day is refused too."""
    base = {"name": "steps", "duration": "1000000000s", "stream": {"shards": 1}, "trace": {"period": "1d"},
            "fleets": [{"name": "f", "sensors": 1, "rate": "1/d", "producer": {"max_buffered_time": "1s"}}],
            "consumers": [{"name": "c"}]}
    with pytest.raises(ScenarioError) as err:
        kinesim.load_scenario(base)
    assert err.value.path == "duration" and "steps" in str(err.value)
    kinesim.load_scenario({**base, "duration": "30d"})
    with pytest.raises(ScenarioError) as err:
        kinesim.load_scenario({**base, "duration": "1h", "consumers": [{"name": "c", "processing_time": "2d"}]})
    assert err.value.path == "consumers[0].processing_time"


@pytest.mark.parametrize("path, value, words", [
    ("stream.limits.read_bytes_per_s", "1 KiB**2", "must be a size"),
    ("fleets[0].record_size", "1 MiB/s", "a rate: sizes have no /s"),
    ("consumers[0].poll_interval", "1 s*B", "a size, not a time"),
    ("fleets[0].rate", "1 KiB/s", "a byte rate"),
    ("fleets[0].producer.max_buffered_time", "1ns", "at least 1ms"),
    ("start_time", "9999-12-31T23:59:59Z", "1970 to 2199"),
    ("stream.limits.burst", "1ns", "hold at least one record"),
    ("duration", "1/s", "got '1/s' (a rate, not a time)"),
    ("consumers[0].poll_interval", "1e20", "at most 250 years"),
    ("duration", "min", "a number, then its unit, got 'min'"),
    ("fleets[0].record_size", "KiB", "a number, then its unit, got 'KiB'"),
    ("duration", "5m", "(a [length]; for minutes write 'min')"),
])
def test_units_of_the_wrong_kind_and_out_of_range_values_are_refused(tmp_path, capsys, path, value, words):
    """pint counts a byte as a dimensionless 8 (bits), so ``1 KiB/s`` would pass for 8,192 events/s
    and ``1 s*B`` for 8 s: information units are refused where they do not belong."""
    data = TINY
    if path == "stream.limits.burst":
        data = {**TINY, "stream": {"shards": 1, "limits": {"write_model": "token_bucket"}}}
    refused(tmp_path, capsys, f"{path}={value}", f"{path}: ", words, data=data)


def test_byte_limits_per_second_take_a_rate_and_overrides_take_numpy_scalars():
    import numpy as np

    s = kinesim.load_scenario(SCENARIOS / "overload.yaml", {"stream.limits.write_bytes_per_s": "2 MiB/s",
                                                          "stream.shards": np.int64(3)})
    assert s.stream.limits.write_bytes_per_s == 2 * 2**20 and s.stream.shards == 3
    assert kinesim.load_scenario(SCENARIOS / "overload.yaml", {"stream.limits.write_bytes_per_s": "2MiB"}) \
        .stream.limits.write_bytes_per_s == 2 * 2**20


def test_an_empty_timestamp_format_is_refused(tmp_path, capsys):
    refused(tmp_path, capsys, "firehose.s3.prefix='!{timestamp:}/'", "firehose.s3.prefix: ", "no date or time pattern",
            data=LAKE)


# ------------------------------------------------------------------ from the third new-user pass
@pytest.mark.parametrize("size, words", [("2MiB", "(2.00 MiB)"), ("1MiB", "(1.00 MiB)"),
                                         ("{uniform: [1MiB, 2MiB]}", "(1.00 MiB at least)")])
def test_a_record_size_that_drops_every_record_is_refused(tmp_path, capsys, size, words):
    """A fixed size (or a uniform one's low end) at or over max_record_size: the partition key
    makes every record too large, so the run could only drop them all."""
    refused(tmp_path, capsys, f"fleets[0].record_size={size}", "fleets[0].record_size: ", "every record would be dropped",
            words, "stream.limits.max_record_size (1.00 MiB)")
    code, err = validate(tmp_path, capsys, "fleets[0].record_size={uniform: [1KiB, 2MiB]}")
    assert code == 0, err  # some records fit


def test_a_records_trace_too_large_for_memory_is_refused(tmp_path, capsys):
    """``all`` (or a large ``sample``) on a big run would keep hundreds of millions of rows."""
    big = {**TINY, "duration": "1h", "fleets": [{**TINY["fleets"][0], "sensors": 100_000, "rate": "1/s"}]}
    err = refused(tmp_path, capsys, "trace.records=all", "trace.records: all would keep about 360,000,000 records",
                  "at most 10,000,000", "sample_rate at most 0.0278", data=big)
    assert "GiB" in err
    refused(tmp_path, capsys, "trace.records=sample", "trace.records: sample would keep", data={
        **big, "trace": {"records": "sample", "sample_rate": 0.5}})
    refused(tmp_path, capsys, "trace.auto_limit=100000000", "trace.auto_limit: auto with auto_limit 100,000,000 would keep",
            "lower trace.auto_limit", data=big)
    for ok in ("trace.records=auto", "trace.sample_rate=0.02"):
        code, err = validate(tmp_path, capsys, ok, data={**big, "trace": {"records": "sample"}})
        assert code == 0, err


def test_python_api_misuse_gets_a_scenario_error(tmp_path):
    """simulate() with overrides as a list ("--set" style) or a folder for a file: one clear line."""
    with pytest.raises(kinesim.ScenarioError, match=r"^overrides: must map dotted paths to values.*got \['stream.shards=2'\]$"):
        kinesim.simulate(TINY, overrides=["stream.shards=2"], seed=3)
    with pytest.raises(kinesim.ScenarioError, match="is a directory, not a scenario file"):
        kinesim.simulate(tmp_path)


def test_a_run_ending_after_2199_is_refused_to_the_minute():
    late = {**TINY, "start_time": "2199-12-31T23:59:00Z"}
    kinesim.load_scenario({**late, "duration": "30s"})
    with pytest.raises(kinesim.ScenarioError, match="duration: the run would end after 2199"):
        kinesim.load_scenario({**late, "duration": "2d"})
