"""The reference model's shard limits, checked one record or call at a time (see
:mod:`tests.reference.model` for the semantics)."""
from __future__ import annotations

import math

#: Float slack on time comparisons (the engine snaps ticks to the nanosecond).
EPS = 1e-9


class WriteCapacity:
    """One shard's write capacity: a one-second window or a token bucket."""

    def __init__(self, limits):
        self.records_per_s = limits.write_records_per_s
        self.bytes_per_s = limits.write_bytes_per_s
        self.bucket = limits.write_model == "token_bucket"
        self.burst = limits.burst
        self.window = None
        self.used_records = 0.0
        self.used_bytes = 0.0
        self.last = 0.0

    def refresh(self, now: float) -> None:
        if self.bucket:
            elapsed = max(now - self.last, 0.0)
            self.last = now
            self.used_records = max(self.used_records - elapsed * self.records_per_s, 0.0)
            self.used_bytes = max(self.used_bytes - elapsed * self.bytes_per_s, 0.0)
        else:
            w = math.floor(now + EPS)
            if w != self.window:
                self.window = w
                self.used_records = 0.0
                self.used_bytes = 0.0

    def try_take(self, nbytes: int) -> bool:
        depth = self.burst if self.bucket else 1.0
        if self.used_records + 1 <= depth * self.records_per_s and self.used_bytes + nbytes <= depth * self.bytes_per_s:
            self.used_records += 1
            self.used_bytes += nbytes
            return True
        return False


class ReadCapacity:
    """One shard's GetRecords limits, shared by every consumer of the shard."""

    def __init__(self, limits):
        self.calls_per_s = limits.read_calls_per_s
        self.bytes_per_s = limits.read_bytes_per_s
        self.window = None
        self.calls = 0
        self.debt = 0.0

    def allow(self, now: float) -> bool:
        w = math.floor(now + EPS)
        if w != self.window:
            if self.window is not None:
                self.debt = max(0.0, self.debt - self.bytes_per_s * (w - self.window))
            self.window = w
            self.calls = 0
        return self.calls < self.calls_per_s and self.debt < self.bytes_per_s

    def charge(self, nbytes: int) -> None:
        self.calls += 1
        self.debt += nbytes


# ====================================================================== producer
