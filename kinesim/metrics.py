"""Fixed-size per-period recorders: memory grows with periods × components, never with records.

* :class:`ShardMetrics`: per period and shard, the CloudWatch shard-level metrics (namespace
  AWS/Kinesis, https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html):
  ``IncomingBytes``, ``IncomingRecords``, ``WriteProvisionedThroughputExceeded`` (Kinesis records
  rejected), ``ReadProvisionedThroughputExceeded`` (GetRecords calls throttled), ``OutgoingBytes``,
  ``OutgoingRecords`` (sums) and ``GetRecords.IteratorAgeMilliseconds`` (maximum over calls).
* :class:`LatencyHistogram`: log-spaced bins (0.46% wide) for event-to-processed latency quantiles.
"""
from __future__ import annotations

import numpy as np

from kinesim.aws import METRIC_NAMES, ON_DEMAND_BILLING_INCREMENT, PUT_PAYLOAD_UNIT_BYTES

SUM_METRICS = tuple(m for m in METRIC_NAMES if m != "GetRecords.IteratorAgeMilliseconds")


class PeriodGrid:
    """Maps simulated time (s) to a period index in ``[0, n)``."""

    def __init__(self, duration: float, period: float):
        self.period = period
        self.n = max(1, int(np.ceil(duration / period - 1e-9)))

    def index(self, t: float) -> int:
        return min(int(t / self.period + 1e-9), self.n - 1)

    def indices(self, t: np.ndarray) -> np.ndarray:
        """Period index (int64) of each time in ``t``."""
        return np.minimum((t / self.period + 1e-9).astype(np.int64), self.n - 1)


class ShardMetrics:
    """Per-period, per-shard counters named as CloudWatch names them (float64 arrays)."""

    def __init__(self, grid: PeriodGrid, shards: int):
        self.grid = grid
        self.values = {m: np.zeros((grid.n, shards)) for m in METRIC_NAMES}
        self.values["GetRecords.IteratorAgeMilliseconds"][:] = np.nan
        #: PUT payload units of the accepted Kinesis records, and their bytes rounded up to 1 KB
        #: each (on-demand data in) (billing, :mod:`kinesim.cost`).
        self.put_payload_units = 0
        self.on_demand_billed_bytes = 0

    def add_shards(self, k: int) -> None:
        for name, arr in self.values.items():
            fill = np.nan if name == "GetRecords.IteratorAgeMilliseconds" else 0.0
            self.values[name] = np.concatenate([arr, np.full((self.grid.n, k), fill)], axis=1)

    def add(self, name: str, t: float, per_shard: np.ndarray) -> None:
        """Add an array over shards (length <= shards) to metric ``name`` at time ``t``."""
        self.values[name][self.grid.index(t), : len(per_shard)] += per_shard

    def add_records(self, name: str, times: np.ndarray, shard: np.ndarray, weights: np.ndarray | None, single_time: bool) -> None:
        """Add one (or ``weights``) per record at ``times`` (s) to metric ``name`` of ``shard``."""
        if len(times) == 0:
            return
        values = self.values[name]
        p = self.grid.indices(times)
        if single_time or p[0] == p[-1] and p.min() == p.max():
            values[p[0]] += np.bincount(shard, weights=weights, minlength=values.shape[1])[: values.shape[1]]
        else:
            np.add.at(values, (p, shard), 1.0 if weights is None else weights)

    def add_put_payload_units(self, sizes: np.ndarray) -> None:
        """Count the PUT payload units of accepted Kinesis records of ``sizes`` bytes: each record
        is billed in 25 KB chunks (https://aws.amazon.com/kinesis/data-streams/pricing/)."""
        if len(sizes):
            sizes = np.asarray(sizes, dtype=np.int64)
            self.put_payload_units += int(np.sum(-(-sizes // PUT_PAYLOAD_UNIT_BYTES)))
            self.on_demand_billed_bytes += int(np.sum(-(-sizes // ON_DEMAND_BILLING_INCREMENT))) * ON_DEMAND_BILLING_INCREMENT

    def add_one(self, name: str, t: float, shard: int, value: float) -> None:
        self.values[name][self.grid.index(t), shard] += value

    def max_one(self, name: str, t: float, shard: int, value: float) -> None:
        row = self.values[name][self.grid.index(t)]
        if not value <= row[shard]:  # NaN-aware: NaN means no call yet in this period
            row[shard] = value


class LatencyHistogram:
    """Counts of latencies (s) in log-spaced bins from 1e-4 s to 1e8 s, 500 bins per decade.

    Quantiles are exact to within half a bin (0.23%); latencies under 0.1 ms fall in bin 0.
    """

    PER_DECADE = 500
    LOW = -4.0
    DECADES = 12

    def __init__(self):
        self.counts = np.zeros(self.PER_DECADE * self.DECADES + 1, dtype=np.int64)
        self.total = 0
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, latency: np.ndarray) -> None:
        """Count latencies (s). Binning is deferred and done in large batches."""
        if len(latency) == 0:
            return
        self._pending.append(latency)
        self._pending_n += len(latency)
        if self._pending_n >= 1 << 18:
            self._bin()

    def _bin(self) -> None:
        if not self._pending:
            return
        latency = np.concatenate(self._pending)
        self._pending, self._pending_n = [], 0
        x = np.log10(np.maximum(latency, 10.0**self.LOW))
        b = np.minimum(((x - self.LOW) * self.PER_DECADE).astype(np.int64), len(self.counts) - 1)
        self.counts += np.bincount(b, minlength=len(self.counts))
        self.total += len(latency)

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0..1) in seconds, or NaN when empty (bin centre, geometric)."""
        self._bin()
        if self.total == 0:
            return float("nan")
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, q * self.total, side="left"))
        b = min(b, len(self.counts) - 1)
        if b == 0:
            return 0.0
        return float(10.0 ** (self.LOW + (b + 0.5) / self.PER_DECADE))

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)``: counts per bin and the bin edges in seconds (length bins + 1)."""
        self._bin()
        return self.counts, self.edges()

    def edges(self) -> np.ndarray:
        """Bin edges in seconds (length bins + 1)."""
        return 10.0 ** (self.LOW + np.arange(len(self.counts) + 1) / self.PER_DECADE)
