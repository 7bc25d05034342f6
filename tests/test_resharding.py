"""Resharding: lineage as AWS records it, coverage of the hash key space, no write to a closed
shard, no record lost, per-key order for a consumer, and the control-plane limits.

The expected shard tables below were worked out by hand from AWS's rules (kinesim.resharding's
docstring): ids continue the stream's sequence, a split's lower child comes first, UpdateShardCount
sweeps the target ranges from hash key 0 (split a shard that reaches past the range's end, merge
pieces lower-first) and ends with the even ranges CreateStream gives. ``Q(i, n)`` is the i-th
boundary of n even ranges, ``i · ⌊2**128 / n⌋``; ``MAX = 2**128 - 1``.

The bundled scenarios (scale-out, hot-key-split, autoscaler, on-demand-surge) also carry ``expect:``
checks of what their descriptions promise, run by ``tests/test_check_cli.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinesim
from kinesim.errors import ScenarioError
from kinesim.metrics import PeriodGrid, ShardMetrics
from kinesim.resharding import ControlPlane, completion_time
from kinesim.scenario import Stream as StreamSpec
from kinesim.scenario_scaling import ReshardOp
from kinesim.stream import Stream

MAX = 2**128 - 1


def Q(i: int, n: int) -> int:
    return i * (2**128 // n)


def bare(n: int) -> tuple[Stream, ControlPlane]:
    """A stream of ``n`` even shards whose control plane applies each call at once."""
    stream = Stream(StreamSpec(shards=n), ShardMetrics(PeriodGrid(1.0, 1.0), n))
    return stream, ControlPlane(stream, lambda t, fn: fn(t))


def table(stream: Stream, first: int) -> dict:
    return {s.index: (s.parent and int(s.parent[-12:]), s.adjacent_parent and int(s.adjacent_parent[-12:]),
                      s.start_hash, s.end_hash) for s in stream.shards[first:]}


def open_ids(stream: Stream) -> list[int]:
    return [s.index for s in sorted(stream.open_shards(), key=lambda s: s.start_hash)]


def assert_covers_key_space(stream: Stream) -> None:
    shards = sorted(stream.open_shards(), key=lambda s: s.start_hash)
    assert shards[0].start_hash == 0 and shards[-1].end_hash == MAX
    for a, b in zip(shards, shards[1:]):
        assert a.end_hash + 1 == b.start_hash  # no gap, no overlap
    for s in shards:
        assert s.start_hash <= s.end_hash


# ------------------------------------------------------------------ hand-worked lineage
T3 = lambda j: Q(j, 3)  # noqa: E731
T5 = lambda j: Q(j, 5)  # noqa: E731
T7 = lambda j: Q(j, 7)  # noqa: E731
HAND = {
    # 1 → 3 takes two calls (one call may at most double): 1 → 2 splits 0 at 1/2 → 1, 2; 2 → 3
    # splits 1 at 1/3 → 3 (fills [0, 1/3)), 4; splits 2 at 2/3 → 5, 6; merges 4 + 5 → 7
    (1, 2, 3): ({1: (0, None, 0, Q(1, 2) - 1), 2: (0, None, Q(1, 2), MAX), 3: (1, None, 0, T3(1) - 1),
                 4: (1, None, T3(1), Q(1, 2) - 1), 5: (2, None, Q(1, 2), T3(2) - 1), 6: (2, None, T3(2), MAX),
                 7: (4, 5, T3(1), T3(2) - 1)}, [3, 7, 6]),
    # 4 → 3 (the published example: shards 1 and 2 split, 6, 9, 10 open)
    (4, 3): ({4: (1, None, Q(1, 4), T3(1) - 1), 5: (1, None, T3(1), Q(2, 4) - 1), 6: (0, 4, 0, T3(1) - 1),
              7: (2, None, Q(2, 4), T3(2) - 1), 8: (2, None, T3(2), Q(3, 4) - 1), 9: (5, 7, T3(1), T3(2) - 1),
              10: (8, 3, T3(2), MAX)}, [6, 9, 10]),
    # 4 → 7, in 28ths: old boundaries 0, 7, 14, 21; new 0, 4, 8, 12, 16, 20, 24
    (4, 7): ({4: (0, None, 0, T7(1) - 1), 5: (0, None, T7(1), Q(1, 4) - 1), 6: (1, None, Q(1, 4), T7(2) - 1),
              7: (1, None, T7(2), Q(2, 4) - 1), 8: (5, 6, T7(1), T7(2) - 1), 9: (7, None, T7(2), T7(3) - 1),
              10: (7, None, T7(3), Q(2, 4) - 1), 11: (2, None, Q(2, 4), T7(4) - 1), 12: (2, None, T7(4), Q(3, 4) - 1),
              13: (10, 11, T7(3), T7(4) - 1), 14: (12, None, T7(4), T7(5) - 1), 15: (12, None, T7(5), Q(3, 4) - 1),
              16: (3, None, Q(3, 4), T7(6) - 1), 17: (3, None, T7(6), MAX), 18: (15, 16, T7(5), T7(6) - 1)},
             [4, 8, 9, 13, 14, 18, 17]),
    # 8 → 5, in 40ths: old boundaries 0, 5, ..., 35; new 0, 8, 16, 24, 32
    (8, 5): ({8: (1, None, Q(1, 8), T5(1) - 1), 9: (1, None, T5(1), Q(2, 8) - 1), 10: (0, 8, 0, T5(1) - 1),
              11: (9, 2, T5(1), Q(3, 8) - 1), 12: (3, None, Q(3, 8), T5(2) - 1), 13: (3, None, T5(2), Q(4, 8) - 1),
              14: (11, 12, T5(1), T5(2) - 1), 15: (4, None, Q(4, 8), T5(3) - 1), 16: (4, None, T5(3), Q(5, 8) - 1),
              17: (13, 15, T5(2), T5(3) - 1), 18: (16, 5, T5(3), Q(6, 8) - 1), 19: (6, None, Q(6, 8), T5(4) - 1),
              20: (6, None, T5(4), Q(7, 8) - 1), 21: (18, 19, T5(3), T5(4) - 1), 22: (20, 7, T5(4), MAX)},
             [10, 14, 17, 21, 22]),
    # doubling splits every shard; halving merges neighbours
    (2, 4): ({2: (0, None, 0, Q(1, 4) - 1), 3: (0, None, Q(1, 4), Q(2, 4) - 1), 4: (1, None, Q(2, 4), Q(3, 4) - 1),
              5: (1, None, Q(3, 4), MAX)}, [2, 3, 4, 5]),
    (4, 2): ({4: (0, 1, 0, Q(1, 2) - 1), 5: (2, 3, Q(1, 2), MAX)}, [4, 5]),
}


@pytest.mark.parametrize("counts", list(HAND), ids=lambda c: "-".join(map(str, c)))
def test_update_shard_count_ids_parents_and_ranges_match_the_hand_worked_tables(counts):
    n, *targets = counts
    stream, plane = bare(n)
    for t, m in enumerate(targets):
        assert plane.update_shard_count(float(t), m) == ""
    expected, final = HAND[counts]
    assert table(stream, n) == expected
    assert open_ids(stream) == final
    assert_covers_key_space(stream)
    # the final ranges are CreateStream's even ranges for m shards
    assert [(s.start_hash, s.end_hash) for s in sorted(stream.open_shards(), key=lambda s: s.start_hash)] == \
        [(Q(j, m), Q(j + 1, m) - 1 if j + 1 < m else MAX) for j in range(m)]


def test_one_to_three_in_one_call_is_refused():
    stream, plane = bare(1)
    assert plane.update_shard_count(0.0, 3) == "LimitExceededException"
    assert "cannot scale up over double" in stream.events[-1].detail
    assert len(stream.shards) == 1 and stream.status == "ACTIVE"


def test_split_and_merge_lineage_and_sequence_numbers():
    """SplitShard at the middle, a merge of the upper child with the next shard, then
    UpdateShardCount back to even ranges; EndingSequenceNumber lies between parent and child."""
    stream, plane = bare(2)
    mid = (0 + Q(1, 2) - 1 + 1) // 2
    assert plane.split_shard(0.0, "shardId-000000000000") == ""
    assert table(stream, 2) == {2: (0, None, 0, mid - 1), 3: (0, None, mid, Q(1, 2) - 1)}
    assert plane.merge_shards(1.0, "shardId-000000000003", "shardId-000000000001") == ""
    assert table(stream, 4) == {4: (3, 1, mid, MAX)}
    assert plane.update_shard_count(2.0, 3) == ""
    # sweep: [0, T1): 2 ends at mid-1 < T1-1, 4 reaches past → split 4 at T1 → 5, 6; merge 2+5 → 7;
    # [T1, T2): split 6 at T2 → 8, 9 (8 fills it); [T2, MAX]: 9
    assert table(stream, 5) == {5: (4, None, mid, T3(1) - 1), 6: (4, None, T3(1), MAX), 7: (2, 5, 0, T3(1) - 1),
                                8: (6, None, T3(1), T3(2) - 1), 9: (6, None, T3(2), MAX)}
    assert open_ids(stream) == [7, 8, 9]
    for s in stream.shards:
        if s.closed_at is not None:
            assert s.ending_seq >= s.starting_seq
            children = [c for c in stream.shards if s.shard_id in (c.parent, c.adjacent_parent)]
            assert children and all(c.starting_seq > s.ending_seq for c in children)


@st.composite
def control_plane_calls(draw):
    calls = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["split", "merge", "update"]))
        calls.append((kind, draw(st.integers(0, 10_000)), draw(st.integers(1, 2**128 - 1))))
    return draw(st.integers(1, 6)), calls


@settings(max_examples=200, deadline=None)
@given(control_plane_calls())
def test_open_shards_always_cover_the_key_space(case):
    n, calls = case
    stream, plane = bare(n)
    for t, (kind, pick, key) in enumerate(calls):
        open_ = sorted(stream.open_shards(), key=lambda s: s.start_hash)
        shard = open_[pick % len(open_)]
        if kind == "split":
            plane.split_shard(float(t), shard.shard_id, shard.start_hash + 1 + key % max(shard.end_hash - shard.start_hash, 1)
                              if shard.end_hash > shard.start_hash else None)
        elif kind == "merge" and len(open_) > 1:
            nxt = open_[(pick % len(open_) + 1) % len(open_)]
            plane.merge_shards(float(t), shard.shard_id, nxt.shard_id)  # the wrap-around pair is refused
        else:
            plane.update_shard_count(float(t), 1 + pick % (2 * len(open_)))
        assert_covers_key_space(stream)
    ids = [s.shard_id for s in stream.shards]
    assert ids == [f"shardId-{i:012d}" for i in range(len(ids))]
    for s in stream.shards:
        for p in (s.parent, s.adjacent_parent):
            if p is not None:
                parent = stream.shards[int(p[-12:])]
                assert parent.closed_at is not None and parent.index < s.index


# ------------------------------------------------------------------ in a run
def fleet(sensors=1500, rate="1/s", **extra):
    return {"name": "f", "sensors": sensors, "rate": rate, "arrival": "poisson", "record_size": "100B", **extra}


@st.composite
def schedules(draw):
    """A valid schedule of up to 4 calls, the shards picked among those open at each call."""
    n = draw(st.integers(1, 3))
    stream, plane = bare(n)
    duration = draw(st.sampled_from(["1s", "2500ms", "4s"]))
    d = {"1s": 1.0, "2500ms": 2.5, "4s": 4.0}[duration]
    t, ops = 0.0, []
    for _ in range(draw(st.integers(1, 4))):
        t = completion_time(t, d) + draw(st.integers(0, 3)) + draw(st.sampled_from([0.0, 0.3, 0.75]))
        open_ = sorted(stream.open_shards(), key=lambda s: s.start_hash)
        i = draw(st.integers(0, len(open_) - 1))
        kind = draw(st.sampled_from(["split", "merge", "update_shard_count"]))
        if kind == "merge" and len(open_) > 1:
            a, b = open_[min(i, len(open_) - 2)], open_[min(i, len(open_) - 2) + 1]
            op = {"action": "merge", "shards": [a.shard_id, b.shard_id]}
        elif kind == "split" and open_[i].end_hash > open_[i].start_hash:
            op = {"action": "split", "shard": open_[i].shard_id}
        else:
            op = {"action": "update_shard_count", "target": draw(st.integers(max(1, -(-len(open_) // 2)), 2 * len(open_)))}
        ops.append({"at": f"{t:g}s", **op})
        plane.request(t, ReshardOp.model_validate({"at": 0, **op}), d)
    return {"name": "reshard-property", "duration": f"{int(t) + 6}s", "seed": draw(st.integers(0, 1000)),
            "stream": {"shards": n, "updating_duration": duration,
                       "limits": {"write_model": draw(st.sampled_from(["window", "token_bucket"]))}},
            "fleets": [fleet(sensors=draw(st.sampled_from([400, 1500, 2500])),
                             producer={"max_buffered_time": draw(st.sampled_from(["100ms", "300ms", "1s"])),
                                       "aggregation": draw(st.booleans())})],
            "consumers": [{"name": "c", "poll_interval": "200ms", "start": "trim_horizon"}],
            "resharding": ops, "trace": {"records": "all"}}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(schedules())
def test_no_record_is_written_to_a_closed_shard_and_none_is_lost(scenario):
    r = kinesim.simulate(scenario)
    s = r.summary_dict
    shards = r.shards.set_index("ShardId")
    acc = r.records[r.records["ShardId"].notna()]
    w = acc.merge(shards[["opened_at", "closed_at"]], left_on="ShardId", right_index=True)
    assert len(w) == len(acc)
    assert (w["arrival_time"] >= w["opened_at"]).all()
    assert ((w["arrival_time"] < w["closed_at"]) | w["closed_at"].isna()).all()
    # the metrics agree: nothing counted in a shard outside its open interval
    m = r.metrics.assign(ShardId=r.metrics["ShardId"].astype(str)).merge(
        shards[["opened_at", "closed_at"]], left_on="ShardId", right_index=True)
    outside = (m["timestamp"] < m["opened_at"].dt.floor("s")) | (m["timestamp"] >= m["closed_at"])
    assert m.loc[outside, "IncomingRecords"].sum() == 0
    # conservation, and the consumer reads every accepted record once (parents before children)
    assert s["records_produced"] == s["records_accepted"] + s["records_dropped"] + s["records_buffered"]
    assert s["kinesis_records_accepted"] == int(r.metrics["IncomingRecords"].sum())
    assert s["consumers.c.records_processed"] + s["consumers.c.backlog_records"] == s["records_accepted"]
    assert len(acc) == s["records_accepted"]
    assert_open_cover(r)


def assert_open_cover(r) -> None:
    op = r.shards[r.shards["closed_at"].isna()].assign(lo=lambda f: f["StartingHashKey"].map(int),
                                                       hi=lambda f: f["EndingHashKey"].map(int)).sort_values("lo")
    assert op["lo"].iloc[0] == 0 and op["hi"].iloc[-1] == MAX
    assert (op["lo"].to_numpy()[1:] == op["hi"].to_numpy()[:-1] + 1).all()
    assert r["shards_final"] == len(op)


def seconds(ts, origin):
    return (ts - origin).dt.total_seconds().to_numpy()


def test_per_key_order_holds_for_a_consumer_across_a_split_and_a_merge():
    r = kinesim.simulate({
        "name": "order", "duration": "50s", "seed": 9, "stream": {"shards": 2, "updating_duration": "2s"},
        "fleets": [fleet(sensors=300, rate="4/s", producer={"max_buffered_time": "200ms"})],
        "consumers": [{"name": "c", "poll_interval": "250ms", "max_records": 200,
                       "processing_time": {"per_record": "0.2ms"}}],
        "resharding": [{"at": "10s", "action": "split", "shard": "shardId-000000000000"},
                       {"at": "25s", "action": "merge", "shards": ["shardId-000000000003", "shardId-000000000001"]}],
        "trace": {"records": "all"},
    })
    origin = r.scenario.start_time
    rec = r.records[r.records["fate"] == "consumed"].sort_values(["partition_key", "SequenceNumber"])
    t = seconds(rec["processed_time.c"], origin)
    same_key = rec["partition_key"].to_numpy()[1:] == rec["partition_key"].to_numpy()[:-1]
    assert (np.diff(t)[same_key] >= 0).all()
    # not vacuous: most keys have records in a parent and in a child shard
    per_key = rec.groupby("partition_key")["ShardId"].nunique()
    assert (per_key >= 2).mean() > 0.9
    # the children waited for their parents (the pause): no child record read before its parents ended
    sh = r.shards.set_index("ShardId")
    for child, row in sh[sh["ParentShardId"].notna()].iterrows():
        parents = [p for p in (row["ParentShardId"], row["AdjacentParentShardId"]) if isinstance(p, str)]
        last_parent = rec[rec["ShardId"].isin(parents)]["processed_time.c"].max()
        first_child = rec[rec["ShardId"] == child]["processed_time.c"].min()
        assert first_child > last_parent
        assert (first_child - row["opened_at"]).total_seconds() >= 9.0  # parentShardPollIntervalMillis 10 s
    assert r["consumers.c.records_processed"] + r["consumers.c.backlog_records"] == r["records_accepted"]


# ------------------------------------------------------------------ control-plane limits
def run_ops(ops, shards=1, duration="40min", autoscaling=None, updating="30s"):
    spec = {"name": "limits", "duration": duration, "seed": 1, "stream": {"shards": shards, "updating_duration": updating},
            "fleets": [fleet(sensors=5)], "resharding": ops, "trace": {"records": "none"}}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return kinesim.simulate(spec)


def test_the_eleventh_update_shard_count_in_24_hours_is_refused():
    ops = [{"at": f"{2 * k + 1}min", "action": "update_shard_count", "target": 2 if k % 2 == 0 else 1} for k in range(11)]
    ev = run_ops(ops).events
    calls = ev[ev["kind"] == "UpdateShardCount"]
    assert list(calls["error"]) == [""] * 10 + ["LimitExceededException"]
    assert "in the last 24 hours" in calls["detail"].iloc[-1]
    assert (ev["kind"] == "ReshardComplete").sum() == 10


def test_a_jump_of_three_times_and_calls_while_updating_are_refused():
    r = run_ops([{"at": "1min", "action": "update_shard_count", "target": 6},
                 {"at": "2min", "action": "update_shard_count", "target": 4},
                 {"at": "130s", "action": "split", "shard": "shardId-000000000000"},
                 {"at": "3min", "action": "update_shard_count", "target": 1}], shards=2, duration="5min", updating="1min")
    ev = r.events[r.events["kind"] != "ReshardComplete"]
    assert list(zip(ev["kind"], ev["error"])) == [
        ("UpdateShardCount", "LimitExceededException"),  # 2 → 6: over double
        ("UpdateShardCount", ""),
        ("SplitShard", "ResourceInUseException"),  # the stream is UPDATING
        ("UpdateShardCount", "LimitExceededException"),  # 4 → 1: below half
    ]
    assert "cannot scale up over double" in ev["detail"].iloc[0]
    assert "below half" in ev["detail"].iloc[3]
    assert r["shards_final"] == 4


def test_structural_errors_are_caught_at_validation_with_the_yaml_path():
    base = {"name": "v", "duration": "10min", "stream": {"shards": 4}, "fleets": [fleet(sensors=5)]}
    cases = [
        ([{"at": "1min", "action": "merge", "shards": ["shardId-000000000000", "shardId-000000000002"]}],
         "resharding[0].shards: MergeShards at 60s: shardId-000000000000 and shardId-000000000002 are not adjacent"),
        ([{"at": "1min", "action": "split", "shard": "shardId-000000000009"}],
         "resharding[0].shard: SplitShard at 60s: Could not find shard shardId-000000000009"),
        ([{"at": "1min", "action": "split", "shard": "shardId-000000000001"},
          {"at": "5min", "action": "split", "shard": "shardId-000000000001"}],
         "resharding[1].shard: SplitShard at 300s: Shard shardId-000000000001 has already been merged or split"),
        ([{"at": "1min", "action": "split", "shard": "shardId-000000000000", "new_starting_hash_key": 0}],
         "resharding[0].new_starting_hash_key: SplitShard at 60s: NewStartingHashKey 0 is not inside"),
        ([{"at": "20min", "action": "update_shard_count", "target": 2}], "resharding[0].at: must be before the end"),
    ]
    for ops, message in cases:
        with pytest.raises(ScenarioError) as err:
            kinesim.load_scenario({**base, "resharding": ops})
        assert str(err.value).startswith(message), str(err.value)


def test_with_an_autoscaler_a_bad_call_is_a_failed_operation_in_events():
    r = run_ops([{"at": "1min", "action": "merge", "shards": ["shardId-000000000000", "shardId-000000000002"]},
                 {"at": "2min", "action": "split", "shard": "shardId-000000000007"}],
                shards=4, duration="3min", autoscaling={"scale_up": {"scale_threshold_pct": 75}})
    assert list(r.events["error"]) == ["InvalidArgumentException", "ResourceNotFoundException"]
    assert r["shards_final"] == 4


# ------------------------------------------------------------------ scale-out and the bundled scenarios
def test_throttling_stops_within_two_minutes_of_active_after_a_scale_out():
    r = kinesim.simulate("scenarios/scale-out.yaml", overrides={"consumers": "[]", "expect": "[]", "trace.records": "none"})
    origin = r.scenario.start_time
    done = r.events[r.events["kind"] == "ReshardComplete"]
    active = seconds(done["timestamp"], origin)[0]
    assert active == 240.0
    p = r.producers
    t = seconds(p["timestamp"], origin)
    before = p[t < 180]
    assert before["records_throttled"].sum() / before["put_attempts"].sum() > 0.2
    after = p[t >= active + 120]
    assert after["records_throttled"].sum() / after["put_attempts"].sum() < 0.001
    assert (r["shards_final"], r["shards_max"], r["reshard_calls"], r["reshard_calls_refused"]) == (4, 4, 1, 0)


def test_scale_out_scenario_shows_the_lineage_and_the_consumer_pause():
    r = kinesim.simulate("scenarios/scale-out.yaml", overrides={"trace.records": "none"})
    sh = r.shards
    assert list(sh["ShardId"]) == [f"shardId-{i:012d}" for i in range(6)]
    assert list(sh["ParentShardId"].iloc[2:]) == ["shardId-000000000000"] * 2 + ["shardId-000000000001"] * 2
    assert sh["EndingSequenceNumber"].iloc[:2].notna().all() and sh["EndingSequenceNumber"].iloc[2:].isna().all()
    c = r.consumers
    t = seconds(c["timestamp"], r.scenario.start_time)
    children = c["ShardId"].isin(sh["ShardId"].iloc[2:])
    assert c.loc[children & (t >= 240) & (t < 249), "records_processed"].sum() == 0
    assert c.loc[children & (t >= 250) & (t < 260), "records_processed"].sum() > 0
    # the waiting children's backlog and MillisBehindLatest grow during the pause
    waiting = c[children & (t >= 245) & (t < 250)]
    assert (waiting["backlog_records"] > 1000).all() and (waiting["MillisBehindLatest"] > 4000).all()
