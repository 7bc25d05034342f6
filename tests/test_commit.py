"""``Stream.route`` and ``Stream.commit`` against their definitions, record by record.

* Routing: a record goes to the open shard whose hash key range holds the MD5 hash key of its
  partition key (API_PutRecord.html): here a linear scan of the ranges per record, for two fleets'
  key tables and again after a split.
* Commit: accepted Kinesis records get sequence numbers in arrival-time order, then shard order,
  then arrival order; each shard's log holds the user records of its accepted Kinesis records in
  sequence order, with per-shard Kinesis-record indices and bytes before / through each record.
  Checked with times in order and shuffled, with and without KPL aggregates, over two windows.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kinesim.batch import RecordBatch
from kinesim.compiled import compiled
from kinesim.hashing import md5_hash_keys
from kinesim.log import LOG_COLUMNS
from kinesim.metrics import PeriodGrid, ShardMetrics
from kinesim.scenario import Stream as StreamSpec
from kinesim.stream import Stream


def batch(rng: np.random.Generator, n: int, fleet: np.ndarray | None = None, key: np.ndarray | None = None) -> RecordBatch:
    event = np.sort(rng.random(n))
    return RecordBatch(
        event_time=event, fleet=np.zeros(n, np.int16) if fleet is None else fleet.astype(np.int16),
        sensor=rng.integers(0, 1000, n), key=rng.integers(0, 1000, n) if key is None else key,
        size=rng.integers(1, 2000, n), attempts=np.zeros(n, np.int32), ready_time=event,
        trace=rng.integers(-1, 50, n),
    )


def stream(shards: int, period: float = 1.0) -> Stream:
    return Stream(StreamSpec(shards=shards), ShardMetrics(PeriodGrid(10.0, period), shards))


# ------------------------------------------------------------------ routing
def test_route_is_the_open_shard_holding_each_records_md5_hash_key():
    rng = np.random.default_rng(3)
    names = [[f"a-{i}" for i in range(40)], [f"b-{i}" for i in range(7)]]
    s = stream(3)
    s.set_partition_keys([md5_hash_keys(keys) for keys in names])
    fleet = rng.integers(0, 2, 500)
    key = np.where(fleet == 0, rng.integers(0, 40, 500), rng.integers(0, 7, 500))
    users = batch(rng, 500, fleet, key)

    def expected() -> list[int]:
        out = []
        for f, k in zip(fleet.tolist(), key.tolist()):
            h = int(hashlib.md5(names[f][k].encode()).hexdigest(), 16)
            out += [sh.index for sh in s.open_shards() if sh.start_hash <= h <= sh.end_hash]
        return out

    assert s.route(users).tolist() == expected()
    low, high = s.split_shard(s.shards[1], (s.shards[1].start_hash + s.shards[1].end_hash) // 2, 1.0)
    s.resharded([low, high], 1.0)
    routed = s.route(users)
    assert routed.tolist() == expected()
    assert {1} & set(routed.tolist()) == set() and {3, 4} <= set(routed.tolist())


# ------------------------------------------------------------------ commit
def reference_commit(next_seq, k_time, user_k, k_shard, k_size, acc_k):
    """Sequence number per Kinesis record (-1 if rejected) and per shard the (user row, Kinesis
    record) pairs in log order, by sorting."""
    acc = [k for k in range(len(k_shard)) if acc_k[k]]
    k_seq = np.full(len(k_shard), -1)
    for i, k in enumerate(sorted(acc, key=lambda k: (k_time[k], k_shard[k], k))):
        k_seq[k] = next_seq + i
    rows = {}
    for u in sorted(range(len(user_k)), key=lambda u: (k_seq[user_k[u]], u)):
        k = user_k[u]
        if acc_k[k]:
            rows.setdefault(int(k_shard[k]), []).append((u, k))
    return k_seq, rows


@pytest.mark.parametrize("aggregated", [False, True])
@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("period", [1.0, 0.25])  # a quarter second: a window spans several periods
def test_commit_numbers_counts_and_logs_records_as_defined(aggregated, shuffled, period):
    rng = np.random.default_rng(7 + aggregated + 2 * shuffled)
    n_shards = 4
    s = stream(n_shards, period)
    metrics = {name: np.zeros((s.metrics.grid.n, n_shards)) for name in
               ("IncomingRecords", "IncomingBytes", "WriteProvisionedThroughputExceeded")}
    units = billed = 0
    logged = {i: {name: [] for name in LOG_COLUMNS} for i in range(n_shards)}
    k_bytes = dict.fromkeys(range(n_shards), 0)
    k_count = dict.fromkeys(range(n_shards), 0)
    for window in (2.0, 3.0):
        n = 400
        users = batch(rng, n)
        per_k = rng.integers(1, 4, n) if aggregated else np.ones(n, np.int64)
        user_k = np.repeat(np.arange(n), per_k)[:n]
        n_k = int(user_k[-1]) + 1
        k_time = window + 0.1 * np.sort(rng.integers(0, 5, n_k))
        if shuffled:
            k_time = rng.permutation(k_time)
        k_shard = rng.integers(0, n_shards, n_k)
        k_size = np.bincount(user_k, weights=users.size).astype(np.int64) + (7 if aggregated else 0)
        if aggregated:
            k_size[0] = 30_000  # two PUT payload units
        acc_k = rng.random(n_k) < 0.7
        for k in range(n_k):
            p = int(k_time[k] / period + 1e-9)
            if acc_k[k]:
                metrics["IncomingRecords"][p, k_shard[k]] += 1
                metrics["IncomingBytes"][p, k_shard[k]] += k_size[k]
                units += -(-int(k_size[k]) // 25_600)
                billed += -(-int(k_size[k]) // 1024) * 1024
            else:
                metrics["WriteProvisionedThroughputExceeded"][p, k_shard[k]] += 1
        next_seq = s.next_seq
        accepted, seq, subseq = s.commit(k_time, users, user_k, k_shard, k_size, acc_k)

        k_seq, rows = reference_commit(next_seq, k_time, user_k, k_shard, k_size, acc_k)
        assert accepted.tolist() == acc_k[user_k].tolist()
        assert seq.tolist() == k_seq[user_k].tolist()
        first = np.searchsorted(user_k, user_k)  # first user row of each user's Kinesis record
        assert subseq.tolist() == (np.arange(n) - first).tolist()
        for shard, pairs in rows.items():
            col = logged[shard]
            done = set()
            for u, k in pairs:
                if k not in done:
                    done.add(k)
                    k_count[shard] += 1
                    k_bytes[shard] += int(k_size[k])
                for name, value in (("arrival", k_time[k]), ("event", users.event_time[u]), ("size", users.size[u]),
                                    ("seq", k_seq[k]), ("subseq", subseq[u]), ("k_index", k_count[shard] - 1),
                                    ("kb_start", k_bytes[shard] - k_size[k]), ("kb_end", k_bytes[shard]),
                                    ("trace", users.trace[u]), ("fleet", users.fleet[u]), ("sensor", users.sensor[u]),
                                    ("key", users.key[u])):
                    col[name].append(value)
    for name, expected in metrics.items():
        assert s.metrics.values[name].tolist() == expected.tolist(), name
    assert (s.metrics.put_payload_units, s.metrics.on_demand_billed_bytes) == (units, billed)
    for shard in range(n_shards):
        log = s.shards[shard].log
        assert log.start == 0 and (log.total_k, log.total_kbytes) == (k_count[shard], k_bytes[shard])
        for name in LOG_COLUMNS:
            assert log.column(name, 0, log.end).tolist() == np.asarray(logged[shard][name]).tolist(), name


@pytest.mark.skipif(compiled("compiled_log_write") is None, reason="numba is not installed")
@pytest.mark.parametrize("columns", [None, ("arrival",)])
def test_compiled_log_write_appends_what_append_logs_appends(columns):
    """The fused window's log append (compiled_log_write through Stream.append_block) leaves every
    stored column of every shard's log as append_logs does, over windows that grow and compact
    the logs, with all columns stored or only the read ones."""
    rng = np.random.default_rng(8)
    a = Stream(StreamSpec(shards=3), ShardMetrics(PeriodGrid(10.0, 1.0), 3), log_columns=columns)
    b = Stream(StreamSpec(shards=3), ShardMetrics(PeriodGrid(10.0, 1.0), 3), log_columns=columns)
    for w in range(6):
        users = batch(rng, int(rng.integers(0, 1500)))
        shard = rng.integers(0, 3, len(users))
        by_shard = np.argsort(shard, kind="stable")[: int(rng.integers(0, len(users) + 1))]  # accepted, grouped
        n_acc = np.bincount(shard[by_shard], minlength=3)
        times = np.round(w + np.arange(10) * 0.1, 9)
        when = rng.integers(0, 10, len(users))
        seq = np.arange(len(users)) + 1000 * w
        if len(by_shard):
            a.append_logs(users, by_shard, None, np.zeros(len(users), np.int32), n_acc, times[when], users.size, seq, False)
            kernel = compiled("compiled_log_write")
            units, increments = b.append_block(users, by_shard, n_acc, seq, lambda blocks, at, k, kb: kernel(
                blocks, at, by_shard, n_acc, when, times, users.event_time, users.size, users.trace, k, kb, 25_000, 1_000))
            sizes = users.size[by_shard]  # billing: 25 KB payload units, 1 KB on-demand increments
            assert (units, increments) == (int(np.sum(-(-sizes // 25_000))), int(np.sum(-(-sizes // 1_000))))
        for sa, sb in zip(a.shards, b.shards):
            la, lb = sa.log, sb.log
            assert (la.start, la.n, la.total_k, la.total_kbytes, la.last_arrival) == \
                   (lb.start, lb.n, lb.total_k, lb.total_kbytes, lb.last_arrival)
            assert set(la.cols) == set(lb.cols) and set(la.cols) <= set(LOG_COLUMNS)
            for name in la.cols:
                assert np.array_equal(la.column(name, la.start, la.end), lb.column(name, lb.start, lb.end)), name
                assert la.cols[name].dtype == lb.cols[name].dtype
            if w == 3:  # drop most rows, as when a closed shard's readers have passed them
                la.release(la.end - 10)
                lb.release(lb.end - 10)
