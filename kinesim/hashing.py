"""Partition-key hashing and hash key ranges, as Kinesis does them.

A partition key's MD5 digest, read as a 128-bit unsigned big-endian integer, is its hash key; the
record goes to the open shard whose hash key range holds it. Source:
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html

Inside the simulator a hash key is held as two ``uint64`` arrays, ``hi`` (top 64 bits) and ``lo``.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from kinesim.aws import HASH_KEY_SPACE


def md5_hash_keys(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(hi, lo)`` uint64 arrays of shape ``(len(keys),)``: the MD5 hash key of each key.

    One ``hashlib`` call per distinct key; call it once per key table, never per record.
    """
    digests = b"".join(hashlib.md5(k.encode("utf-8")).digest() for k in keys)
    words = np.frombuffer(digests, dtype=">u8").astype(np.uint64).reshape(-1, 2)
    return words[:, 0].copy(), words[:, 1].copy()


def hash_key_int(hi: int, lo: int) -> int:
    """Join the two halves into the 128-bit hash key as a Python int."""
    return (int(hi) << 64) | int(lo)


def split_int(value: int) -> tuple[int, int]:
    """Split a 128-bit int into ``(hi, lo)`` 64-bit halves."""
    return value >> 64, value & (2**64 - 1)


def even_ranges(n: int) -> list[tuple[int, int]]:
    """Hash key ranges ``[(start, end), ...]`` (inclusive) that CreateStream gives ``n`` shards.

    Shard ``i`` starts at ``i * (2**128 // n)``; each range ends one below the next start and the
    last ends at ``2**128 - 1``. For n = 3 this gives ..., 113427455640312821154458202477256070485, ...
    as AWS does. Source: DescribeStream output of new streams, e.g. the example in
    https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-resharding-merge.html
    """
    if n < 1:
        raise ValueError(f"a stream needs at least one shard, got {n}")
    width = HASH_KEY_SPACE // n
    starts = [i * width for i in range(n)]
    ends = [s - 1 for s in starts[1:]] + [HASH_KEY_SPACE - 1]
    return list(zip(starts, ends))


class Router:
    """Maps hash keys to shard indices for a set of contiguous, non-overlapping ranges.

    ``starts`` are the ranges' inclusive starting hash keys (Python ints, sorted, the first 0),
    ``shard_ids`` the index of the shard owning each range. Exact for any 128-bit boundary.
    """

    def __init__(self, starts: Sequence[int], shard_ids: Sequence[int]):
        order = sorted(range(len(starts)), key=lambda i: starts[i])
        starts = [starts[i] for i in order]
        if not starts or starts[0] != 0:
            raise ValueError("the ranges must start at hash key 0")
        self.start_hi = np.array([s >> 64 for s in starts], dtype=np.uint64)
        self.start_lo = np.array([s & (2**64 - 1) for s in starts], dtype=np.uint64)
        self.shard_ids = np.asarray([shard_ids[i] for i in order], dtype=np.int64)

    def route(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Shard index (int64 array) for each hash key ``(hi, lo)``."""
        pos = np.searchsorted(self.start_hi, hi, side="right") - 1
        # Several ranges may start with the same top 64 bits: step back while the start is above.
        while True:
            over = (self.start_hi[pos] == hi) & (self.start_lo[pos] > lo)
            if not over.any():
                break
            pos = pos - over
        return self.shard_ids[pos]
