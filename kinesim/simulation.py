"""``Simulation``: wires the components of a validated :class:`Scenario`, runs SimPy, returns Results.

SimPy events are used only for control: the producers' write window (one second of flushes every
``max_buffered_time``, :mod:`kinesim.writer`) and a GetRecords call per consumer worker (in large runs
without Firehose or resharding, compiled passes between write windows run those calls instead, with the
same results: :mod:`kinesim.consumer_fused`); records move as numpy batches (``shared/design.md``). Each component draws
from its own random stream keyed by its name (:mod:`kinesim.rng`).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Callable

import pandas as pd
import simpy

from kinesim.compiled import use_kernels
from kinesim.consumer import ConsumerApp
from kinesim.consumer_fused import FusedPolls
from kinesim.consumer_fused import applies as fused_polls_apply
from kinesim.emr import EmrCluster
from kinesim.firehose import LOG_COLUMNS as FIREHOSE_COLUMNS
from kinesim.firehose import DeliveryStream, RecordFormatter
from kinesim.fleet import Fleet
from kinesim.log import READ_COLUMNS
from kinesim.metrics import PeriodGrid, ShardMetrics
from kinesim.producer import Producer, ProducerStats
from kinesim.resharding import attach as attach_resharding
from kinesim.results import Results
from kinesim.rng import component_rng
from kinesim.s3 import S3Store, TempFolder
from kinesim.scenario import Scenario
from kinesim.stream import Stream
from kinesim.tracing import RecordTrace
from kinesim.writer import ProducerGroup, tick


class Simulation:
    """One run of one scenario. ``run(progress)`` returns :class:`Results`.

    ``progress``, if given, is called as ``progress(simulated_seconds_done, duration)`` about a
    hundred times per run.
    """

    def __init__(self, scenario: Scenario):
        self.scenario = s = scenario
        self.env = simpy.Environment()
        self.grid = PeriodGrid(s.duration, s.trace.period)
        self.metrics = ShardMetrics(self.grid, s.stream.shards)
        # the shard logs keep what the readers read: the Firehose reader reads more than GetRecords
        self.stream = Stream(s.stream, self.metrics, READ_COLUMNS + (FIREHOSE_COLUMNS if s.firehose else ()))
        horizon = s.duration + max(f.producer.max_buffered_time for f in s.fleets)
        self.fleets = [Fleet(spec, i, horizon, component_rng(s.seed, f"fleet.{spec.name}")) for i, spec in enumerate(s.fleets)]
        self.stream.set_partition_keys([(f.key_hi, f.key_lo) for f in self.fleets])
        #: user records the fleets are expected to measure over the run
        self.expected_records = sum(f.expected_records(0.0, s.duration) for f in self.fleets)
        self.trace = RecordTrace(self._sample_rate(), len(s.consumers), component_rng(s.seed, "trace"))
        self.producer_stats = [ProducerStats(self.grid.n) for _ in s.fleets]
        self.producers = [
            Producer(spec.producer, self.stream, stats, self.trace, component_rng(s.seed, f"producer.{spec.name}"), self.grid.index)
            for spec, stats in zip(s.fleets, self.producer_stats)
        ]
        self.writer = ProducerGroup(self.fleets, self.producers, self.stream, self.trace, self.grid, s.duration)
        self.writer.compiled = use_kernels(self.expected_records)
        self.consumers = [
            ConsumerApp(i, spec, self.stream, self.grid, self.trace, component_rng(s.seed, f"consumer.{spec.name}"))
            for i, spec in enumerate(s.consumers)
        ]
        self.firehose, self.emr, self.s3_folder = self._build_lake()
        self.polls = None  # FusedPolls when it applies (set by run)
        self.fuse_polls = True  # False: the SimPy workers poll even where FusedPolls applies (tests)

    def _build_lake(self) -> tuple[DeliveryStream | None, EmrCluster | None, TempFolder | None]:
        """The optional Firehose → S3 → EMR path. Real files go to ``firehose.s3.root`` or, by
        default, to a temporary folder that :class:`Results` keeps and ``Results.save`` copies into
        the output folder (``<out>/s3/``)."""
        s = self.scenario
        if s.firehose is None:
            return None, None, None
        fh, folder, root = s.firehose, None, None
        if fh.s3.write_files:
            if fh.s3.root is None:
                folder = TempFolder("kinesim-s3-")
            root = str(folder.path) if folder is not None else fh.s3.root
        store = S3Store(fh.s3.bucket, root)
        formatter = RecordFormatter(self.fleets, self.stream, pd.Timestamp(s.start_time)) if root is not None else None
        firehose = DeliveryStream(fh, self.stream, self.grid, store, self.trace, s.start_time,
                                  component_rng(s.seed, f"firehose.{fh.name}"),
                                  component_rng(s.seed, f"firehose.{fh.name}.reader"),
                                  keep_events=s.emr is not None, formatter=formatter)
        emr = EmrCluster(s.emr, store, s.duration) if s.emr is not None else None
        return firehose, emr, folder

    def _sample_rate(self) -> float:
        """Probability that a record enters the ``records`` trace (see :class:`kinesim.scenario.Trace`)."""
        t = self.scenario.trace
        if t.records == "none":
            return 0.0
        if t.records == "all":
            return 1.0
        if t.records == "sample":
            return t.sample_rate
        expected = self.expected_records
        return 1.0 if expected <= t.auto_limit else t.auto_limit / expected

    def _progress_process(self, progress: Callable[[float, float], None]):
        end = self.scenario.duration
        step = end / 100
        for k in range(1, 101):
            yield self.env.timeout(float(tick(k, step)) - self.env.now)
            progress(self.env.now, end)

    def run(self, progress: Callable[[float, float], None] | None = None) -> Results:
        wall = time.perf_counter()
        self.env.process(self.writer.process(self.env))
        self.polls = FusedPolls(self.consumers, self.stream, self.metrics, self.trace,
                                self.scenario.stream.retention) if self.fuse_polls and fused_polls_apply(self) else None
        if self.polls is not None:  # the polls run in compiled passes before each write window
            self.writer.before_window = self.polls.catch_up
        else:
            for app in self.consumers:
                app.start(self.env)
        self.control = attach_resharding(self)  # scheduled resharding, autoscaling, on-demand mode
        for part in (self.firehose, self.emr):
            if part is not None:
                part.start(self.env)
        if progress is not None:
            self.env.process(self._progress_process(progress))
        try:
            return self._run_to_end(wall)
        except BaseException:  # failed or interrupted (Ctrl-C): no half-written S3 files stay behind
            if self.firehose is not None and self.firehose.store.writes_files:
                self.firehose.store.discard()
            raise

    def _run_to_end(self, wall: float) -> Results:
        end = self.scenario.duration
        self.env.run(until=end + 1e-6)  # events at exactly ``duration`` still happen
        if self.polls is not None:
            self.polls.catch_up(end + 1e-6, inclusive=False)
            self.polls.finish()
        for producer, count in zip(self.producers, self.writer.unflushed()):
            producer.unflushed = count
        for app in self.consumers:
            for worker in app.workers:
                worker.finish(end, self.scenario.stream.retention)
        if self.firehose is not None:
            self.firehose.finish(end, self.scenario.stream.retention)
        return Results.from_simulation(self, wall_time_s=time.perf_counter() - wall)


def simulate(scenario, *, overrides: dict | None = None, seed: int | None = None,
             progress: Callable[[float, float], None] | None = None) -> Results:
    """Run a scenario and return its :class:`~kinesim.results.Results` (pandas DataFrames).

    ``scenario`` is a :class:`Scenario`, a dict, a YAML string or a path to a YAML file;
    ``overrides`` maps dotted paths to values (``{"stream.shards": 4}``), validated like the YAML.
    ``seed`` replaces the scenario's ``seed`` (as ``kinesim run --seed``; it wins over a ``"seed"``
    in ``overrides``): ``simulate(s, seed=3)`` is ``simulate(s, overrides={"seed": 3})``, validated
    like the YAML (a whole number >= 0).
    ``progress(done_s, duration_s)`` is called about 100 times. Raises
    :class:`kinesim.errors.ScenarioError` for an invalid scenario.
    """
    from kinesim.loader import load_scenario

    if seed is not None and (overrides is None or isinstance(overrides, Mapping)):  # (load_scenario refuses others)
        overrides = {**(overrides or {}), "seed": seed}
    if overrides or not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    return Simulation(scenario).run(progress)
