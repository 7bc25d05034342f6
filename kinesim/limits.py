"""Per-shard throughput limits, exact on batches.

Write limits (1 MiB/s and 1,000 records/s per shard, data + partition key; source:
https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html) are enforced on the
Kinesis records of a PutRecords flush in arrival order: within a shard, the records accepted are the
longest prefix whose cumulative count and bytes fit the capacity left (``np.cumsum``); the rest are
rejected one by one with ``ProvisionedThroughputExceededException`` (PutRecords' per-record
``ErrorCode`` and ``FailedRecordCount``, API_PutRecords.html). A record that does not fit rejects
the records behind it in the same shard and window even if a smaller one would fit.

Two capacity models:

* ``window`` (default): capacity is per one-second window aligned to whole seconds of simulated
  time, as AWS states its limits ("per second").
* ``token_bucket``: tokens refill continuously at the limit and hold at most ``burst`` seconds of
  it (default 1 s: 1,000 records and 1 MiB). This depth is kinesim's choice: AWS does not document
  a burst depth for shard writes.

Read limits (GetRecords: 5 calls/s and 2 MiB/s per shard shared by all consumers; a call may return
up to 10 MiB, after which calls in the next 5 s are throttled; source:
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html) use one-second windows
whose byte budget carries over: bytes returned beyond 2 MiB use up the following windows.
"""
from __future__ import annotations

import math

import numpy as np

from kinesim.compiled import compiled as compiled_twin


class WriteLimiter:
    """Write capacity of ``n`` shards (arrays indexed by shard), in records and bytes."""

    def __init__(self, n: int, records_per_s: int, bytes_per_s: int, model: str = "window", burst: float = 1.0):
        self.records_per_s = records_per_s
        self.bytes_per_s = bytes_per_s
        self.model = model
        self.burst = burst
        self.window = np.full(n, -1, dtype=np.int64)
        self.used_records = np.zeros(n, dtype=np.float64)
        self.used_bytes = np.zeros(n, dtype=np.float64)
        self.last = np.zeros(n, dtype=np.float64)

    def add_shards(self, k: int, now: float) -> None:
        """Make room for ``k`` new shards (full capacity)."""
        self.window = np.concatenate([self.window, np.full(k, -1, dtype=np.int64)])
        self.used_records = np.concatenate([self.used_records, np.zeros(k)])
        self.used_bytes = np.concatenate([self.used_bytes, np.zeros(k)])
        self.last = np.concatenate([self.last, np.full(k, now)])

    def available(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Records and bytes each shard can still accept at time ``now``."""
        if self.model == "window":
            w = math.floor(now + 1e-9)
            stale = self.window != w
            self.window[stale] = w
            self.used_records[stale] = 0.0
            self.used_bytes[stale] = 0.0
            return self.records_per_s - self.used_records, self.bytes_per_s - self.used_bytes
        # token bucket: ``used`` is the bucket's deficit below full
        elapsed = np.maximum(now - self.last, 0.0)
        self.last[:] = now
        self.used_records = np.maximum(self.used_records - elapsed * self.records_per_s, 0.0)
        self.used_bytes = np.maximum(self.used_bytes - elapsed * self.bytes_per_s, 0.0)
        return (
            self.burst * self.records_per_s - self.used_records,
            self.burst * self.bytes_per_s - self.used_bytes,
        )

    def consume(self, records: np.ndarray, nbytes: np.ndarray) -> None:
        """Take accepted records and bytes (arrays over shards) from the capacity."""
        self.used_records += records
        self.used_bytes += nbytes


def stable_order(shard: np.ndarray, n_shards: int) -> np.ndarray:
    """Stable argsort of shard indices; a 16-bit key lets numpy use its O(n) radix sort."""
    if n_shards <= np.iinfo(np.int16).max:
        return np.argsort(shard.astype(np.int16), kind="stable")
    return np.argsort(shard, kind="stable")


def accept_prefix(shard: np.ndarray, size: np.ndarray, avail_records: np.ndarray, avail_bytes: np.ndarray,
                  compiled: bool = False) -> np.ndarray:
    """Boolean mask of accepted Kinesis records.

    ``shard`` (int64, n) and ``size`` (bytes, int64, n) are in arrival order. Within each shard
    the longest prefix whose cumulative count ``<= avail_records[shard]`` and cumulative bytes
    ``<= avail_bytes[shard]`` is accepted. ``compiled`` picks the numba twin
    (:mod:`kinesim._kernels`; numpy when numba is missing).
    """
    kernel = compiled_twin("compiled_accept_prefix") if compiled else None
    if kernel is not None and len(shard):
        return kernel(shard, size, avail_records, avail_bytes)
    return _numpy_accept_prefix(shard, size, avail_records, avail_bytes)


def _numpy_accept_prefix(shard, size, avail_records, avail_bytes) -> np.ndarray:
    n = len(shard)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = stable_order(shard, len(avail_records))
    s = shard[order]
    sz = size[order]
    counts = np.bincount(s, minlength=len(avail_records))
    first = np.cumsum(counts) - counts  # index in sorted order where each shard starts
    rank = np.arange(1, n + 1) - first[s]
    csum = np.cumsum(sz)
    before = (csum - sz)[first[s]]
    ok_sorted = (rank <= avail_records[s]) & (csum - before <= avail_bytes[s])
    accepted = np.empty(n, dtype=bool)
    accepted[order] = ok_sorted
    return accepted


class ReadLimiter:
    """Shared GetRecords limits of one shard: calls per one-second window and bytes per second
    with carry-over (a 10 MiB response uses up the next five 2 MiB windows)."""

    __slots__ = ("calls_per_s", "bytes_per_s", "window", "calls", "debt")

    def __init__(self, calls_per_s: int, bytes_per_s: int):
        self.calls_per_s = calls_per_s
        self.bytes_per_s = bytes_per_s
        self.window = -1
        self.calls = 0
        self.debt = 0.0  # bytes charged to the current window and beyond

    def allow(self, now: float) -> bool:
        """Whether a GetRecords call at ``now`` is served (a throttled call costs nothing)."""
        w = math.floor(now + 1e-9)
        if w != self.window:
            if self.window >= 0:
                self.debt = max(0.0, self.debt - self.bytes_per_s * (w - self.window))
            self.window = w
            self.calls = 0
        return self.calls < self.calls_per_s and self.debt < self.bytes_per_s

    def charge(self, nbytes: int) -> None:
        """Count a served call that returned ``nbytes``."""
        self.calls += 1
        self.debt += nbytes


def put_records_calls(records: np.ndarray, nbytes: np.ndarray, accepted: np.ndarray, limits) -> tuple[np.ndarray, np.ndarray]:
    """PutRecords calls of flushes that sent ``records`` Kinesis records of ``nbytes`` bytes, of
    which ``accepted`` were accepted (arrays, one entry per flush): ``max(ceil(records / 500),
    ceil(bytes / 5 MiB))`` calls each (``limits.put_records_max_records`` / ``_max_bytes``,
    API_PutRecords.html; exact while the byte cap does not bind), and the failed ones (a call with a
    rejected record) as if each flush's accepted records came first. Returns ``(calls, failed)``."""
    calls = np.maximum(-(-records // limits.put_records_max_records), -(-nbytes // limits.put_records_max_bytes))
    failed = np.where(accepted < records, calls - accepted // limits.put_records_max_records, 0)
    return calls, failed


def greedy_groups(size: np.ndarray, max_bytes: int, max_count: int | None = None, breaks: np.ndarray | None = None) -> np.ndarray:
    """Pack items in order into consecutive groups of at most ``max_bytes`` and ``max_count``.

    Returns the group index (int64) of each item. An item larger than ``max_bytes`` gets a group
    of its own. ``breaks`` (bool, optional) forces a new group to start at the marked items.
    One Python step per group (PutRecords call or KPL aggregate), never per item.
    """
    n = len(size)
    group = np.empty(n, dtype=np.int64)
    if n == 0:
        return group
    csum = np.concatenate(([0], np.cumsum(size)))
    starts_forced = np.flatnonzero(breaks) if breaks is not None else np.empty(0, dtype=np.int64)
    i, g = 0, 0
    while i < n:
        j = int(np.searchsorted(csum, csum[i] + max_bytes, side="right")) - 1
        j = max(j, i + 1)
        if max_count is not None:
            j = min(j, i + max_count)
        nxt = np.searchsorted(starts_forced, i, side="right")
        if nxt < len(starts_forced):
            j = min(j, int(starts_forced[nxt]))
        group[i:j] = g
        i, g = j, g + 1
    return group
