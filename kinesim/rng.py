"""One random stream per component, keyed by the component's name.

Adding a consumer must not change a fleet's draws, so each component derives its own
``numpy.random.Generator`` from the scenario seed and a stable hash of its name
(``SeedSequence(seed, spawn_key=...)``), never from a shared or global generator.
"""
from __future__ import annotations

import hashlib

import numpy as np


def component_rng(seed: int, name: str) -> np.random.Generator:
    """A generator for component ``name`` (e.g. ``"fleet.thermostats"``) under scenario ``seed``."""
    key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))
