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
        """Add one (or ``weights``) per record at ``times`` (s) to metric ``name`` of ``shard``;
        ``single_time``: the caller knows that all ``times`` fall in one period."""
        if len(times) == 0:
            return
        values = self.values[name]
        if single_time:
            values[self.grid.index(float(times[0]))] += np.bincount(shard, weights=weights, minlength=values.shape[1])[: values.shape[1]]
            return
        p = self.grid.indices(times)
        if p[0] == p[-1] and p.min() == p.max():
            values[p[0]] += np.bincount(shard, weights=weights, minlength=values.shape[1])[: values.shape[1]]
        else:
            np.add.at(values, (p, shard), 1.0 if weights is None else weights)

    def add_put_payload_units(self, sizes: np.ndarray) -> None:
        """Count the PUT payload units of accepted Kinesis records of ``sizes`` bytes (each record
        is billed in 25 KB chunks) and their on-demand bytes (each rounded up to 1 KB)
        (https://aws.amazon.com/kinesis/data-streams/pricing/)."""
        if len(sizes):
            sizes = np.asarray(sizes, dtype=np.int64)
            ones, largest = int(np.count_nonzero(sizes)), int(sizes.max())  # one unit each if none is larger
            unit, inc = PUT_PAYLOAD_UNIT_BYTES, ON_DEMAND_BILLING_INCREMENT
            self.add_put_payload(ones if largest <= unit else int(np.sum(-(-sizes // unit))),
                                 ones if largest <= inc else int(np.sum(-(-sizes // inc))))

    def add_put_payload(self, units: int, increments: int) -> None:
        """Count PUT payload units and on-demand billing increments (of ``ON_DEMAND_BILLING_INCREMENT``
        bytes) counted elsewhere (:func:`kinesim._kernels_rows.compiled_log_write`)."""
        self.put_payload_units += units
        self.on_demand_billed_bytes += increments * ON_DEMAND_BILLING_INCREMENT

    def add_one(self, name: str, t: float, shard: int, value: float) -> None:
        self.values[name][self.grid.index(t), shard] += value

    def add_read(self, t: float, shard: int, records: int, nbytes: int, age_ms: float) -> None:
        """A served GetRecords call at ``t`` that returned ``records`` Kinesis records of
        ``nbytes`` bytes, the last ``age_ms`` old: ``OutgoingRecords``, ``OutgoingBytes`` and the
        maximum ``GetRecords.IteratorAgeMilliseconds``."""
        values, p = self.values, self.grid.index(t)
        if records:
            values["OutgoingRecords"][p, shard] += records
            values["OutgoingBytes"][p, shard] += nbytes
        ages = values["GetRecords.IteratorAgeMilliseconds"]
        if not age_ms <= ages[p, shard]:  # NaN-aware: NaN means no call yet in this period
            ages[p, shard] = age_ms


class LatencyHistogram:
    """Counts of latencies (s) in log-spaced bins from 1e-4 s to 1e8 s, 500 bins per decade.

    Quantiles are exact to within half a bin (0.23%); latencies under 0.1 ms fall in bin 0.
    Latencies wait in a fixed buffer and are binned ``BUFFER`` at a time, in place: the buffers
    stay in cache and no memory is allocated per latency.
    """

    PER_DECADE = 500
    LOW = -4.0
    DECADES = 12
    BUFFER = 1 << 15

    def __init__(self):
        self.counts = np.zeros(self.PER_DECADE * self.DECADES + 1, dtype=np.int64)
        self.total = 0
        self._waiting = np.empty(self.BUFFER)  # latencies not binned yet: ``_waiting[:_n]``
        self._bins = np.empty(self.BUFFER, dtype=np.int32)
        self._n = 0

    def add(self, latency: np.ndarray) -> None:
        """Count latencies (s)."""
        latency = np.asarray(latency)
        n = len(latency)
        if latency.dtype != np.float64 or n > self.BUFFER:
            self._count(np.maximum(latency, 10.0**self.LOW))
        elif n:
            self._free(n)[:] = latency
            self._n += n

    def add_since(self, done: float | np.ndarray, event: np.ndarray) -> None:
        """Count the latencies ``done - event`` (s): ``done`` is one time or one per event."""
        n = len(event)
        if n > self.BUFFER:
            self._count(done - event)
        elif n:
            np.subtract(done, event, out=self._free(n))
            self._n += n

    def _free(self, n: int) -> np.ndarray:
        """The next ``n`` (<= ``BUFFER``) free places of the buffer, binning what waits if needed."""
        if self._n + n > self.BUFFER:
            self._bin()
        return self._waiting[self._n : self._n + n]

    def _bin(self) -> None:
        if self._n:
            self._count(self._waiting[: self._n])
            self._n = 0

    def _count(self, x: np.ndarray) -> None:
        """Bin the latencies ``x`` (float, overwritten): bin ``int((log10(max(x, 1e-4)) + 4) * 500)``,
        the last bin also holding all above it."""
        low = 10.0**self.LOW
        if len(x) and not x.min() >= low:  # skip the no-op (a NaN fails the test too)
            np.maximum(x, low, out=x)
        np.log10(x, out=x)
        np.subtract(x, self.LOW, out=x)
        np.multiply(x, self.PER_DECADE, out=x)
        # any finite latency's bin fits int32 (at most ~156,000); converting to it is faster than to int64
        b = self._bins[: len(x)] if len(x) <= self.BUFFER else np.empty(len(x), dtype=np.int32)
        np.copyto(b, x, casting="unsafe")  # as ``astype``: truncation toward zero
        per_bin, last = np.bincount(b), len(self.counts) - 1
        if len(per_bin) > last:
            self.counts[last] += per_bin[last:].sum()
            per_bin = per_bin[:last]
        self.counts[: len(per_bin)] += per_bin
        self.total += len(x)

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
