"""The GetRecords polls of all polling consumers, run in compiled passes between write windows.

A SimPy worker per shard and consumer (:class:`kinesim.consumer.Worker`) costs a timeout and
about twenty Python calls per GetRecords call; at a poll per second on 8 shards by 2 consumers
that is a fifth of a large run. When nothing but the producers' write window changes what a poll
sees (no Firehose reader, no resharding, autoscaling or on-demand scaling: :func:`applies`), the
polls need no SimPy event of their own: just before each write window at ``T``
(:class:`kinesim.writer.ProducerGroup`'s ``before_window``), :meth:`FusedPolls.catch_up` runs
every poll due before ``T`` in one compiled pass (:func:`kinesim._kernels_reads.compiled_polls`),
and once more at the end of the run. A poll sees the logs as the SimPy worker would: the writer
appends a window's rows at ``T`` and they become visible at their arrival times.

Ties are ordered as SimPy orders them: two polls of one shard at the same time by when their
timeouts were made, and a poll at exactly ``T`` before the window only if its timeout was made
before the writer's (in an earlier pass). The results are those of the SimPy workers, bit for
bit (``tests/test_consumer_fused.py``); with the compiled kernels off, the workers run.
"""
from __future__ import annotations

import numpy as np

from kinesim.compiled import compiled

# Rows of the kernel's state arrays (:func:`kinesim._kernels_reads.compiled_polls` reads them from here)
POS, BORN, SEQ = 0, 1, 2  # per worker (int64 [3, apps, shards]): position, pass that scheduled its poll, order
WINDOW, CALLS, NEXT_SEQ = 0, 1, 2  # per shard (int64 [3, shards]): the read limiter's window and calls, next order
PROCESSED, EXPIRED, GET_CALLS, THROTTLED = 0, 1, 2, 3  # per-app counters (int64 [apps, 4])
BACKLOG, BEHIND, AGE = 0, 1, 2  # per-app per-period floats (float64 [3, apps, periods, shards])

#: Latencies a pass buffers per app before it stops to bin them (more when one call returns more).
_LATENCY_BUFFER = 1 << 15
#: Limits above this lose exactness in the kernel's float64 arithmetic: such runs use the workers.
_EXACT_INT = 2**53


def applies(sim) -> bool:
    """Whether :class:`FusedPolls` can run the polls of ``sim`` (a :class:`kinesim.simulation.Simulation`):
    compiled kernels on, some consumer, and nothing else reading the shards or changing them."""
    s, limits = sim.scenario, sim.scenario.stream.limits
    return (sim.writer.compiled and bool(sim.consumers) and sim.firehose is None and not s.resharding
            and s.autoscaling is None and s.stream.mode != "on_demand"
            and max(limits.get_records_max_bytes, limits.read_bytes_per_s, limits.read_calls_per_s) < _EXACT_INT
            and compiled("compiled_polls") is not None)


class FusedPolls:
    """The workers of ``apps`` (:class:`kinesim.consumer.ConsumerApp`, all on the shards of
    ``stream``), polled by :meth:`catch_up` instead of SimPy. Owns the workers' state (next poll,
    position) and the shards' read limiters while the run lasts; the apps' counters, traces and
    the workers' positions are kept up to date after every pass."""

    def __init__(self, apps, stream, metrics, trace, retention: float):
        self.apps, self.stream, self.trace = apps, stream, trace
        self.kernel = compiled("compiled_polls")
        self.shards = stream.open_shards()
        n_apps, n_shards = len(apps), len(self.shards)
        opened = [app.open_workers() for app in apps]  # the same workers and draws as ConsumerApp.start
        self.workers = [w for workers, _ in opened for w in workers]
        self.t_next = np.array([phases for _, phases in opened], dtype=np.float64).reshape(n_apps, n_shards)
        self.worker = np.zeros((3, n_apps, n_shards), np.int64)
        self.worker[POS] = np.array([w.position for w in self.workers], np.int64).reshape(n_apps, n_shards)
        # SimPy's order of the first timeouts: app by app (the writer's came first)
        self.worker[SEQ] = np.arange(n_apps)[:, None]
        self.shard_state = np.zeros((3, n_shards), np.int64)
        self.shard_state[WINDOW] = [s.reads.window for s in self.shards]
        self.shard_state[CALLS] = [s.reads.calls for s in self.shards]
        self.shard_state[NEXT_SEQ] = n_apps
        self.debt = np.array([s.reads.debt for s in self.shards], np.float64)
        self.app_f = np.array([[a.spec.poll_interval, a.per_record, a.per_batch] for a in apps], np.float64)
        self.max_records = np.array([a.spec.max_records for a in apps], np.int64)
        lim, grid = stream.limits, metrics.grid
        self.limits = np.array([retention, lim.get_records_max_bytes, lim.read_calls_per_s, lim.read_bytes_per_s,
                                grid.period, grid.n], np.float64)
        self.counts = np.zeros((n_apps, 4), np.int64)
        self.max_age = np.zeros(n_apps, np.float64)
        # the apps' per-period traces become views of two blocks the kernel fills
        self.pp_processed = np.stack([a.per_period["records_processed"] for a in apps])
        self.pp_f = np.stack([np.stack([a.per_period[name] for a in apps]) for name in _PER_PERIOD_F])
        for i, app in enumerate(apps):
            app.per_period["records_processed"] = self.pp_processed[i]
            for j, name in enumerate(_PER_PERIOD_F):
                app.per_period[name] = self.pp_f[j, i]
        v = metrics.values
        self.metric_arrays = tuple(v[name] for name in _METRICS)
        self.next_poll = float(self.t_next.min())  # the earliest poll due (s)
        self.latency = np.empty((n_apps, _LATENCY_BUFFER))  # latencies of a pass, binned after it
        self.calls = 0

    def catch_up(self, horizon: float, inclusive: bool = True) -> None:
        """Run every poll due before ``horizon`` (s); with ``inclusive``, also those at exactly
        ``horizon`` that SimPy would run before an event there made now (the write window)."""
        if self.next_poll > horizon:  # nothing due: skip the pass (sparse polls, many windows)
            return
        shards = self.shards
        log_start = np.array([s.log.start for s in shards], np.int64)
        log_n = np.array([s.log.n for s in shards], np.int64)
        latency_n = np.zeros(len(self.apps), np.int64)
        processed, expired = self.trace.consumer_blocks()
        while True:
            need = self.kernel(self.stream.log_blocks(), log_start, log_n, horizon, inclusive, self.calls, self.t_next,
                               self.worker, self.shard_state, self.debt, self.app_f, self.max_records, self.limits,
                               self.counts, self.max_age, self.pp_processed, self.pp_f, *self.metric_arrays,
                               processed, expired, self.latency, latency_n)
            self._bin_latencies(latency_n)
            if need == 0:
                break
            if need > self.latency.shape[1]:  # one call may return more than the buffer holds
                self.latency = np.empty((len(self.apps), need))
        self.calls += 1
        self.next_poll = float(self.t_next.min())
        for w, position in zip(self.workers, self.worker[POS].ravel().tolist()):
            w.position = position
        counts = self.counts.tolist()
        for i, app in enumerate(self.apps):
            app.records_processed, app.records_expired, app.get_records_calls, app.throttled_calls = counts[i]
            app.max_iterator_age_ms = float(self.max_age[i])

    def _bin_latencies(self, latency_n: np.ndarray) -> None:
        """Hand the buffered latencies to the apps' histograms and empty the buffer."""
        for i, app in enumerate(self.apps):
            if latency_n[i]:
                app.latency.add(self.latency[i, : latency_n[i]])
                latency_n[i] = 0

    def finish(self) -> None:
        """After the last pass: hand the read limiters' state back to the shards."""
        for s, shard in enumerate(self.shards):
            shard.reads.window, shard.reads.calls = int(self.shard_state[WINDOW, s]), int(self.shard_state[CALLS, s])
            shard.reads.debt = float(self.debt[s])


_PER_PERIOD_F = ("backlog_records", "MillisBehindLatest", "GetRecords.IteratorAgeMilliseconds")
_METRICS = ("ReadProvisionedThroughputExceeded", "OutgoingRecords", "OutgoingBytes", "GetRecords.IteratorAgeMilliseconds")
