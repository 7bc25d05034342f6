"""The bill of a scenario: what the run used (:class:`Usage`), priced from ``kinesim/prices.yaml``.

Every price in the table names its source (AWS pricing pages, the AWS Price List API via
infracost, or a secondary source, marked so); ``shared/reference/aws-facts.md`` section 10 holds
the same numbers. The billing rules (units) are AWS's and live in :mod:`kinesim.aws`:

* Kinesis Data Streams, provisioned: shard-hours ($0.015), PUT payload units (each Kinesis record
  billed in 25 KB chunks, $0.014 per million), extended retention above 24 h ($0.02 per
  shard-hour) and long-term retention of data older than 7 days ($0.023 per GB-month)
  (https://aws.amazon.com/kinesis/data-streams/pricing/). On-demand (Standard): stream-hours
  ($0.04), data in ($0.08 per GB, records rounded up to 1 KB), data out ($0.04 per GB; kinesim bills
  the bytes read without rounding), extended retention ($0.10 per GB-month of data older than 24 h)
  and long-term retention as above.
* Firehose: ingestion per GB with each record rounded up to 5 KB, tiered ($0.029 per GB for the
  first 500 TB); format conversion per GB, same rounding ($0.018, unconfirmed)
  (https://aws.amazon.com/firehose/pricing/). Firehose bills the de-aggregated user records it
  reads here (kinesim's reading of the rounding rule for a Kinesis source).
* S3: PUT ($0.005 per 1,000) and GET ($0.0004 per 1,000) requests, Standard storage ($0.023 per
  GB-month) from each object's delivery to the end of the run (https://aws.amazon.com/s3/pricing/).
* EMR: instance-seconds (EC2 + EMR fee per instance-hour, m5.xlarge $0.192 + $0.048), per-second
  billing with a one-minute minimum per cluster (https://aws.amazon.com/emr/pricing/).

A GB is 2^30 bytes and a month 730 hours, as AWS bills them. Lambda transformation and data
transfer are not billed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

if TYPE_CHECKING:  # pragma: no cover
    from kinesim.simulation import Simulation

SERVICES = ("kinesis", "firehose", "s3", "emr")
COST_COLUMNS = ("service", "item", "quantity", "unit", "unit_price_usd", "cost_usd", "source")
SEVEN_DAYS_S = 7 * 86400.0
DAY_S = 86400.0


@functools.lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> dict:
    """The price table (a dict): ``kinesim/prices.yaml`` from the package, or the YAML at ``path``."""
    if path is None:
        text = resources.files("kinesim").joinpath("prices.yaml").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return yaml.safe_load(text)


@dataclass
class Usage:
    """What a run used, in the units AWS bills.

    ``shard_seconds``: open-shard seconds; ``put_payload_units``: 25 KB chunks of accepted Kinesis
    records; ``incoming_bytes``: bytes written per trace period (all shards, shape ``(periods,)``)
    with ``period_s``, for long-term retention; ``firehose_billed_bytes`` and
    ``conversion_billed_bytes``: records rounded up to 5 KB; ``s3_byte_seconds``: stored bytes ×
    seconds; ``emr_cluster_seconds``: the lifetime (s) of each EMR cluster, each with ``emr_nodes``
    instances at ``emr_instance_per_hour`` USD (EC2 + EMR fee).
    """

    duration_s: float
    shard_seconds: float
    put_payload_units: int
    retention_s: float = DAY_S
    mode: str = "provisioned"
    on_demand_in_bytes: int = 0  # accepted Kinesis records rounded up to 1 KB each
    outgoing_bytes: float = 0.0  # bytes returned by GetRecords (all readers)
    incoming_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    period_s: float = 1.0
    firehose_billed_bytes: int = 0
    conversion_billed_bytes: int = 0
    s3_put_requests: int = 0
    s3_get_requests: int = 0
    s3_byte_seconds: float = 0.0
    emr_cluster_seconds: list[float] = field(default_factory=list)
    emr_nodes: int = 0
    emr_instance_per_hour: float = 0.0


def usage_of(sim: "Simulation") -> Usage:
    """Collect the :class:`Usage` of a finished simulation."""
    sc = sim.scenario
    end = sc.duration
    shard_seconds = sum(max(0.0, min(end, s.closed_at if s.closed_at is not None else end) - s.opened_at)
                        for s in sim.stream.shards)
    usage = Usage(
        duration_s=end,
        shard_seconds=shard_seconds,
        put_payload_units=int(getattr(sim.metrics, "put_payload_units", 0)),
        retention_s=sc.stream.retention,
        mode=sc.stream.mode,
        on_demand_in_bytes=int(getattr(sim.metrics, "on_demand_billed_bytes", 0)),
        outgoing_bytes=float(sim.metrics.values["OutgoingBytes"].sum()),
        incoming_bytes=sim.metrics.values["IncomingBytes"].sum(axis=1),
        period_s=sim.grid.period,
    )
    fh = getattr(sim, "firehose", None)
    if fh is not None:
        usage.firehose_billed_bytes = fh.billed_bytes
        if sc.firehose.format_conversion != "none":
            usage.conversion_billed_bytes = fh.billed_bytes
        store = fh.store
        usage.s3_put_requests = store.put_requests
        usage.s3_get_requests = store.get_requests
        usage.s3_byte_seconds = store.byte_seconds(end)
    emr = getattr(sim, "emr", None)
    if emr is not None:
        usage.emr_cluster_seconds = emr.cluster_seconds(end)
        usage.emr_nodes = sc.emr.nodes
        usage.emr_instance_per_hour = instance_price_per_hour(sc.emr)
    return usage


def instance_price_per_hour(emr_spec, prices: dict | None = None) -> float:
    """EC2 + EMR fee per instance-hour (USD) for an ``emr`` scenario section."""
    if emr_spec.instance_price is not None:
        return emr_spec.instance_price.ec2_per_hour + emr_spec.instance_price.emr_per_hour
    entry = (prices or load_prices())["emr"]["instances"][emr_spec.instance_type]
    return float(entry["ec2_per_hour"]) + float(entry["emr_per_hour"])


def tiered(quantity: float, tiers: list[dict]) -> float:
    """Price of ``quantity`` under cumulative tiers ``[{up_to_gb, price}, ...]``; the last price
    continues beyond the last tier."""
    total, low = 0.0, 0.0
    for tier in tiers:
        high = float(tier["up_to_gb"])
        if quantity <= low:
            break
        total += (min(quantity, high) - low) * float(tier["price"])
        low = high
    if quantity > low and tiers:
        total += (quantity - low) * float(tiers[-1]["price"])
    return total


def bill(usage: Usage, prices: dict | None = None) -> pd.DataFrame:
    """One row per billed item: ``service``, ``item``, ``quantity``, ``unit``, ``unit_price_usd``,
    ``cost_usd`` and the price's ``source``. Items with zero quantity are left out."""
    p = prices or load_prices()
    gb, month_s = float(p["gb_bytes"]), float(p["month_hours"]) * 3600.0
    rows: list[dict] = []

    def add(service, item, quantity, entry, unit_price=None, cost=None):
        if quantity <= 0:
            return
        per = float(entry.get("per", 1))
        price = float(entry["price"]) if unit_price is None else unit_price
        rows.append({"service": service, "item": item, "quantity": float(quantity), "unit": entry["unit"],
                     "unit_price_usd": price, "cost_usd": quantity / per * price if cost is None else cost,
                     "source": entry["source"]})

    k = p["kinesis"]
    if usage.mode == "on_demand":
        od = p["kinesis_on_demand"]
        add("kinesis", "stream_hours", usage.duration_s / 3600.0, od["stream_hour"])
        add("kinesis", "data_in", usage.on_demand_in_bytes / gb, od["data_in_gb"])
        add("kinesis", "data_out", usage.outgoing_bytes / gb, od["data_out_gb"])
        add("kinesis", "extended_retention", _held_gb_months(usage, DAY_S, SEVEN_DAYS_S, gb, month_s),
            od["extended_retention_gb_month"])
    else:
        shard_hours = usage.shard_seconds / 3600.0
        add("kinesis", "shard_hours", shard_hours, k["shard_hour"])
        add("kinesis", "put_payload_units", usage.put_payload_units, k["put_payload_units"])
        if usage.retention_s > DAY_S:
            add("kinesis", "extended_retention", shard_hours, k["extended_retention_shard_hour"])
    add("kinesis", "long_term_retention", _held_gb_months(usage, SEVEN_DAYS_S, np.inf, gb, month_s),
        k["long_term_retention_gb_month"])
    f = p["firehose"]
    ingest_gb = usage.firehose_billed_bytes / gb
    if ingest_gb > 0:
        entry = f["ingestion_gb"]
        cost = tiered(ingest_gb, entry["tiers"])
        add("firehose", "ingestion", ingest_gb, entry, unit_price=cost / ingest_gb, cost=cost)
    add("firehose", "format_conversion", usage.conversion_billed_bytes / gb, f["format_conversion_gb"])
    s = p["s3"]
    add("s3", "put_requests", usage.s3_put_requests, s["put_requests"])
    add("s3", "get_requests", usage.s3_get_requests, s["get_requests"])
    add("s3", "storage", usage.s3_byte_seconds / gb / month_s, s["storage_gb_month"])
    if usage.emr_cluster_seconds and usage.emr_nodes:
        minimum = float(p["emr"]["minimum_seconds"])
        billed = sum(max(minimum, c) for c in usage.emr_cluster_seconds)
        hours = billed * usage.emr_nodes / 3600.0
        add("emr", "instance_hours", hours, {"price": usage.emr_instance_per_hour, "unit": "instance-hour (EC2 + EMR fee)",
                                             "source": p["emr"]["billing_source"]})
    frame = pd.DataFrame(rows, columns=list(COST_COLUMNS))
    return frame.astype({"quantity": float, "unit_price_usd": float, "cost_usd": float})


def _held_gb_months(usage: Usage, low: float, high: float, gb: float, month_s: float) -> float:
    """GB-months of written data held at ages between ``low`` and ``high`` seconds (within the
    retention period and the run), from the bytes written per trace period."""
    if usage.retention_s <= low or not len(usage.incoming_bytes):
        return 0.0
    t = np.arange(len(usage.incoming_bytes)) * usage.period_s
    held = np.clip(np.minimum(np.minimum(usage.duration_s, t + usage.retention_s), t + high) - (t + low), 0.0, None)
    return float(np.sum(usage.incoming_bytes * held)) / gb / month_s


def cost_summary(frame: pd.DataFrame) -> dict:
    """``cost_usd`` (total) and ``cost_usd.<service>`` for every service, in USD."""
    by = frame.groupby("service")["cost_usd"].sum() if len(frame) else pd.Series(dtype=float)
    out = {"cost_usd": float(frame["cost_usd"].sum()) if len(frame) else 0.0}
    for service in SERVICES:
        out[f"cost_usd.{service}"] = float(by.get(service, 0.0))
    return out
