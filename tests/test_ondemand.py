"""On-demand capacity mode: 4 MiB/s at the start, shards split when they carry more than half
their limit, so capacity follows about twice the peak; a jump beyond that throttles until the
splits land; a hot key keeps throttling whatever the splits.

AWS: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html (4 MB/s at the
start) and the 2023 developer guide's how-do-i-size-a-stream.md (2x the previous peak, throttling
when traffic more than doubles within 15 minutes, splits of shards above 500 KB/s within 15 minutes).
"""
from __future__ import annotations

import pytest

import kinesim
from kinesim import aws
from kinesim.errors import ScenarioError

MiB = aws.MiB


def seconds(ts, origin):
    return (ts - origin).dt.total_seconds().to_numpy()


def on_demand(fleet, duration, **stream):
    return kinesim.simulate({
        "name": "on-demand", "duration": duration, "seed": 8,
        "stream": {"mode": "on_demand", **stream},
        "fleets": [{"name": "f", "arrival": "poisson", "partition_key": "sensor",
                    "producer": {"retries": {"max_attempts": 4, "base": "100ms", "max": "2s"}}, **fleet}],
        "trace": {"records": "none"},
    })


def throttle_rate(r, t0, t1=float("inf")):
    p = r.producers
    t = seconds(p["timestamp"], r.scenario.start_time)
    sel = p[(t >= t0) & (t < t1)]
    return sel["records_throttled"].sum() / max(sel["put_attempts"].sum(), 1)


def test_a_new_on_demand_stream_has_four_shards_of_the_usual_limits():
    s = kinesim.load_scenario({"name": "x", "duration": "1min", "stream": {"mode": "on_demand"},
                               "fleets": [{"name": "f", "sensors": 1, "rate": "1/s"}]})
    assert s.stream.shards == 4 and s.stream.on_demand.split_bytes_per_s == 500 * 1024
    assert s.stream.on_demand.split_delay == 15 * 60
    assert kinesim.load_scenario(s).stream == s.stream  # a saved scenario loads back the same


def test_a_steady_load_below_4_mib_per_s_never_throttles():
    # 3 MiB/s: 1,536 records/s of 2 KiB, about 768 KiB/s per shard; the shards are split after
    # 15 minutes (above 500 KiB/s) and the stream never throttles
    r = on_demand({"sensors": 1536, "rate": "1/s", "record_size": "2040B"}, "20min")
    inc = r.metrics.groupby("timestamp", observed=True)["IncomingBytes"].sum()
    assert inc.iloc[5:].mean() == pytest.approx(3 * MiB, rel=0.03)
    assert r["records_throttled"] == 0 and r["throttle_rate"] == 0
    assert int(r.metrics["WriteProvisionedThroughputExceeded"].sum()) == 0
    splits = r.events[r.events["kind"] == "ReshardComplete"]
    assert len(splits) == 4 and (seconds(splits["timestamp"], r.scenario.start_time) == 16 * 60).all()
    assert r["shards_final"] == 8


def test_a_jump_to_three_times_the_peak_throttles_until_the_splits_land():
    # 1,500 records/s (375 per shard: no split), then 4,500 from 5 min: more than the 4,000/s the
    # four shards take. Marked at 6 min, split at 6 + 3 = 9 min (split_delay shortened to keep the
    # run short), then 8 shards at about 560 records/s each (more than 500: marked again at 10 min)
    r = on_demand({"sensors": 1500, "rate": "1/s", "record_size": "200B",
                   "profile": [{"at": "0s", "factor": 1}, {"at": "5min", "factor": 3}]},
                  "12min", on_demand={"split_delay": "3min"})
    assert throttle_rate(r, 0, 300) == 0
    assert throttle_rate(r, 300, 540) > 0.2
    assert throttle_rate(r, 540) == 0
    ev = r.events
    t = seconds(ev["timestamp"], r.scenario.start_time)
    assert list(t[(ev["kind"] == "OnDemandSplit") & (t < 540)]) == [360.0] * 4
    assert list(t[ev["kind"] == "ReshardComplete"]) == [540.0] * 4
    sh = r.shards
    assert list(sh["ParentShardId"].iloc[4:]) == [f"shardId-{i:012d}" for i in (0, 0, 1, 1, 2, 2, 3, 3)]
    assert r["shards_final"] == 8


def test_capacity_settles_at_about_twice_the_peak_and_never_shrinks():
    r = on_demand({"sensors": 1500, "rate": "1/s", "record_size": "200B",
                   "profile": [{"at": "0s", "factor": 2}, {"at": "8min", "factor": 0.2}]},
                  "14min", on_demand={"split_delay": "2min"})
    # 3,000 records/s: 750 per shard, split at 1 + 2 = 3 min (8 shards, 375 each: no more splits);
    # the drop at 8 min merges nothing
    assert r["shards_final"] == 8 and r["records_throttled"] == 0
    assert (r.events["kind"] == "ReshardComplete").sum() == 4


def test_a_hot_key_above_one_shard_still_throttles_after_the_splits():
    r = on_demand({"sensors": 2000, "rate": "1/s", "record_size": "200B",
                   "partition_key": {"hot": {"keys": 1, "share": 0.6}}}, "10min", on_demand={"split_delay": "2min"})
    # 1,200 records/s on one key: its shard is split again and again and the child holding the key
    # is always over 1,000 records/s
    assert r["shards_final"] > 4
    m = r.metrics
    t = seconds(m["timestamp"], r.scenario.start_time)
    throttling = m[(t >= 60) & (m["WriteProvisionedThroughputExceeded"] > 0)]
    assert (throttling.groupby("timestamp")["ShardId"].nunique() == 1).all()  # one shard at a time: the key's
    assert throttling["ShardId"].nunique() >= 4  # 1, then its child 4, then 6, then 8 held the key
    assert throttle_rate(r, 480) > 0.05


def test_on_demand_refuses_provisioned_operations():
    base = {"name": "v", "duration": "10min", "stream": {"mode": "on_demand"}, "fleets": [{"name": "f", "sensors": 5, "rate": "1/s"}]}
    with pytest.raises(ScenarioError, match=r"^resharding: SplitShard, MergeShards and UpdateShardCount are for provisioned"):
        kinesim.load_scenario({**base, "resharding": [{"at": "1min", "action": "update_shard_count", "target": 8}]})
    with pytest.raises(ScenarioError, match=r"^stream: on_demand settings apply only with mode: on_demand"):
        kinesim.load_scenario({**base, "stream": {"on_demand": {"split_delay": "1min"}}})
