"""The compiled GetRecords polls (:mod:`kinesim.consumer_fused`) against the SimPy workers they
replace (:class:`kinesim.consumer.Worker`, the definition): every trace and the summary equal bit
for bit, over read limits (calls, bytes with carry-over), GetRecords cuts by records and bytes,
processing time, several consumers per shard, both iterator starts, retention expiry, and exact
ties between polls and write windows."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinesim
from kinesim.compiled import compiled
from kinesim.simulation import Simulation
from tests.test_writer_fused import assert_identical

needs_numba = pytest.mark.skipif(compiled("compiled_polls") is None, reason="numba is not installed")


class ZeroPhase:
    """A consumer's random stream whose every draw is 0: each worker's first poll is at 0 s."""

    def random(self):
        return 0.0


def both(spec: dict, monkeypatch, zero_phase: bool = False):
    """Results of the compiled polls and of the SimPy workers on ``spec`` (compiled kernels on)."""
    monkeypatch.setenv("KINESIM_NUMBA", "1")
    out = []
    for fuse in (True, False):
        sim = Simulation(kinesim.load_scenario(spec))
        sim.fuse_polls = fuse
        if zero_phase:
            for app in sim.consumers:
                app.rng = ZeroPhase()
        out.append(sim.run())
        assert (sim.polls is not None) == fuse
    return out


def scenario(consumers: list[dict], limits: dict | None = None, record_size: str = "300B", shards: int = 2,
             max_buffered_time: str = "100ms", duration: str = "12s") -> dict:
    return {"name": "polls", "duration": duration, "seed": 3,
            "stream": {"shards": shards, "limits": limits or {}},
            "fleets": [{"name": "f", "sensors": 2500, "rate": "1/s", "record_size": record_size,
                        "producer": {"max_buffered_time": max_buffered_time}}],
            "consumers": consumers, "trace": {"records": "all"}}


consumer = st.fixed_dictionaries({
    "poll_interval": st.sampled_from(["200ms", "370ms", "1s", "2500ms"]),
    "max_records": st.sampled_from([3, 100, 10000]),
    "processing_time": st.fixed_dictionaries({"per_record": st.sampled_from(["0s", "400us", "2ms"]),
                                              "per_batch": st.sampled_from(["0s", "50ms"])}),
    "start": st.sampled_from(["latest", "trim_horizon"]),
})


@needs_numba
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(consumers=st.lists(consumer, min_size=1, max_size=3),
       calls=st.sampled_from([1, 5]), read_bytes=st.sampled_from(["96KiB", "2MiB"]),
       max_bytes=st.sampled_from(["2KiB", "20KiB", "10MiB"]), record_size=st.sampled_from(["300B", "1500B"]))
def test_compiled_polls_equal_the_simpy_workers(consumers, calls, read_bytes, max_bytes, record_size, monkeypatch):
    """``2KiB`` GetRecords responses return one ``1500B`` record at a time (cut by
    bytes); ``96KiB``/s reads run into debt and throttle."""
    consumers = [dict(c, name=f"c{i}") for i, c in enumerate(consumers)]
    limits = {"read_calls_per_s": calls, "read_bytes_per_s": read_bytes, "get_records_max_bytes": max_bytes,
              "max_record_size": "2KiB"}
    fused, workers = both(scenario(consumers, limits, record_size), monkeypatch)
    assert_identical(fused, workers)


@needs_numba
def test_polls_and_write_windows_at_the_same_instants(monkeypatch):
    """Every poll at a whole second, where the write window starts too (flushes every 500 ms),
    two consumers per shard polling at the same instants: SimPy's order (by when each timeout
    was made) decides what each poll sees, and the compiled polls follow it."""
    consumers = [{"name": "a", "poll_interval": "1s"}, {"name": "b", "poll_interval": "500ms", "start": "trim_horizon"},
                 {"name": "c", "poll_interval": "1s", "processing_time": {"per_batch": "1s"}}]
    spec = scenario(consumers, {"read_calls_per_s": 2}, max_buffered_time="500ms")
    fused, workers = both(spec, monkeypatch, zero_phase=True)
    assert fused["read_throttled_calls"] > 0
    assert_identical(fused, workers)


@needs_numba
def test_records_past_retention_expire_alike(monkeypatch):
    """The bundled lag-past-retention scenario, cut to 34 h: records expire unread from 32 h on."""
    spec = kinesim.load_scenario(Path(__file__).parents[1] / "scenarios" / "lag-past-retention.yaml",
                                 overrides={"duration": "34h"})
    fused, workers = both(spec, monkeypatch)
    assert fused["records_expired"] > 0
    assert_identical(fused, workers)


@needs_numba
@pytest.mark.parametrize("aggregation", [False, True])
def test_passes_that_stop_to_bin_their_latencies(aggregation, monkeypatch):
    """With room for 50 latencies a pass stops before every poll that might not fit, bins them and
    goes on (and makes room when one call returns more, as a KPL aggregate's records do): the same
    results. A backlog (a slow consumer from the stream's start) makes the calls large."""
    monkeypatch.setattr("kinesim.consumer_fused._LATENCY_BUFFER", 50)
    consumers = [{"name": "slow", "start": "trim_horizon", "poll_interval": "3s", "max_records": 400},
                 {"name": "fast", "poll_interval": "300ms"}]
    spec = scenario(consumers)
    spec["fleets"][0]["producer"]["aggregation"] = aggregation
    fused, workers = both(spec, monkeypatch)
    assert_identical(fused, workers)
