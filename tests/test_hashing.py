"""MD5 routing and hash key ranges against independent computations and AWS's published values.

A partition key's hash key is its MD5 digest as a 128-bit big-endian integer; the record goes to
the shard whose inclusive range holds it (API_PutRecord.html). CreateStream splits 0..2**128-1
evenly: shard i starts at i * (2**128 // N).
"""
from __future__ import annotations

import bisect
import hashlib

import numpy as np
import pytest

import kinesim
from kinesim.hashing import Router, even_ranges, md5_hash_keys

SPACE = 2**128


def md5_int(key: str) -> int:
    return int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)


def locate(value: int, ranges: list[tuple[int, int]]) -> int:
    """Index of the inclusive range holding ``value``, by a linear scan (independent of Router)."""
    hits = [i for i, (start, end) in enumerate(ranges) if start <= value <= end]
    assert len(hits) == 1, f"{value} lies in {len(hits)} ranges"
    return hits[0]


def independent_even_starts(n: int) -> list[int]:
    return [i * (SPACE // n) for i in range(n)]


@pytest.mark.parametrize("n", range(1, 17))
def test_even_ranges_cover_the_key_space_without_gap_or_overlap(n):
    ranges = even_ranges(n)
    assert len(ranges) == n
    assert ranges[0][0] == 0
    assert ranges[-1][1] == SPACE - 1
    for (s0, e0), (s1, _) in zip(ranges, ranges[1:]):
        assert s0 <= e0
        assert s1 == e0 + 1  # no gap, no overlap
    assert [s for s, _ in ranges] == independent_even_starts(n)
    # the sizes add up to the whole space
    assert sum(e - s + 1 for s, e in ranges) == SPACE


def test_even_ranges_match_aws_values():
    # Two shards: the split at 2**127, as DescribeStream shows for a 2-shard stream.
    assert even_ranges(2) == [
        (0, 170141183460469231731687303715884105727),
        (170141183460469231731687303715884105728, 340282366920938463463374607431768211455),
    ]
    # Three shards: the starting hash keys AWS gives a new 3-shard stream.
    assert [s for s, _ in even_ranges(3)] == [
        0,
        113427455640312821154458202477256070485,
        226854911280625642308916404954512140970,
    ]
    assert even_ranges(3)[0][1] == 113427455640312821154458202477256070484
    assert even_ranges(3)[2][1] == 340282366920938463463374607431768211455


def test_md5_hash_keys_equal_hashlib():
    rng = np.random.default_rng(11)
    keys = [f"k-{v}" for v in rng.integers(0, 10**12, size=500)] + ["", "é-ünïcode", "x" * 256]
    hi, lo = md5_hash_keys(keys)
    for key, h, l in zip(keys, hi, lo):
        assert (int(h) << 64) | int(l) == md5_int(key)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16])
def test_router_routes_random_keys_to_the_range_holding_their_md5(n):
    rng = np.random.default_rng(n)
    keys = [rng.bytes(int(rng.integers(1, 40))).hex() for _ in range(3000)]
    ranges = even_ranges(n)
    router = Router([s for s, _ in ranges], list(range(n)))
    hi, lo = md5_hash_keys(keys)
    routed = router.route(hi, lo)
    expected = [locate(md5_int(k), ranges) for k in keys]
    assert routed.tolist() == expected
    if n > 1:  # the sample reaches every shard
        assert set(expected) == set(range(n))


def test_router_is_exact_at_range_boundaries():
    # Boundaries where the top 64 bits are equal and only the low bits decide.
    starts = [0, (5 << 64) + 10, (5 << 64) + 20, (6 << 64)]
    ranges = [(s, e - 1) for s, e in zip(starts, starts[1:] + [SPACE])]
    router = Router(starts, [0, 1, 2, 3])
    probes = []
    for s in starts[1:]:
        probes += [s - 1, s, s + 1]
    probes += [0, SPACE - 1]
    hi = np.array([p >> 64 for p in probes], dtype=np.uint64)
    lo = np.array([p & (2**64 - 1) for p in probes], dtype=np.uint64)
    assert router.route(hi, lo).tolist() == [locate(p, ranges) for p in probes]
    # sorted search gives the same answer
    assert router.route(hi, lo).tolist() == [bisect.bisect_right(starts, p) - 1 for p in probes]


@pytest.mark.parametrize("partition_key", ["sensor", "random", {"hot": {"keys": 2, "share": 0.3}}])
def test_simulated_records_land_on_the_shard_of_their_md5(partition_key):
    results = kinesim.simulate({
        "name": "routing",
        "duration": "3s",
        "seed": 5,
        "stream": {"shards": 5},
        "fleets": [{"name": "f", "sensors": 300, "rate": "2/s", "record_size": "50B", "partition_key": partition_key}],
        "trace": {"records": "all"},
    })
    shards = results.shards
    ranges = [(int(a), int(b)) for a, b in zip(shards["StartingHashKey"], shards["EndingHashKey"])]
    assert ranges == even_ranges(5)
    ids = shards["ShardId"].tolist()
    rec = results.records
    accepted = rec[rec["ShardId"].notna()]
    assert len(accepted) == results["records_accepted"] > 1000
    # one hashlib call per distinct key
    shard_of_key = {k: ids[locate(md5_int(k), ranges)] for k in accepted["partition_key"].unique()}
    expected = accepted["partition_key"].map(shard_of_key)
    assert (accepted["ShardId"] == expected).all()
    assert accepted["ShardId"].nunique() == 5
