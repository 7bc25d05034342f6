"""Same scenario and seed, same traces; another seed, other draws; components do not share draws.

Each component draws from its own stream keyed by its name (:mod:`kinesim.rng`), so adding a
consumer must not change what the fleets measure.
"""
from __future__ import annotations

import copy

import pandas.testing as pdt
import pytest

import kinesim
from kinesim.results import TRACES

BASE = {
    "name": "determinism",
    "duration": "10s",
    "seed": 42,
    "stream": {"shards": 2},
    "fleets": [
        {"name": "a", "sensors": 2500, "rate": "1/s", "arrival": "poisson",
         "record_size": {"distribution": "lognormal", "mean": "300B", "sigma": 0.8},
         "partition_key": {"hot": {"keys": 2, "share": 0.4}},
         "producer": {"retries": {"max_attempts": 3, "jitter": "full"}}},
        {"name": "b", "sensors": 300, "rate": "2/s", "arrival": "periodic", "record_size": {"uniform": ["10B", "2KiB"]},
         "partition_key": "random", "producer": {"aggregation": True}},
    ],
    "consumers": [{"name": "c1", "poll_interval": "500ms", "processing_time": "100us"}],
    "trace": {"records": "all"},
}

FLEET_COLUMNS = ["fleet", "sensor", "partition_key", "size_bytes", "event_time"]


def scenario(**changes):
    s = copy.deepcopy(BASE)
    s.update(changes)
    return s


def assert_same_results(r1, r2):
    for name in TRACES:
        pdt.assert_frame_equal(getattr(r1, name), getattr(r2, name), check_exact=True, obj=name)
    assert r1.summary_dict.keys() == r2.summary_dict.keys()
    for key, value in r1.summary_dict.items():
        other = r2.summary_dict[key]
        assert value == other or (value != value and other != other), key  # NaN == NaN here


@pytest.mark.parametrize("write_model", ["window", "token_bucket"])
def test_same_seed_gives_identical_traces(write_model):
    spec = scenario(stream={"shards": 2, "limits": {"write_model": write_model}})
    r1, r2 = kinesim.simulate(spec), kinesim.simulate(copy.deepcopy(spec))
    assert r1["records_throttled"] > 0  # retries and their jitter are part of what must repeat
    assert r1["consumers.c1.records_processed"] > 0
    assert_same_results(r1, r2)


def test_same_seed_with_sampled_records_is_identical():
    spec = scenario(trace={"records": "sample", "sample_rate": 0.1})
    assert_same_results(kinesim.simulate(spec), kinesim.simulate(spec))


def test_a_different_seed_gives_different_records():
    r1 = kinesim.simulate(scenario(seed=42))
    r2 = kinesim.simulate(scenario(seed=43))
    e1, e2 = r1.records["event_time"], r2.records["event_time"]
    n = min(len(e1), len(e2))
    assert not e1.iloc[:n].reset_index(drop=True).equals(e2.iloc[:n].reset_index(drop=True))
    assert r1.summary_dict != r2.summary_dict


def test_adding_a_consumer_does_not_change_the_fleets_draws():
    base = kinesim.simulate(scenario(consumers=[]))
    more = kinesim.simulate(scenario(consumers=BASE["consumers"] + [
        {"name": "c2", "poll_interval": "1s", "start": "trim_horizon"}]))
    assert "processed_time.c2" in more.records.columns
    pdt.assert_frame_equal(base.records[FLEET_COLUMNS], more.records[FLEET_COLUMNS], check_exact=True)
    # consumers only read: what was written (and throttled) is unchanged too
    for column in ("ShardId", "SequenceNumber", "SubSequenceNumber", "arrival_time", "attempts"):
        pdt.assert_series_equal(base.records[column], more.records[column], check_exact=True)
    pdt.assert_frame_equal(base.producers, more.producers, check_exact=True)
    for key in ("records_produced", "records_accepted", "records_throttled", "records_dropped"):
        assert base[key] == more[key]


def test_consumer_draws_do_not_depend_on_other_consumers():
    """c1's worker phases come from its own stream: adding c2 leaves c1's processed times alone
    (the read limits are far from binding here)."""
    one = kinesim.simulate(scenario())
    two = kinesim.simulate(scenario(consumers=BASE["consumers"] + [{"name": "c2", "poll_interval": "1s"}]))
    assert two["read_throttled_calls"] == 0
    pdt.assert_series_equal(one.records["processed_time.c1"], two.records["processed_time.c1"], check_exact=True)


def test_simulate_seed_keyword_is_the_seed_override():
    spec = scenario(duration="5s")
    r3 = kinesim.simulate(spec, seed=3)
    assert r3.scenario.seed == 3
    assert_same_results(r3, kinesim.simulate(spec, overrides={"seed": 3}))
    assert_same_results(r3, kinesim.simulate(spec, overrides={"seed": 9, "stream.shards": 2}, seed=3))  # seed wins
    assert not r3.records.equals(kinesim.simulate(spec, seed=4).records)
    for bad, words in [(1.5, "seed: input should be a valid integer"), (-1, "seed: input should be greater than"),
                       (True, "seed: must be a whole number")]:
        with pytest.raises(kinesim.ScenarioError) as exc:
            kinesim.simulate(spec, seed=bad)
        assert str(exc.value).startswith(words), str(exc.value)
