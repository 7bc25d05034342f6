"""kinesim: a discrete-event simulator of sensor fleets feeding AWS Kinesis Data Streams.

Python use::

    import kinesim
    results = kinesim.simulate("scenarios/overload.yaml")
    results.metrics        # per period and shard, CloudWatch names
    results["throttle_rate"]
"""
from kinesim.errors import ScenarioError
from kinesim.loader import load_scenario
from kinesim.results import Results
from kinesim.scenario import Scenario
from kinesim.simulation import Simulation, simulate

__all__ = ["ScenarioError", "Results", "Scenario", "Simulation", "load_scenario", "simulate"]
__version__ = "0.1.0"
