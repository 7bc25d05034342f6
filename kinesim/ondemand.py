"""On-demand capacity mode (``stream.mode: on_demand``): the stream splits its own shards.

What AWS documents (2023 developer guide, how-do-i-size-a-stream.md,
https://github.com/awsdocs/amazon-kinesis-data-streams-developer-guide/blob/master/doc_source/how-do-i-size-a-stream.md;
current quotas: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html):

* a new on-demand stream takes 4 MB/s of writes (kinesim: 4 shards, even ranges, unless
  ``stream.shards`` is given) and each shard keeps the per-shard limits (1 MiB/s, 1,000 records/s);
* it "accommodates up to double its previous peak write throughput observed in the last 30 days";
  traffic that more than doubles the previous peak within 15 minutes may be throttled;
* "a shard is split within 15 minutes once its incoming traffic exceeds 500 KB/s", at the middle of
  its hash key range; a hot key above one shard's limit is not isolated and still throttles.

kinesim models the third point, and the first two follow from it: every minute, each open shard
whose mean incoming traffic over the last full minute exceeds ``split_bytes_per_s`` (500 KiB/s) or
``split_records_per_s`` (500/s, kinesim's counterpart for records) is marked, and ``split_delay``
later (default 15 min, the documented bound) it is split at its middle. A shard so split carries at
most half its limit afterwards, so capacity settles at about twice the peak, and it never shrinks
(no merges, as within the 30 days). A load that jumps above twice the previous peak throttles until
the splits land; a single hot key keeps its shard (and each child that holds it) over the limit.
The splits are AWS-managed: no API call, no UPDATING status, no 24-hour limit; each shows in
``events`` as ``OnDemandSplit`` (decided) and ``ReshardComplete`` (done), at a whole second
(:mod:`kinesim.resharding`).
"""
from __future__ import annotations

from kinesim.autoscaling import PERIOD_S, every_minute, window_rate
from kinesim.resharding import completion_time


class OnDemandScaler:
    """Splits hot shards of ``plane.stream`` per ``spec`` (:class:`kinesim.scenario_scaling.OnDemand`)."""

    def __init__(self, spec, plane, metrics, duration: float):
        self.spec = spec
        self.plane = plane
        self.metrics = metrics
        self.duration = duration
        self.pending: set[int] = set()  # indices of shards with a split on its way

    def process(self, env):
        return every_minute(env, self.duration, self.evaluate)

    def evaluate(self, now: float) -> None:
        t0 = now - PERIOD_S
        for shard in self.plane.stream.open_shards():
            if shard.index in self.pending or shard.opened_at > t0 + 1e-9:
                continue  # already on its way, or not open for the whole minute
            nbytes = window_rate(self.metrics, "IncomingBytes", t0, now, shard.index)
            records = window_rate(self.metrics, "IncomingRecords", t0, now, shard.index)
            if nbytes > self.spec.split_bytes_per_s or records > self.spec.split_records_per_s:
                self.pending.add(shard.index)
                reason = (f"{nbytes / 1024:.0f} KiB/s and {records:.0f} records/s over the last minute, above "
                          f"{self.spec.split_bytes_per_s / 1024:.0f} KiB/s or {self.spec.split_records_per_s} records/s")
                self.plane.split_later(now, shard, completion_time(now, self.spec.split_delay), reason)
