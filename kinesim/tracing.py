"""The ``records`` trace: one row per sampled user record, filled in as it moves through the system.

Rows are chosen when records are generated (all, none, or a seeded Bernoulli sample from the
``trace`` random stream, so sampling never changes the fleets' draws). The sample is drawn as
geometric gaps between sampled records (the same distribution as one coin per record, with one
draw per sampled record instead of one per record). Memory grows with the
sample, not with the run.
"""
from __future__ import annotations

import numpy as np

from kinesim.batch import RecordBatch

DROP_REASONS = ("", "max_attempts", "record_ttl", "record_too_large")


class RecordTrace:
    """Growable columns for sampled records; ``rate`` is the sampling probability (0 = none)."""

    def __init__(self, rate: float, consumers: int, rng: np.random.Generator):
        self.rate = rate
        self.rng = rng
        self._skip = 0  # records to pass before the next sampled one
        self.n = 0
        self.consumers = consumers
        self.cols: dict[str, np.ndarray] = {}
        self._blocks: dict[str, np.ndarray] = {}
        self._alloc(1024 if rate > 0 else 0)

    def _alloc(self, size: int) -> None:
        spec = {
            "fleet": (np.int16, 0), "sensor": (np.int64, 0), "key": (np.int64, 0), "size": (np.int64, 0),
            "event_time": (np.float64, np.nan), "shard": (np.int32, -1), "seq": (np.int64, -1),
            "subseq": (np.int32, -1), "arrival_time": (np.float64, np.nan), "attempts": (np.int32, 0),
            "drop_reason": (np.int8, 0),
            "delivered": (np.float64, np.nan),  # Firehose: when the record's S3 object was delivered
        }
        for name, (dtype, fill) in spec.items():
            new = np.full(size, fill, dtype=dtype)
            if name in self.cols:
                new[: self.n] = self.cols[name][: self.n]
            self.cols[name] = new
        # the consumers' columns are the rows of two blocks (consumer_blocks)
        for prefix, (dtype, fill) in (("processed", (np.float64, np.nan)), ("expired", (np.bool_, False))):
            block = np.full((self.consumers, size), fill, dtype=dtype)
            for c in range(self.consumers):
                name = f"{prefix}.{c}"
                if name in self.cols:
                    block[c, : self.n] = self.cols[name][: self.n]
                self.cols[name] = block[c]
            self._blocks[prefix] = block

    def assign(self, batch: RecordBatch, in_place: bool = False) -> RecordBatch:
        """Give sampled records of a new batch a trace row; returns the batch with ``trace`` set
        (``in_place``: set in ``batch.trace`` itself, e.g. views of a window's rows)."""
        m = len(batch)
        if self.rate <= 0 or m == 0:
            return batch
        if self.rate >= 1:
            pick = np.arange(m)
        else:
            pick = self._sample(m)
        k = len(pick)
        if k == 0:
            return batch
        if self.n + k > len(self.cols["fleet"]):
            self._alloc(max(self.n + k, 2 * len(self.cols["fleet"])))
        rows = np.arange(self.n, self.n + k)
        for name in ("fleet", "sensor", "key", "size", "event_time"):
            self.cols[name][rows] = getattr(batch, name)[pick]
        self.n += k
        if in_place:
            batch.trace[pick] = rows
            return batch
        trace = batch.trace.copy()
        trace[pick] = rows
        return batch.replace(trace=trace)

    def _sample(self, m: int) -> np.ndarray:
        """Positions (int64, increasing) of the sampled records among the next ``m``: each with
        probability ``rate``, independently (the gaps between them are geometric; the gap that
        crosses the end carries over to the next batch)."""
        picks, pos = [], self._skip
        while pos < m:
            gaps = self.rng.geometric(self.rate, size=int((m - pos) * self.rate * 1.1) + 16)
            cand = pos + np.concatenate(([0], np.cumsum(gaps)))
            cut = int(np.searchsorted(cand, m))  # cand[:cut] < m
            cut = min(cut, len(cand) - 1)  # the last candidate starts the next round
            picks.append(cand[:cut])
            pos = int(cand[cut])
        self._skip = pos - m
        return np.concatenate(picks) if picks else np.zeros(0, np.int64)

    def put_outcome(self, batch: RecordBatch, accepted: np.ndarray, shard: np.ndarray, seq: np.ndarray,
                    subseq: np.ndarray, now: float | np.ndarray) -> None:
        """After a PutRecords attempt at ``now`` (a time, or one per record): attempts for every
        traced record, shard, position and arrival time for the accepted ones."""
        sel = np.flatnonzero(batch.trace >= 0)  # the traced records: few, so index them
        if not len(sel):
            return
        self.put_outcome_rows(batch.trace[sel], batch.attempts[sel] + 1, accepted[sel], shard[sel], seq[sel],
                              subseq[sel], now[sel] if isinstance(now, np.ndarray) else now)

    def put_outcome_rows(self, rows: np.ndarray, attempts: np.ndarray, accepted: np.ndarray, shard: np.ndarray,
                         seq: np.ndarray, subseq: np.ndarray | int, arrival: np.ndarray | float) -> None:
        """:meth:`put_outcome` of traced records only: their trace ``rows`` and, one per row, the
        attempts made, whether accepted, and for the accepted shard, sequence number, subsequence
        number and arrival time (arrays, or one value for all)."""
        self.cols["attempts"][rows] = attempts
        done = rows[accepted]
        self.cols["shard"][done] = shard[accepted]
        self.cols["seq"][done] = seq[accepted]
        self.cols["subseq"][done] = subseq[accepted] if isinstance(subseq, np.ndarray) else subseq
        self.cols["arrival_time"][done] = arrival[accepted] if isinstance(arrival, np.ndarray) else arrival

    def dropped(self, trace: np.ndarray, reason: int) -> None:
        """Records given up (their ``trace`` rows, -1 = not sampled) for DROP_REASONS[reason]."""
        t = trace[trace >= 0]
        self.cols["drop_reason"][t] = reason if len(t) else 0

    def processed(self, consumer: int, trace: np.ndarray, times: float | np.ndarray) -> None:
        """Records (trace rows, -1 = not sampled) processed by ``consumer`` at ``times`` (one
        time, or one per record)."""
        if self.n == 0:  # no record sampled yet
            return
        sel = trace >= 0
        rows = trace[sel]
        if len(rows):
            self.cols[f"processed.{consumer}"][rows] = times[sel] if isinstance(times, np.ndarray) else times

    def consumer_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``processed.<c>`` (float64) and ``expired.<c>`` (bool) columns as the rows of two
        arrays (consumers × capacity); valid until the trace grows."""
        return self._blocks["processed"], self._blocks["expired"]

    def delivered(self, trace: np.ndarray, time: float) -> None:
        """Records (trace rows, -1 = not sampled) delivered to S3 at ``time`` by Firehose."""
        self.cols["delivered"][trace[trace >= 0]] = time

    def expired(self, consumer: int, trace: np.ndarray) -> None:
        self.cols[f"expired.{consumer}"][trace[trace >= 0]] = True

    def column(self, name: str) -> np.ndarray:
        return self.cols[name][: self.n]
