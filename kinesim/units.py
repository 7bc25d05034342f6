"""Human units at the YAML/CLI edge: ``"1MiB"``, ``"100ms"``, ``"10/min"``.

Parsing uses the `pint` units library; inside kinesim every value is in seconds, bytes or
events per second. Each parser raises ``ValueError`` with a message that says what is allowed.
Values must be finite and non-negative; sizes are at most :data:`MAX_BYTES`.
"""
from __future__ import annotations

import functools
import math
import numbers
import re

import pint

DURATION_UNITS = "ms, s, min, h, d"
BYTE_UNITS = "B, KiB, MiB, GiB (or kB, MB, GB)"

#: Largest size (record sizes, every byte limit, buffer sizes): 512 MiB, kinesim's bound, far above
#: AWS's (a record is at most 1 MiB, a PutRecords request 5 MiB, a GetRecords response 10 MiB, a
#: Firehose buffer 128 MiB). Byte counts are int64: a run simulates at most 1e10 user records
#: (:data:`kinesim.loader.MAX_RUN_RECORDS`), so its total bytes stay below 1e10 x 2**29 = 5.4e18
#: < 2**63 (9.2e18), and a second of records (at most 2e6) below about 2**50.
MAX_BYTES = 512 * 2**20
#: A Julian year in seconds, and the longest duration a scenario may give (runs must end by 2199
#: anyway; a 1e20 s poll interval used to overflow the plots).
YEAR_S = 365.25 * 86_400
MAX_SECONDS = 250 * YEAR_S


@functools.lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    return pint.UnitRegistry()


def _quantity(text: str, what: str) -> pint.Quantity:
    if not re.match(r"\s*[-+]?(\d|\.\d|nan|inf)", text, re.IGNORECASE):  # pint reads a bare unit ("min", "KiB") as one of it
        raise ValueError(f"must be {what}: a number, then its unit, got {text!r}")
    try:
        return _registry().Quantity(text.strip())
    except Exception:  # pint raises several kinds for unparsable text
        raise ValueError(f"must be {what}, got {text!r}") from None


def _information_units(q: pint.Quantity) -> dict[str, float]:
    """The units of ``q`` that measure information (byte, bit and their multiples), with their
    exponents. pint counts them as dimensionless, so ``1 KiB/s`` would pass for a rate of 8,192/s."""
    return {name: power for name, power in q.unit_items() if name.endswith(("byte", "bit"))}


def _reject_bool(value: object, what: str) -> None:
    if isinstance(value, bool):
        raise ValueError(f"must be {what}, got {value!r}")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds.

    Accepts a string with a unit (``"100ms"``, ``"5min"``, ``"24h"``, ``"1d"``) or a number
    of seconds given as an int/float (``0`` is common). Raises ``ValueError`` otherwise.
    """
    _reject_bool(value, f"a duration with a unit ({DURATION_UNITS})")
    if isinstance(value, numbers.Real):
        seconds = float(value)
    elif isinstance(value, str):
        q = _quantity(value, f"a duration ({DURATION_UNITS})")
        if _information_units(q):
            raise ValueError(f"must be a duration ({DURATION_UNITS}), got {value!r} (a size, not a time)")
        if q.dimensionless:
            if q.unitless:
                seconds = float(q.magnitude)
            else:
                raise ValueError(f"must be a duration ({DURATION_UNITS}), got {value!r}")
        else:
            try:
                seconds = float(q.to("second").magnitude)
            except pint.DimensionalityError:
                what = "a rate, not a time" if str(q.dimensionality) == "1 / [time]" else f"a {q.dimensionality}"
                hint = "; for minutes write 'min'" if str(q.dimensionality) == "[length]" else ""  # 5m: metres
                raise ValueError(f"must be a duration ({DURATION_UNITS}), got {value!r} ({what}{hint})") from None
    else:
        raise ValueError(f"must be a duration like 100ms or 5min, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a finite non-negative duration, got {value!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most {MAX_SECONDS / YEAR_S:.0f} years (kinesim's bound, so that times fit "
                         f"in the traces' timestamps), got {value!r}")
    return seconds


def parse_bytes(value: object) -> int:
    """Return ``value`` in bytes (an int, rounded up), at most :data:`MAX_BYTES`.

    Accepts ``"512B"``, ``"2KiB"``, ``"1MiB"``, ``"5 MB"`` or a plain integer number of bytes.
    Binary prefixes (KiB, MiB) are powers of 1024, decimal ones (kB, MB) powers of 1000.
    """
    _reject_bool(value, f"a size with a unit ({BYTE_UNITS})")
    if isinstance(value, numbers.Real):
        size = float(value)
    elif isinstance(value, str):
        q = _quantity(value, f"a size ({BYTE_UNITS})")
        info = _information_units(q)
        if q.unitless:
            size = float(q.magnitude)
        elif len(info) == 1 and list(info.values()) == [1] and len(dict(q.unit_items())) == 1:
            size = float(q.to("byte").magnitude)
        else:
            rate = " (a rate: sizes have no /s)" if str(q.dimensionality) == "1 / [time]" else ""
            raise ValueError(f"must be a size ({BYTE_UNITS}), got {value!r}{rate}")
    else:
        raise ValueError(f"must be a size like 512B or 1MiB, got {value!r}")
    if not math.isfinite(size) or size < 0:
        raise ValueError(f"must be a finite non-negative size, got {value!r}")
    if size > MAX_BYTES:
        raise ValueError(f"must be a size of at most {MAX_BYTES // 2**20} MiB (kinesim's bound, so that byte counts "
                         f"fit in 64-bit integers), got {value!r}")
    return int(math.ceil(size))


def _per_second(value: object, unit: str, what: str, noun: str) -> float:
    """Parse ``value`` as a quantity per time and return it in ``unit`` (e.g. ``"byte/second"``)."""
    _reject_bool(value, what)
    if isinstance(value, numbers.Real):
        rate = float(value)
    elif isinstance(value, str):
        q = _quantity(value, what)
        if _information_units(q) and "byte" not in unit:
            raise ValueError(f"must be {what}, got {value!r} (a byte rate, not a count per time)")
        if q.unitless:
            rate = float(q.magnitude)
        else:
            try:
                rate = float(q.to(unit).magnitude)
            except pint.DimensionalityError:
                raise ValueError(f"must be {what}, got {value!r}") from None
    else:
        raise ValueError(f"must be {what}, got {value!r}")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"must be a finite non-negative {noun}, got {value!r}")
    return rate


def parse_rate(value: object) -> float:
    """Return ``value`` in events per second.

    Accepts ``"1/s"``, ``"10/min"``, ``"0.5/s"``, ``"3600/h"``, or a plain number (per second).
    """
    return _per_second(value, "1/second", "a rate like 1/s or 10/min", "rate")


def parse_bytes_per_second(value: object) -> int:
    """A per-second byte limit in bytes per second (an int): a size, meant per second (``"1MiB"``,
    as the field's name says), or a byte rate (``"1MiB/s"``); bounded like :func:`parse_bytes`."""
    if isinstance(value, str) and not isinstance(value, bool):
        q = _quantity(value, f"a size per second ({BYTE_UNITS}, optionally /s)")
        if _information_units(q) and str(q.dimensionality) == "1 / [time]":
            return parse_bytes(parse_byte_rate(value))
    return parse_bytes(value)


def format_bytes(n: float) -> str:
    """Format a byte count for people: ``1048576 -> '1.00 MiB'``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def format_duration(seconds: float) -> str:
    """Format a duration for messages: ``0.001 -> '1ms'``, ``5.0 -> '5s'``, ``5400 -> '90min'``."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"


def parse_byte_rate(value: object) -> float:
    """Return ``value`` in bytes per second.

    Accepts ``"50MiB/s"``, ``"200 MB/s"``, ``"3GiB/min"`` or a plain number of bytes per second.
    """
    return _per_second(value, "byte/second", "a byte rate like 50MiB/s", "byte rate")

