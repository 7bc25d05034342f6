"""Benchmark of the core engine: the standard fleet.

10,000 sensors at 1 Hz (Poisson), 512-byte records, 8 shards, two polling consumers. Prints simulated
records/s, wall time and peak memory (RSS) for one or more durations. Run:

    python bench/bench_core.py            # 10 min simulated
    python bench/bench_core.py --minutes 60

Speed is measured here, never in timed tests.
"""
from __future__ import annotations

import argparse
import platform
import resource
import time

import kinesim


def standard_fleet(minutes: float, sensors: int = 10_000, shards: int = 8) -> dict:
    return {
        "name": "bench-standard-fleet",
        "duration": f"{minutes}min",
        "seed": 1,
        "stream": {"shards": shards},
        "fleets": [{"name": "sensors", "sensors": sensors, "rate": "1/s", "arrival": "poisson", "record_size": "512B"}],
        "consumers": [
            {"name": "dashboard", "poll_interval": "1s"},
            {"name": "archiver", "poll_interval": "1s"},
        ],
        "trace": {"records": "sample", "sample_rate": 0.001},
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--sensors", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print(f"{'sensors':>8} {'simulated':>10} {'records':>12} {'wall s':>8} {'records/s':>12} {'peak RSS MiB':>13}")
    for minutes in args.minutes:
        scenario = kinesim.load_scenario(standard_fleet(minutes, args.sensors))
        t0 = time.perf_counter()
        results = kinesim.simulate(scenario)
        wall = time.perf_counter() - t0
        produced = results["records_produced"]
        print(f"{args.sensors:>8} {minutes:>8.0f}min {produced:>12,} {wall:>8.2f} {produced / wall:>12,.0f} {peak_rss_mib():>13.0f}")


if __name__ == "__main__":
    main()
