"""``expect:`` checks: the schema (errors name the YAML path), the evaluation on a run (numbers), and
the theory functions the lessons use (closed forms, and the simulator against them)."""
from __future__ import annotations

import math

import pytest

import kinesim
from kinesim import theory
from kinesim.expect import evaluate, tolerance_of

BASE = {
    "name": "tiny",
    "duration": "20s",
    "seed": 3,
    "stream": {"shards": 2},
    "fleets": [{"name": "meters", "sensors": 100, "rate": "1/s", "arrival": "periodic", "record_size": "100B"}],
    "consumers": [{"name": "dashboard", "poll_interval": "500ms"}],
}


def scenario(*checks, **changes):
    return {**BASE, **changes, "expect": list(checks)}


# ------------------------------------------------------------------ schema
@pytest.mark.parametrize("checks, path, words", [
    ([{"metric": "throtle_rate", "below": 1}], "expect[0].metric", "did you mean throttle_rate"),
    ([{"metric": "throttle_rate", "below": 1}, {"metric": "IncomingRecords", "above": 1}], "expect[1].metric",
     "trace column, not a summary figure"),
    ([{"metric": "consumers.dashbord.max_iterator_age_s", "below": 1}], "expect[0].metric",
     "no consumer named 'dashbord' (did you mean dashboard?)"),
    ([{"metric": "consumers.dashboard.latency_p95_s", "below": 1}], "expect[0].metric", "unknown consumer figure"),
    ([{"metric": "backlog_records", "max_below": 1}], "expect[0].metric", "per consumer: add consumer"),
    ([{"metric": "backlog_records", "consumer": "nobody", "max_below": 1}], "expect[0].consumer", "no consumer named"),
    ([{"metric": "put_attempts", "fleet": "meterz", "mean_below": 1}], "expect[0].fleet", "did you mean meters"),
    ([{"metric": "IncomingRecordz", "mean_below": 1}], "expect[0].metric", "did you mean IncomingRecords"),
    ([{"metric": "throttle_rate"}], "expect[0]", "needs a comparison"),
    ([{"metric": "throttle_rate", "below": 1, "mean_below": 2}], "expect[0]", "one kind per check"),
    ([{"metric": "throttle_rate", "below": 1, "window": ["1s", "2s"]}], "expect[0]", "goes with a trace comparison"),
    ([{"metric": "throttle_rate", "below": 1, "tolerance": 0.1}], "expect[0]", "tolerance goes with approx"),
    ([{"metric": "throttle_rate", "between": [0.3, 0.1]}], "expect[0]", "low <= high"),
    ([{"metric": "throttle_rate", "below": 1, "above": 2}], "expect[0]",
     "above must be less than below (no value can pass), got above: 2, below: 1"),
    ([{"metric": "throttle_rate", "below": 0.5, "above": 0.5}], "expect[0]", "above must be less than below"),
    ([{"metric": "IncomingRecords", "mean_above": 9, "mean_below": 3}], "expect[0]",
     "mean_above must be less than mean_below (no value can pass), got mean_above: 9, mean_below: 3"),
    ([{"metric": "IncomingRecords", "max_above": 9, "max_below": 3}], "expect[0]", "max_above must be less than max_below"),
    ([{"metric": "IncomingRecords", "min_above": 3, "min_below": 3}], "expect[0]", "min_above must be less than min_below"),
    ([{"metric": "IncomingRecords", "window": ["5s", "2s"], "mean_below": 1}], "expect[0]", "from < to"),
    ([{"metric": "IncomingRecords", "window": ["5parsecs", "9s"], "mean_below": 1}], "expect[0].window[0]", "duration"),
    ([{"metric": "throttle_rate", "approx": 0.1, "tolerance": "lots"}], "expect[0].tolerance", "percentage"),
    ([{"metric": "IncomingRecords", "shard": "shard-1", "mean_below": 1}], "expect[0].shard", "shardId-000000000000"),
    ([{"metric": "throttle_rate", "below": 1, "colour": "red"}], "expect[0].colour", "allowed keys: metric"),
    ([{"metric": "cost_usdx", "below": 1}], "expect[0].metric", "did you mean cost_usd"),
    ([{"metric": "firehose_latncy_p50_s", "below": 1}], "expect[0].metric", "did you mean firehose_latency_p50_s"),
    ([{"metric": "shards_maxx", "below": 1}], "expect[0].metric", "did you mean shards_max"),
])
def test_invalid_checks_name_the_yaml_path(checks, path, words):
    with pytest.raises(kinesim.ScenarioError) as exc:
        kinesim.load_scenario(scenario(*checks))
    assert exc.value.path == path, str(exc.value)
    assert words in str(exc.value)


def test_valid_forms_and_normalisation():
    sc = kinesim.load_scenario(scenario(
        {"metric": "throttle_rate", "between": [0, 0.1]},
        {"metric": "IncomingRecords", "shard": 1, "window": ["2s", "1min"], "mean_below": 1000},
        {"metric": "consumers.dashboard.backlog_records", "max_below": 10},
        {"metric": "throttle_rate", "approx": 0.2, "tolerance": "5%"},
        {"metric": "cost_usd", "below": 1},            # an optional component: checked when the run is measured
    ))
    checks = sc.expect
    assert checks[1].shard == "shardId-000000000001" and checks[1].window == [2.0, 60.0]
    assert checks[2].scope() == ("consumers", "backlog_records", "dashboard")
    assert checks[0].kind == "summary" and checks[1].kind == "trace"
    assert tolerance_of(checks[3]) == pytest.approx(0.01)
    assert checks[1].describe() == "IncomingRecords [shardId-000000000001] over 2s–1min: mean < 1000"
    # the scenario round-trips through its own dump (Results.save writes scenario.yaml from it)
    again = kinesim.load_scenario(sc.model_dump(mode="json", exclude_none=True))
    assert again.expect == sc.expect


def test_a_window_or_shard_outside_the_run_fails_the_check_instead_of_the_load():
    sc = kinesim.load_scenario(scenario(
        {"metric": "IncomingRecords", "window": ["1min", "2min"], "mean_below": 1000},
        {"metric": "IncomingRecords", "shard": 7, "mean_below": 1000},
    ))
    outcomes = evaluate(kinesim.simulate(sc))
    assert [o.passed for o in outcomes] == [False, False]
    assert "the run covers 0s–20s" in outcomes[0].message
    assert "no data for shard shardId-000000000007" in outcomes[1].message


# ------------------------------------------------------------------ evaluation
def test_checks_measure_the_run():
    """100 periodic sensors at 1/s over 2 shards for 20 s: about 100 records/s, nothing throttles."""
    sc = kinesim.load_scenario(scenario(
        {"metric": "throttle_rate", "equals": 0},
        {"metric": "records_produced", "approx": 2000, "tolerance": 20},
        {"metric": "records_produced", "approx": 5000},                     # default 5%: fails
        {"metric": "IncomingRecords", "window": ["2s", "20s"], "mean_above": 99, "mean_below": 101},
        {"metric": "IncomingRecords", "shard": 0, "max_below": 100},
        {"metric": "GetRecords.IteratorAgeMilliseconds", "consumer": "dashboard", "max_below": 150},
        {"metric": "put_attempts", "fleet": "meters", "window": ["1s", "20s"], "min_above": 90},
        {"metric": "consumers.dashboard.latency_p50_s", "between": [0.2, 0.4]},
        {"metric": "firehose_records_delivered", "above": 0},  # no Firehose in this scenario: measured as absent
    ))
    results = kinesim.simulate(sc)
    out = evaluate(results)
    assert [o.passed for o in out] == [True, True, False, True, True, True, True, True, False]
    assert out[0].measured == 0.0
    assert out[1].measured == results["records_produced"]
    assert 1980 <= out[1].measured <= 2000                     # 100/s x 20 s, the last flush not generated
    assert results["records_produced"] + results["records_unflushed"] == 2000  # (counted apart)
    m = results.metrics
    per_second = m.groupby("timestamp")["IncomingRecords"].sum()
    assert out[3].measured["mean"] == pytest.approx(per_second.iloc[2:].mean())
    assert out[4].measured["max"] == m[m.ShardId == "shardId-000000000000"]["IncomingRecords"].max()
    # latency = buffering (mean 50 ms) + half a 500 ms poll interval (theory.mean_polling_delay)
    assert out[7].measured == pytest.approx(0.05 + theory.mean_polling_delay(0.5), abs=0.05)
    assert "not in this run's summary" in out[8].message and out[8].measured is None
    assert out[2].measured_text() == f"{results['records_produced']:,}"


def test_nan_figures_fail():
    """Sensors that measure nothing in the run (rate profile factor 0): no latency to measure."""
    fleet = {**BASE["fleets"][0], "profile": [{"at": "0s", "factor": 0}]}
    sc = kinesim.load_scenario(scenario({"metric": "consumers.dashboard.latency_p99_s", "below": 10},
                                        duration="5s", fleets=[fleet]))
    (out,) = evaluate(kinesim.simulate(sc))
    assert math.isnan(out.measured) and not out.passed and "NaN" in out.message
    assert out.measured_text() == "nan"


# ------------------------------------------------------------------ theory used by the lessons
def test_theory_closed_forms():
    assert theory.bursty_throttle_rate(500, 20, 40) == pytest.approx(theory.poisson_throttle_rate(1500))
    assert theory.poisson_throttle_rate(1500) == pytest.approx(1 / 3, abs=1e-6)
    assert theory.token_bucket_burst_throttle_rate(2000, 10, 50, 1000, 0) == pytest.approx(0.5)
    assert theory.token_bucket_burst_throttle_rate(2000, 10, 50, 1000, 1000) == pytest.approx(9000 / 20000)
    assert theory.token_bucket_burst_throttle_rate(1000, 10, 50, 1000, 1000) == 0.0
    assert theory.effective_record_limit(8202) == 127
    assert theory.effective_record_limit(100) == 1000
    assert theory.iterator_age_growth(4, 1) == pytest.approx(0.75)
    assert theory.iterator_age_growth(1, 4) == 0.0
    assert theory.time_to_iterator_age(86400, 4, 1) == pytest.approx(32 * 3600)
    assert theory.time_to_iterator_age(43200, 4, 1) == pytest.approx(16 * 3600)
    assert math.isinf(theory.time_to_iterator_age(10, 1, 1))
    assert theory.records_expired_by(36 * 3600, 86400, 4, 1) == pytest.approx(3 * 4 * 3600)
    assert theory.records_expired_by(20 * 3600, 86400, 4, 1) == 0.0
    assert theory.iterator_age_alarm_threshold(86400) == 43200
    assert theory.shared_read_throttle_share(7) == pytest.approx(2 / 7)
    assert theory.shared_read_throttle_share(5) == 0.0
    assert theory.shared_read_throttle_share(7, 1.0, 0.07) == pytest.approx(0.2481, abs=1e-4)


def test_burst_throttling_matches_theory_in_both_write_models():
    """400 sensors, 10 s on / 50 s off: 2,400 records/s in bursts against 1,000/s, no retries."""
    sc = {"name": "bursts", "duration": "3min", "seed": 1, "stream": {"shards": 1},
          "fleets": [{"name": "f", "sensors": 400, "rate": "1/s", "arrival": {"bursty": {"on": "10s", "off": "50s"}},
                      "record_size": "100B", "producer": {"retries": {"max_attempts": 1}}}]}
    window = kinesim.simulate(sc)["throttle_rate"]
    assert window == pytest.approx(theory.bursty_throttle_rate(400, 10, 50), abs=0.015)      # 0.5833
    bucket = kinesim.simulate(sc, overrides={"stream.limits": {"write_model": "token_bucket", "burst": "2s"}})
    # fluid: each burst loses (2,400 - 1,000) x 10 - 2,000 bucket tokens of its 24,000 records = 0.5
    assert bucket["throttle_rate"] == pytest.approx(theory.token_bucket_burst_throttle_rate(2400, 10, 50, 1000, 2000),
                                                    abs=0.015)


def test_the_known_figures_are_those_the_bundled_scenarios_give():
    """Every summary figure of every bundled scenario is one that expect checks know (so a typo
    in an optional component's figure is caught at load time), and the records_unflushed and
    records_buffered figures are there."""
    import pathlib

    from kinesim.scenario_expect import CONSUMER_SUMMARY_METRICS, OPTIONAL_SUMMARY_METRICS, SUMMARY_METRICS

    seen = set()
    for path in sorted(pathlib.Path(__file__).parents[1].glob("scenarios/*.yaml")):
        results = kinesim.simulate(path, overrides={"duration": "2min"} if "lake" in path.name else None)
        for name in results.summary_dict:
            if name.startswith("consumers."):
                assert name.rpartition(".")[2] in CONSUMER_SUMMARY_METRICS, (path.name, name)
            else:
                assert name in SUMMARY_METRICS or name in OPTIONAL_SUMMARY_METRICS, (path.name, name)
            seen.add(name)
    assert {"records_unflushed", "records_buffered", "cost_usd.emr", "firehose_records_delivered", "shards_max"} <= seen
