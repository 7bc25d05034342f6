"""Building blocks shared by every part of the scenario schema (:mod:`kinesim.scenario` and the
``scenario_*`` modules): the base model and the human-unit field types.

Durations become seconds, sizes bytes, rates events/s and byte rates bytes/s, parsed by
:mod:`kinesim.units` at the YAML edge.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from kinesim.units import parse_byte_rate, parse_bytes, parse_bytes_per_second, parse_duration, parse_rate


class Model(BaseModel):
    """Base for every schema node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def positive(v: float) -> float:
    """Validator: ``v > 0``."""
    if v <= 0:
        raise ValueError(f"must be greater than 0, got {v:g}")
    return v


def no_bool(v):
    """Validator: a count must not be ``true``/``false`` (pydantic would read them as 1/0)."""
    if isinstance(v, bool):
        raise ValueError(f"must be a whole number, got {str(v).lower()}")
    return v


def refuse(cond: bool, message: str, value):
    """Validator helper: raise ``message`` when ``cond``, else pass ``value`` through."""
    if cond:
        raise ValueError(message)
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_bytes)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
BytesPerSecond = Annotated[float, BeforeValidator(parse_byte_rate)]
PositiveSeconds = Annotated[Seconds, AfterValidator(positive)]
PositiveBytes = Annotated[Bytes, AfterValidator(positive)]
#: A per-second byte limit: ``1MiB`` or ``1MiB/s`` (:func:`kinesim.units.parse_bytes_per_second`).
BytesPerSecondLimit = Annotated[int, BeforeValidator(parse_bytes_per_second)]
PositiveBytesPerSecondLimit = Annotated[BytesPerSecondLimit, AfterValidator(positive)]
