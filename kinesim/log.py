"""``ShardLog``: the records a shard holds, as growable numpy columns with absolute positions.

Row ``i`` of the log has the absolute position ``start + i``; positions never change, so a
consumer's iterator is just an int. Rows every reader has passed are dropped on compaction, so
memory holds the unread backlog, not the whole run. Columns (one row per *user* record):

``arrival`` (s, ApproximateArrivalTimestamp), ``event`` (s), ``size`` (bytes), ``seq``
(sequence number of the Kinesis record holding it), ``subseq`` (index inside a KPL aggregate),
``k_index`` (absolute index of its Kinesis record in the shard), ``kb_start`` / ``kb_end`` (shard
bytes before / through its Kinesis record, so a GetRecords cut is a ``searchsorted``), ``trace``, ``fleet``, ``sensor``, ``key``.
A log may hold only some of them (always ``READ_COLUMNS``): a run stores what its readers read.
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
#: What GetRecords (:meth:`kinesim.stream.Stream.get_records`) and the consumer apps
#: (:mod:`kinesim.consumer`) read; only the Firehose reader (:mod:`kinesim.firehose`) reads the others.
READ_COLUMNS = ("arrival", "event", "k_index", "kb_start", "kb_end", "trace")
_K_COLUMNS = ("k_index", "kb_start", "kb_end")
_K_INDEX, _KB_END = READ_COLUMNS.index("k_index"), READ_COLUMNS.index("kb_end")  # rows of the block


def stored_columns(columns=None) -> tuple[str, ...]:
    """The columns a log keeps when its readers read ``columns`` (all when ``None``): those and
    ``READ_COLUMNS``, in ``LOG_COLUMNS`` order."""
    keep = LOG_COLUMNS.keys() if columns is None else set(READ_COLUMNS).union(columns)
    return tuple(name for name in LOG_COLUMNS if name in keep)


class ShardLog:
    """Append-only columns with absolute positions ``[start, end)``.

    The ``READ_COLUMNS`` are the rows of one 2-D int64 block (the float columns by their bits), so
    that a compiled writer fills a window's rows in place (:meth:`reserve`, :meth:`appended`); ``cols``
    maps every stored column's name to its array (views of the block's rows for those)."""

    def __init__(self, capacity: int = 1024, columns=None):
        """``columns``: the columns its readers read (:func:`stored_columns`), all by default."""
        self._block = np.empty((len(READ_COLUMNS), capacity), np.int64)
        self._extra = {name: np.empty(capacity, LOG_COLUMNS[name]) for name in stored_columns(columns)
                       if name not in READ_COLUMNS}
        self._views()
        self.start = 0  # absolute position of row 0
        self.n = 0  # rows held
        self.total_k = 0  # Kinesis records ever appended
        self.total_kbytes = 0
        self.last_arrival = 0.0  # arrival time of the newest row (meaningful while ``n > 0``)

    @property
    def end(self) -> int:
        """Absolute position just after the newest record (the shard's tip)."""
        return self.start + self.n

    def _views(self) -> None:
        """``cols`` after the block or the other columns were allocated anew."""
        self.cols = {name: self._block[i].view(LOG_COLUMNS[name]) for i, name in enumerate(READ_COLUMNS)}
        self.cols.update(self._extra)
        self._plain = tuple(name for name in self.cols if name not in _K_COLUMNS)  # copied as they are

    def _make_room(self, m: int, keep_from: int) -> None:
        """Room for ``m`` more rows: drop the rows before ``keep_from`` first, grow if still short."""
        if self.n + m > self._block.shape[1]:
            self._compact(keep_from)
            if 2 * (self.n + m) > self._block.shape[1]:  # keep compactions rare: amortised O(1)
                self._grow(2 * (self.n + m))

    @property
    def block(self) -> np.ndarray:
        """The ``READ_COLUMNS`` as the rows of one int64 array (floats by their bits), with room
        for more rows after :attr:`n`; a new array after the log grows or is released."""
        return self._block

    def reserve(self, m: int, keep_from: int) -> None:
        """Room for ``m`` more rows after :attr:`n` in :attr:`block` (rows before ``keep_from`` may
        be dropped first), for a writer that fills them in place and then calls :meth:`appended`."""
        self._make_room(m, keep_from)

    def appended(self, m: int, extra: dict[str, np.ndarray], a: int) -> None:
        """``m`` rows were written into :attr:`block` after :attr:`n` (room made by :meth:`reserve`;
        ``k_index``/``kb_start``/``kb_end`` continuing this shard's counts,
        :func:`kinesim._kernels_rows.compiled_log_write`): take them, with rows ``[a, a + m)`` of
        the other stored columns ``extra``."""
        if m <= 0:
            return
        n = self.n
        for name, own in self._extra.items():
            own[n : n + m] = extra[name][a : a + m]
        self.n = n + m
        self.total_k = int(self._block[_K_INDEX, n + m - 1]) + 1
        self.total_kbytes = int(self._block[_KB_END, n + m - 1])
        self.last_arrival = float(self.cols["arrival"][n + m - 1])

    def append(self, cols: dict[str, np.ndarray], a: int, b: int, keep_from: int) -> None:
        """Append rows ``[a, b)`` of ``cols`` (an array per stored column, e.g. a commit's rows of
        all shards); the rows of a Kinesis record are adjacent and ``a`` starts one. ``k_index``,
        ``kb_start`` and ``kb_end`` may count from any origin: they are shifted to continue this
        shard's counts. Rows before ``keep_from`` may be dropped."""
        m = b - a
        if m <= 0:
            return
        self._make_room(m, keep_from)
        n, own = self.n, self.cols
        for name in self._plain:
            own[name][n : n + m] = cols[name][a:b]
        k_shift = self.total_k - int(cols["k_index"][a])
        b_shift = self.total_kbytes - int(cols["kb_start"][a])
        np.add(cols["k_index"][a:b], k_shift, out=own["k_index"][n : n + m])
        np.add(cols["kb_start"][a:b], b_shift, out=own["kb_start"][n : n + m])
        np.add(cols["kb_end"][a:b], b_shift, out=own["kb_end"][n : n + m])
        self.n = n + m
        self.total_k = int(cols["k_index"][b - 1]) + k_shift + 1
        self.total_kbytes = int(cols["kb_end"][b - 1]) + b_shift
        self.last_arrival = float(cols["arrival"][b - 1])

    def _compact(self, keep_from: int) -> None:
        drop = min(max(keep_from - self.start, 0), self.n)
        if drop == 0:
            return
        self._block[:, : self.n - drop] = self._block[:, drop : self.n]
        for col in self._extra.values():
            col[: self.n - drop] = col[drop : self.n]
        self.start += drop
        self.n -= drop

    def _grow(self, need: int) -> None:
        size = max(need, 2 * self._block.shape[1])
        block = np.empty((len(READ_COLUMNS), size), np.int64)
        block[:, : self.n] = self._block[:, : self.n]
        self._block = block
        for name, col in self._extra.items():
            new = np.empty(size, col.dtype)
            new[: self.n] = col[: self.n]
            self._extra[name] = new
        self._views()

    def release(self, keep_from: int) -> None:
        """Drop the rows before ``keep_from`` and give their memory back (a closed shard whose
        readers have passed them); positions do not change."""
        self._compact(keep_from)
        size = max(self.n, 16)
        if size < self._block.shape[1]:
            self._block = self._block[:, :size].copy()
            self._extra = {name: col[:size].copy() for name, col in self._extra.items()}
            self._views()

    def column(self, name: str, a: int, b: int) -> np.ndarray:
        """View of column ``name`` over absolute positions ``[a, b)`` (must be held)."""
        return self.cols[name][a - self.start : b - self.start]

    def visible_end(self, now: float) -> int:
        """Position just after the newest record that has arrived by ``now``: a writer may append
        records of the current window ahead of time (:mod:`kinesim.writer`)."""
        n = self.n
        if n == 0 or self.last_arrival <= now:
            return self.start + n
        return self.start + int(self.cols["arrival"][:n].searchsorted(now, side="right"))

    def arrival_at(self, pos: int) -> float:
        """Arrival time (s) of the record at absolute position ``pos`` (must be held)."""
        i = pos - self.start
        if i == self.n - 1:
            return self.last_arrival
        return float(self.cols["arrival"][i])

    def k_before(self, pos: int) -> tuple[int, int]:
        """Kinesis records and bytes before absolute position ``pos`` (a record boundary)."""
        i = pos - self.start
        if i >= self.n:
            return self.total_k, self.total_kbytes
        return int(self.cols["k_index"][i]), int(self.cols["kb_start"][i])

    def read_span(self, pos: int, max_k: int, max_bytes: int, tip: int | None = None) -> tuple[int, int, int]:
        """What a GetRecords call from ``pos`` returns: the largest absolute end ``e <= tip`` such
        that rows ``[pos, e)`` hold at most ``max_k`` Kinesis records and ``max_bytes`` bytes (at
        least one Kinesis record if any), cut at a record edge; and the Kinesis records and bytes
        of those rows. ``tip`` (a record edge, e.g. :meth:`visible_end`) defaults to the end of the
        log. Returns ``(e, records, bytes)``."""
        end = self.start + self.n
        tip = end if tip is None else tip
        if pos >= tip:
            return pos, 0, 0
        cols, i, j = self.cols, pos - self.start, tip - self.start
        k_index, kb_end = cols["k_index"], cols["kb_end"]
        k0, b0 = int(k_index[i]), int(cols["kb_start"][i])
        if tip == end:
            k1, b1 = self.total_k, self.total_kbytes
        else:  # through the record ending at the tip
            k1, b1 = int(k_index[j - 1]) + 1, int(kb_end[j - 1])
        if k1 - k0 <= max_k and b1 - b0 <= max_bytes:  # all of it fits
            return tip, k1 - k0, b1 - b0
        e_k = k_index[i:j].searchsorted(k0 + max_k, side="left")
        e = min(e_k, kb_end[i:j].searchsorted(b0 + max_bytes, side="right"))
        if e == 0:  # one Kinesis record larger than max_bytes: return it alone
            e = k_index[i:j].searchsorted(k0 + 1, side="left")
        end = pos + int(e)
        k1, b1 = self.k_before(end)
        return end, k1 - k0, b1 - b0

    def first_at_or_after(self, pos: int, t: float) -> int:
        """First absolute position ``>= pos`` whose arrival time is ``>= t``."""
        i = pos - self.start
        if i >= self.n:
            return max(pos, self.start + self.n)
        arrival = self.cols["arrival"]
        if arrival[i] >= t:
            return pos  # the oldest is not before ``t`` (the column is non-decreasing)
        return pos + int(arrival[i : self.n].searchsorted(t, side="left"))
