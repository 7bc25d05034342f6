"""Records waiting for buffering hints (Firehose's S3 buffer, its Lambda buffer), as numpy columns.

A :class:`HintBuffer` holds column dicts (one row per user record) until it holds ``size`` bytes or
``interval`` seconds have passed since its oldest record entered, whichever comes first: Firehose's
buffering hints (https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html,
https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html). The owner decides
what a flush does; :func:`buffer_timer` is the SimPy process that fires the interval hint.
"""
from __future__ import annotations

import numpy as np
import simpy

#: Tolerance (s) for "the deadline has come": reads every second accumulate float rounding.
EPS = 1e-6


def concat(parts: list[dict]) -> dict:
    """Concatenate column dicts (all with the same keys)."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def take(cols: dict, index) -> dict:
    return {name: col[index] for name, col in cols.items()}


class HintBuffer:
    """Records waiting for a buffering hint: ``size`` bytes or ``interval`` s since the oldest
    record entered. ``deadline`` is ``None`` while empty."""

    def __init__(self, size: int, interval: float):
        self.size = size
        self.interval = interval
        self.parts: list[dict] = []
        self.n = 0
        self.nbytes = 0
        self.opened: float | None = None

    @property
    def deadline(self) -> float | None:
        return None if self.opened is None else self.opened + self.interval

    def add(self, cols: dict, now: float) -> None:
        m = len(cols["size"])
        if m == 0:
            return
        cols = {**cols, "t_in": np.full(m, now)}
        if self.n == 0:
            self.opened = now
        self.parts.append(cols)
        self.n += m
        self.nbytes += int(cols["size"].sum())

    def take_all(self) -> dict:
        cols = concat(self.parts)
        self.parts, self.n, self.nbytes, self.opened = [], 0, 0, None
        return cols

    def take_prefix(self, max_bytes: int) -> dict:
        """The leading records holding at most ``max_bytes`` (at least one record); the rest stay,
        their buffer opened when its oldest record entered."""
        cols = self.take_all()
        cut = max(1, int(np.searchsorted(np.cumsum(cols["size"]), max_bytes, side="right")))
        rest = take(cols, slice(cut, None))
        if len(rest["size"]):
            self.parts = [rest]
            self.n = len(rest["size"])
            self.nbytes = int(rest["size"].sum())
            self.opened = float(rest["t_in"][0])
        return take(cols, slice(0, cut))


def buffer_timer(env: simpy.Environment, owner):
    """SimPy process: calls ``owner.expire(now)`` when ``owner.buffer`` reaches its deadline; waits
    on ``owner.wake`` (an event the owner triggers when its buffer opens) while it is empty."""
    while True:
        deadline = owner.buffer.deadline
        if deadline is None or owner.waiting:
            owner.wake = env.event()
            yield owner.wake
            continue
        if deadline > env.now + EPS:
            yield env.timeout(deadline - env.now)
            continue
        owner.expire(env.now)
