"""Benchmark of the engine: the standard fleet, a scaling table, and the per-record reference.

The standard fleet: 10,000 sensors at 1 Hz (Poisson), 512-byte records, 8 shards, two polling
consumers (it offers 1,250 records/s per shard, so it throttles and retries). Prints simulated
records/s, wall time and peak memory (RSS) per run, and the same figures for the per-record
reference model (``tests/reference``) on shorter or smaller runs, with the speed ratio: the
standard fleet itself for one simulated minute (the like-for-like comparison), its load per
shard on one shard (1,250 sensors), and an under-capacity fleet (1,000 sensors on 8 shards, no
retries). Run:

    python bench/bench_core.py                    # standard fleet, 10 min simulated
    python bench/bench_core.py --minutes 60       # one simulated hour
    python bench/bench_core.py --scaling          # 1k/10k/100k sensors for 10 min; 10k for 1 h and 6 h
    python bench/bench_core.py --reference        # add the reference model and the speed ratio
    python bench/bench_core.py --pairs 5          # the standard hour and the reference, back to back, 5 times

Speed is measured here, never in timed tests. Each run is in a fresh process, so peak RSS is
that run's own.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def warm_up() -> None:
    """Load the compiled twins (:mod:`kinesim.compiled`) as the first large run of a process does,
    by running a tiny overloaded scenario with them on; the benchmark reports this start-up apart
    from the run."""
    import os

    import kinesim
    from kinesim.compiled import use_kernels

    if not use_kernels(float("inf")):
        return
    before = os.environ.get("KINESIM_NUMBA")
    os.environ["KINESIM_NUMBA"] = "1"
    try:
        tiny = standard_fleet(0.05, sensors=2_000, shards=1)
        kinesim.simulate(kinesim.load_scenario(tiny))
    finally:
        if before is None:
            del os.environ["KINESIM_NUMBA"]
        else:
            os.environ["KINESIM_NUMBA"] = before


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import kinesim
from bench_core import standard_fleet, warm_up
scenario = kinesim.load_scenario(standard_fleet({minutes}, {sensors}, {shards}))
t0 = time.perf_counter()
warm_up()  # numba's import and the loading of its cached machine code, once per process
startup = time.perf_counter() - t0
t0 = time.perf_counter()
if {reference}:
    from tests.reference import run_reference
    produced = run_reference(scenario)["records_produced"]
else:
    produced = kinesim.simulate(scenario)["records_produced"]
wall = time.perf_counter() - t0
print(json.dumps({{"records": produced, "wall": wall, "startup": startup,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(minutes: float, sensors: int, shards: int = 8, reference: bool = False) -> dict:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), minutes=minutes, sensors=sensors,
                        shards=shards, reference=reference)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(label: str, sensors: int, minutes: float, m: dict) -> str:
    rate = m["records"] / m["wall"]
    return (f"| {label} | {sensors:,} | {minutes:g} min | {m['records']:,} | {m['wall']:.2f} | "
            f"{rate:,.0f} | {m['rss']:.0f} | {m['startup']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--scaling", action="store_true", help="1k/10k/100k sensors for 10 min, 10k for 1 h and 6 h")
    parser.add_argument("--reference", action="store_true", help="also time the per-record reference model")
    parser.add_argument("--pairs", type=int, default=0, metavar="N",
                        help="time the standard hour and the reference on the standard fleet's minute one after "
                             "the other, N times: each pair's ratio and the medians (this machine's speed drifts)")
    args = parser.parse_args()
    if args.pairs < 0:
        parser.error(f"--pairs must be at least 1, got {args.pairs}")
    if args.pairs:
        pairs(args.pairs)
        return
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print("| run | sensors | simulated | records | wall s | records/s | peak RSS MiB | start-up s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    runs = [(args.sensors, m) for m in args.minutes]
    if args.scaling:
        runs = [(1_000, 10), (10_000, 10), (100_000, 10), (10_000, 60), (10_000, 360)]
    engine = {}
    for sensors, minutes in runs:
        m = measure(minutes, sensors)
        engine[(sensors, minutes)] = m
        print(row("engine", sensors, minutes, m), flush=True)
    if args.reference:
        # the reference (a) on the standard fleet itself for one simulated minute: the same
        # scenario, the like-for-like comparison; (b) on the standard fleet's load per shard (1,250
        # records/s offered to one shard, two consumers: about 70% of attempts throttled, as in
        # the standard fleet); (c) under capacity, 1,000 sensors on 8 shards: no retries, the
        # reference's cheapest records
        refs = {"standard fleet": (10_000, 1.0, 8), "same load per shard": (1_250, 2.0, 1),
                "under capacity": (1_000, 2.0, 8)}
        ref_rate = {}
        for label, (sensors, minutes, shards) in refs.items():
            ref = measure(minutes, sensors, shards, reference=True)
            eng = measure(minutes, sensors, shards)
            ref_rate[label] = ref["records"] / ref["wall"]
            print(row(f"engine, {shards} shard(s)", sensors, minutes, eng))
            print(row(f"reference, {shards} shard(s) ({label})", sensors, minutes, ref))
            print(f"speed ratio on the same fleet and duration ({label}): "
                  f"{eng['records'] / eng['wall'] / ref_rate[label]:.1f}x")
        for (sensors, minutes), m in engine.items():
            ratios = ", ".join(f"{m['records'] / m['wall'] / rate:.1f}x ({label})" for label, rate in ref_rate.items())
            print(f"speed ratio, engine's records/s on {sensors:,} sensors for {minutes:g} min over the reference's: "
                  f"{ratios}")


def pairs(n: int) -> None:
    """The headline ratio, robust to a machine whose speed drifts: the engine's standard hour and
    the reference's standard minute, run back to back ``n`` times (the order alternating), each
    pair giving a ratio of records/s; prints every pair and the medians."""
    import statistics

    print("| pair | engine, 1 h: wall s | records/s | reference, 1 min: wall s | records/s | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    eng_rates, ref_rates, ratios = [], [], []
    for k in range(n):
        order = (False, True) if k % 2 == 0 else (True, False)
        got = {reference: measure(60.0 if not reference else 1.0, 10_000, reference=reference) for reference in order}
        eng, ref = got[False], got[True]
        e, r = eng["records"] / eng["wall"], ref["records"] / ref["wall"]
        eng_rates.append(e), ref_rates.append(r), ratios.append(e / r)
        print(f"| {k + 1} | {eng['wall']:.2f} | {e:,.0f} | {ref['wall']:.2f} | {r:,.0f} | {e / r:.1f}x |", flush=True)
    print(f"medians: engine {statistics.median(eng_rates):,.0f} records/s, reference {statistics.median(ref_rates):,.0f} "
          f"records/s, ratio {statistics.median(ratios):.1f}x (pairs from {min(ratios):.1f}x to {max(ratios):.1f}x)")


if __name__ == "__main__":
    main()
