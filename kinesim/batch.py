"""``RecordBatch``: user records as equal-length numpy columns (one row per user record).

Columns (all 1-D, length n):

=================  ========  ==============================================================
``event_time``     float64   s from scenario start: when the sensor measured
``fleet``          int16     index of the fleet in the scenario
``sensor``         int64     sensor index within the fleet
``key``            int64     index into the fleet's partition-key table (routes the record)
``size``           int64     bytes counted against the limits: data blob + partition key
``attempts``       int32     PutRecords attempts made so far
``ready_time``     float64   s: earliest next attempt (retry backoff)
``trace``          int64     row in the records trace, or -1 when not sampled
=================  ========  ==============================================================
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

COLUMNS: dict[str, np.dtype] = {
    "event_time": np.dtype(np.float64),
    "fleet": np.dtype(np.int16),
    "sensor": np.dtype(np.int64),
    "key": np.dtype(np.int64),
    "size": np.dtype(np.int64),
    "attempts": np.dtype(np.int32),
    "ready_time": np.dtype(np.float64),
    "trace": np.dtype(np.int64),
}


class RecordBatch:
    """An immutable set of equal-length columns; see the module docstring for the columns."""

    __slots__ = tuple(COLUMNS)

    def __init__(self, **columns: np.ndarray):
        n = None
        for name in COLUMNS:
            col = columns[name]
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"column {name} has {len(col)} rows, expected {n}")
            object.__setattr__(self, name, col)

    def __setattr__(self, name, value):
        raise AttributeError("RecordBatch is immutable; use replace()")

    def __len__(self) -> int:
        return len(self.event_time)

    @classmethod
    def empty(cls) -> "RecordBatch":
        return cls(**{name: np.empty(0, dtype) for name, dtype in COLUMNS.items()})

    def take(self, index: np.ndarray) -> "RecordBatch":
        """Rows selected by a boolean mask or an integer index array."""
        if index.dtype == np.bool_:
            kept = int(np.count_nonzero(index))
            if kept == len(index):
                return self
            if kept == 0:
                return RecordBatch.empty()
        return RecordBatch(**{name: getattr(self, name)[index] for name in COLUMNS})

    def since(self, start: int) -> "RecordBatch":
        """Rows ``start`` onwards, as views of these columns (no copy)."""
        return RecordBatch(**{name: getattr(self, name)[start:] for name in COLUMNS})

    def replace(self, **columns: np.ndarray) -> "RecordBatch":
        """A copy with some columns replaced."""
        values = {name: getattr(self, name) for name in COLUMNS}
        values.update(columns)
        return RecordBatch(**values)

    @staticmethod
    def concat(batches: Iterable["RecordBatch"]) -> "RecordBatch":
        parts = [b for b in batches if len(b)]
        if not parts:
            return RecordBatch.empty()
        if len(parts) == 1:
            return parts[0]
        return RecordBatch(**{name: np.concatenate([getattr(b, name) for b in parts]) for name in COLUMNS})

    @staticmethod
    def concat_ordered(batches: list["RecordBatch"], order: np.ndarray) -> "RecordBatch":
        """``concat(batches).take(order)`` for a permutation ``order`` of all rows, written as one
        scatter per part and column (no intermediate concatenation)."""
        n = len(order)
        if len(batches) == 1:
            return batches[0].take(order)
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        bounds = np.cumsum([0] + [len(b) for b in batches])
        columns = {}
        for name, dtype in COLUMNS.items():
            out = np.empty(n, dtype)
            for b, lo, hi in zip(batches, bounds[:-1], bounds[1:]):
                out[position[lo:hi]] = getattr(b, name)
            columns[name] = out
        return RecordBatch(**columns)
