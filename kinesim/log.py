"""``ShardLog``: the records a shard holds, as growable numpy columns with absolute positions.

Row ``i`` of the log has the absolute position ``start + i``; positions never change, so a
consumer's iterator is just an int. Rows every reader has passed are dropped on compaction, so
memory holds the unread backlog, not the whole run. Columns (one row per *user* record):

``arrival`` (s, ApproximateArrivalTimestamp), ``event`` (s), ``size`` (bytes), ``seq``
(sequence number of the Kinesis record holding it), ``subseq`` (index inside a KPL aggregate),
``k_index`` (absolute index of its Kinesis record in the shard), ``kb_start`` / ``kb_end`` (shard
bytes before / through its Kinesis record, so a GetRecords cut is a ``searchsorted``), ``trace``, ``fleet``, ``sensor``, ``key``.
"""
from __future__ import annotations

import numpy as np

LOG_COLUMNS = {
    "arrival": np.float64,
    "event": np.float64,
    "size": np.int64,
    "seq": np.int64,
    "subseq": np.int32,
    "k_index": np.int64,
    "kb_start": np.int64,
    "kb_end": np.int64,
    "trace": np.int64,
    "fleet": np.int16,
    "sensor": np.int64,
    "key": np.int64,
}


class ShardLog:
    """Append-only columns with absolute positions ``[start, end)``."""

    def __init__(self, capacity: int = 1024):
        self.cols = {name: np.empty(capacity, dtype) for name, dtype in LOG_COLUMNS.items()}
        self.start = 0  # absolute position of row 0
        self.n = 0  # rows held
        self.total_k = 0  # Kinesis records ever appended
        self.total_kbytes = 0

    @property
    def end(self) -> int:
        """Absolute position just after the newest record (the shard's tip)."""
        return self.start + self.n

    def append(self, rows: dict[str, np.ndarray], k_first: np.ndarray, k_size: np.ndarray, keep_from: int) -> None:
        """Append user rows; ``k_first`` (bool) marks the first row of each Kinesis record and
        ``k_size`` (int64) holds its bytes on that row (0 elsewhere). Rows before ``keep_from`` may be dropped."""
        m = len(k_first)
        if m == 0:
            return
        if self.n + m > len(self.cols["arrival"]):
            self._compact(keep_from)
            if 2 * (self.n + m) > len(self.cols["arrival"]):  # keep compactions rare: amortised O(1)
                self._grow(2 * (self.n + m))
        a, b = self.n, self.n + m
        for name, values in rows.items():
            self.cols[name][a:b] = values
        local_k = np.cumsum(k_first, dtype=np.int64) - 1
        ends = self.total_kbytes + np.cumsum(k_size[k_first], dtype=np.int64)
        starts = np.concatenate(([self.total_kbytes], ends[:-1]))
        self.cols["k_index"][a:b] = self.total_k + local_k
        self.cols["kb_start"][a:b] = starts[local_k]
        self.cols["kb_end"][a:b] = ends[local_k]
        self.total_k += len(ends)
        self.total_kbytes = int(ends[-1])
        self.n = b

    def _compact(self, keep_from: int) -> None:
        drop = min(max(keep_from - self.start, 0), self.n)
        if drop == 0:
            return
        for col in self.cols.values():
            col[: self.n - drop] = col[drop : self.n]
        self.start += drop
        self.n -= drop

    def _grow(self, need: int) -> None:
        size = max(need, 2 * len(self.cols["arrival"]))
        for name, col in self.cols.items():
            new = np.empty(size, col.dtype)
            new[: self.n] = col[: self.n]
            self.cols[name] = new

    def release(self, keep_from: int) -> None:
        """Drop the rows before ``keep_from`` and give their memory back (a closed shard whose
        readers have passed them); positions do not change."""
        self._compact(keep_from)
        size = max(self.n, 16)
        if size < len(self.cols["arrival"]):
            self.cols = {name: col[:size].copy() for name, col in self.cols.items()}

    def column(self, name: str, a: int, b: int) -> np.ndarray:
        """View of column ``name`` over absolute positions ``[a, b)`` (must be held)."""
        return self.cols[name][a - self.start : b - self.start]

    def visible_end(self, now: float) -> int:
        """Position just after the newest record that has arrived by ``now``: a writer may append
        records of the current window ahead of time (:mod:`kinesim.writer`)."""
        if self.n == 0 or self.cols["arrival"][self.n - 1] <= now:
            return self.end
        return self.start + int(np.searchsorted(self.cols["arrival"][: self.n], now, side="right"))

    def k_before(self, pos: int) -> tuple[int, int]:
        """Kinesis records and bytes before absolute position ``pos`` (a record boundary)."""
        if pos >= self.end:
            return self.total_k, self.total_kbytes
        i = pos - self.start
        return int(self.cols["k_index"][i]), int(self.cols["kb_start"][i])

    def find_end(self, pos: int, max_k: int, max_bytes: int, tip: int | None = None) -> int:
        """Largest absolute end ``e <= tip`` such that rows ``[pos, e)`` hold at most ``max_k``
        Kinesis records and ``max_bytes`` bytes (at least one Kinesis record if any), cut at a
        record edge. ``tip`` defaults to the end of the log."""
        tip = self.end if tip is None else tip
        if pos >= tip:
            return pos
        k0, b0 = self.k_before(pos)
        i = pos - self.start
        k_index = self.cols["k_index"][i : tip - self.start]
        e_k = np.searchsorted(k_index, k0 + max_k, side="left")
        e_b = np.searchsorted(self.cols["kb_end"][i : tip - self.start], b0 + max_bytes, side="right")
        e = min(e_k, e_b)
        if e == 0:  # one Kinesis record larger than max_bytes: return it alone
            e = np.searchsorted(k_index, k0 + 1, side="left")
        return pos + int(e)

    def first_at_or_after(self, pos: int, t: float) -> int:
        """First absolute position ``>= pos`` whose arrival time is ``>= t``."""
        if pos >= self.end:
            return max(pos, self.end)
        i = pos - self.start
        return pos + int(np.searchsorted(self.cols["arrival"][i : self.n], t, side="left"))
