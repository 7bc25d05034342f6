"""User-facing errors: one line that names the YAML path and what is allowed."""
from __future__ import annotations

import difflib
import math


class ScenarioError(ValueError):
    """An invalid scenario. ``path`` is the YAML path (``fleets[0].rate``), ``message`` the reason.

    ``str(error)`` is the one line the CLI prints: ``"<path>: <message>"``.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(path, message)  # both in ``args``: SimPy re-raises process errors as type(e)(*e.args)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def did_you_mean(name: str, known) -> str:
    """``" (did you mean throttle_rate?)"`` for the closest of ``known`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_key(key, known, what: str = "key") -> KeyError:
    """A ``KeyError`` for ``key`` that suggests the closest of ``known`` (:func:`did_you_mean`), or
    lists them: ``'throtle_rate': no such key (did you mean throttle_rate?)``."""
    names = [k for k in known if isinstance(k, str)]
    hint = did_you_mean(str(key), names) or f"; known: {', '.join(sorted(names)[:40])}{', ...' if len(names) > 40 else ''}"
    return KeyError(f"{key!r}: no such {what}{hint}")


def format_path(loc: tuple) -> str:
    """``('fleets', 0, 'rate') -> 'fleets[0].rate'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_sci(x: float) -> str:
    """``7.3e12``-style: at most three significant digits, no '+' nor leading zeros in the exponent
    (``inf``: more than a float holds)."""
    if not math.isfinite(x):
        return "more than 1.8e308" if x > 0 else str(x)
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
