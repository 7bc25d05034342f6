"""The autoscaler: a CloudWatch-style alarm on one-minute periods acting through UpdateShardCount.

The bundled ``scenarios/autoscaler.yaml`` checks its own story (``expect:``, run by
``tests/test_check_cli.py``): one shard until 33 min, two until 36, four after, four calls.

Most runs lower the per-shard record limit (``stream.limits.write_records_per_s: 100``) so that a
few hundred records/s are enough to scale: the alarm works on shares of capacity, not on absolute
rates, so this changes nothing but the run time.
"""
from __future__ import annotations

import pytest

import kinesim
from kinesim.autoscaling import Autoscaler
from kinesim.errors import ScenarioError
from kinesim.scenario_scaling import Autoscaling, ScalingConfig


def seconds(ts, origin):
    return (ts - origin).dt.total_seconds().to_numpy()


def run(profile, shards=1, duration="12min", sensors=50, **autoscaling):
    return kinesim.simulate({
        "name": "autoscale", "duration": duration, "seed": 4,
        "stream": {"shards": shards, "updating_duration": "1min", "limits": {"write_records_per_s": 100}},
        "fleets": [{"name": "f", "sensors": sensors, "rate": "1/s", "arrival": "poisson", "record_size": "100B",
                    "profile": [{"at": at, "factor": f} for at, f in profile],
                    "producer": {"retries": {"max_attempts": 3}}}],
        "autoscaling": {"metric": "IncomingRecords", **autoscaling},
        "trace": {"records": "none"},
    })


def calls(r):
    ev = r.events
    t = seconds(ev["timestamp"], r.scenario.start_time)
    return [(float(x), k, e) for x, k, e in zip(t, ev["kind"], ev["error"]) if k in ("UpdateShardCount", "ReshardComplete")]


def throttle_rate(r, t0, t1=float("inf")):
    p = r.producers
    t = seconds(p["timestamp"], r.scenario.start_time)
    sel = p[(t >= t0) & (t < t1)]
    return sel["records_throttled"].sum() / max(sel["put_attempts"].sum(), 1)


UP_ONLY = {"scale_up": {"scale_threshold_pct": 75, "scale_after_mins": 2, "scale_pct": 100}, "scale_down": None}


def test_the_alarm_needs_n_full_periods_then_throttling_stops_within_two_minutes_of_active():
    # 50 records/s on one shard of 100/s, then 140/s from 5 min: 140% of capacity
    r = run([("0s", 1), ("5min", 2.8)], **UP_ONLY)
    # periods [5, 6) and [6, 7) min breach: the call at 7 min, the new shards at 8 min
    assert calls(r) == [(420.0, "UpdateShardCount", ""), (480.0, "ReshardComplete", "")]
    assert throttle_rate(r, 300, 420) > 0.2
    assert throttle_rate(r, 480 + 120) < 0.001  # 140 of 200 records/s: 70%, below the threshold too
    assert r["shards_final"] == 2


def test_a_surge_of_three_times_takes_two_calls_because_update_shard_count_at_most_doubles():
    up = {"scale_threshold_pct": 75, "scale_after_mins": 2, "scale_pct": 200}  # asks for 3x
    r = run([("0s", 1), ("5min", 6)], **{"scale_up": up, "scale_down": None})
    # 300 records/s: 1 → 2 (clipped from 3) at 7 min, ACTIVE at 8; the alarm restarts from the new
    # capacity: [8, 9), [9, 10) at 100% of 200/s → 2 → 4 at 10 min, ACTIVE at 11
    assert calls(r) == [(420.0, "UpdateShardCount", ""), (480.0, "ReshardComplete", ""),
                        (600.0, "UpdateShardCount", ""), (660.0, "ReshardComplete", "")]
    details = list(r.events.loc[r.events["kind"] == "Autoscaling", "detail"])
    assert details[0].endswith("UpdateShardCount 1 → 2") and details[1].endswith("UpdateShardCount 2 → 4")
    assert r["shards_final"] == 4


def test_scale_down_waits_for_its_cool_off_and_stops_at_min_shards():
    down = {"scale_threshold_pct": 25, "scale_after_mins": 2, "scale_pct": 50, "cool_off_mins": 5}
    r = run([("0s", 1)], shards=8, sensors=40, duration="15min", min_shards=2, scale_up=None, scale_down=down)
    # 40 of 800 records/s (5%): 8 → 4 at 2 min (ACTIVE 3), then 2 periods after 3 min and the
    # 5-minute cool-off after 3 min: 4 → 2 at 8 min (ACTIVE 9); at 14 min (20%, cool-off over)
    # min_shards holds it at 2
    assert calls(r) == [(120.0, "UpdateShardCount", ""), (180.0, "ReshardComplete", ""),
                        (480.0, "UpdateShardCount", ""), (540.0, "ReshardComplete", "")]
    notes = r.events.loc[r.events["kind"] == "Autoscaling", "detail"]
    assert notes.iloc[-1].endswith("already at min_shards (2)")
    assert r["shards_final"] == 2


def test_a_flapping_policy_runs_into_the_daily_limit_of_update_shard_count():
    profile = []
    for k in range(8):  # 3 minutes at 140/s, 3 minutes at 20/s, repeated
        profile += [(f"{6 * k}min", 2.8), (f"{6 * k + 3}min", 0.4)]
    r = run(profile, duration="48min",
            scale_up={"scale_threshold_pct": 75, "scale_after_mins": 1, "scale_pct": 100},
            scale_down={"scale_threshold_pct": 30, "scale_after_mins": 1, "scale_pct": 50})
    made = [c for c in calls(r) if c[1] == "UpdateShardCount"]
    accepted = [c for c in made if c[2] == ""]
    refused = [c for c in made if c[2]]
    assert len(accepted) == 10
    assert refused and all(c[2] == "LimitExceededException" for c in refused)
    assert refused[0][0] > accepted[-1][0]
    ev = r.events
    assert ev.loc[ev["error"] == "LimitExceededException", "detail"].str.contains("in the last 24 hours").all()
    assert r["reshard_calls"] == len(made) and r["reshard_calls_refused"] == len(refused)


def test_scaling_on_write_throttling():
    r = run([("0s", 1), ("3min", 2.6)], metric="WriteProvisionedThroughputExceeded", duration="8min",
            scale_up={"scale_threshold_pct": 1, "scale_after_mins": 1, "scale_count": 1}, scale_down=None)
    # throttled records from 3 min (about 30/s of a 100/s capacity): one period, a call at 4 min
    assert calls(r)[:2] == [(240.0, "UpdateShardCount", ""), (300.0, "ReshardComplete", "")]
    assert throttle_rate(r, 300 + 60) < 0.001


@pytest.mark.parametrize("n, cfg, direction, expected", [
    (4, {"scale_pct": 100}, "up", 8), (4, {"scale_pct": 300}, "up", 8), (5, {"scale_pct": 50}, "down", 3),
    (5, {"scale_count": 4}, "down", 3), (3, {"scale_count": 2}, "up", 5), (7, {"scale_pct": 100}, "up", 10),
])
def test_targets_stay_within_the_policy_and_update_shard_count_bounds(n, cfg, direction, expected):
    scaler = Autoscaler.__new__(Autoscaler)  # _target needs only the policy
    scaler.spec = Autoscaling(max_shards=10, min_shards=2)
    assert scaler._target(n, ScalingConfig(scale_threshold_pct=50, **cfg), direction) == expected


def test_autoscaling_validation():
    base = {"name": "v", "duration": "10min", "fleets": [{"name": "f", "sensors": 5, "rate": "1/s"}]}
    for extra, message in [
        ({"autoscaling": {}, "trace": {"period": "7s"}}, "trace.period: must divide 60 s"),
        ({"autoscaling": {}, "stream": {"mode": "on_demand"}}, "autoscaling: SplitShard, MergeShards and UpdateShardCount"),
        ({"autoscaling": {"scale_up": None, "scale_down": None}}, "autoscaling: give at least one"),
        ({"autoscaling": {"scale_up": {"scale_threshold_pct": 80, "scale_pct": 50, "scale_count": 2}}},
         "autoscaling.scale_up: give scale_pct or scale_count, got both"),
        ({"autoscaling": {"scale_up": {"scale_after_mins": 2}}}, "autoscaling.scale_up.scale_threshold_pct: required"),
        ({"autoscaling": {"scale_up": {"scale_threshold_pct": 20}, "scale_down": {"scale_threshold_pct": 80}}},
         "autoscaling: scale_up.scale_threshold_pct must be above scale_down.scale_threshold_pct"),
    ]:
        with pytest.raises(ScenarioError) as err:
            kinesim.load_scenario({**base, **extra})
        assert str(err.value).startswith(message), str(err.value)
    # defaults: amazon-kinesis-scaling-utils' sample configuration
    s = kinesim.load_scenario({**base, "autoscaling": {}})
    assert (s.autoscaling.scale_up.scale_threshold_pct, s.autoscaling.scale_up.scale_pct) == (75, 100)
    assert (s.autoscaling.scale_down.scale_threshold_pct, s.autoscaling.scale_down.cool_off_mins) == (25, 2)
