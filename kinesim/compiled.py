"""Access to the optional numba-compiled twins of :mod:`kinesim._kernels`.

numba costs about half a second to import and to load its cached machine code, more than a small
run takes, so a run uses the twins only when it is large (:func:`use_kernels`). Their results are
the numpy versions' results, bit for bit (``tests/test_kernels.py``), so this choice changes only
the speed. ``KINESIM_NUMBA=0`` never uses them, ``KINESIM_NUMBA=1`` always does (an error without
numba), ``auto`` (the default) decides by size."""
from __future__ import annotations

import os

from kinesim.errors import ScenarioError

#: Expected user records of a run from which the compiled twins pay for their start-up.
LARGE_RUN_RECORDS = 2_000_000

_LOADED: dict[str, object] = {}


def use_kernels(expected_records: float) -> bool:
    """Whether a run of ``expected_records`` user records should use the compiled twins. Raises
    :class:`~kinesim.errors.ScenarioError` (path ``KINESIM_NUMBA``) for a value other than ``0``,
    ``1`` or ``auto``, or for ``1`` without numba."""
    mode = os.environ.get("KINESIM_NUMBA", "auto").strip().lower() or "auto"
    if mode not in ("0", "1", "auto"):
        raise ScenarioError("KINESIM_NUMBA", f"must be 0 (never), 1 (always) or auto (large runs), got {mode!r}")
    if mode == "0" or (mode == "auto" and expected_records < LARGE_RUN_RECORDS):
        return False
    available = compiled("compiled_chain") is not None
    if mode == "1" and not available:
        raise ScenarioError("KINESIM_NUMBA", "is 1 but numba is not installed (pip install numba, or unset it)")
    return available


def compiled(name: str):
    """The compiled function ``name`` of :mod:`kinesim._kernels`, or None when numba is missing."""
    if "module" not in _LOADED:
        try:
            from kinesim import _kernels
        except ImportError:
            _kernels = None
        _LOADED["module"] = _kernels
    module = _LOADED["module"]
    return getattr(module, name) if module is not None else None
