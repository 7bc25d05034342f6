"""Access to the optional numba-compiled twins of :mod:`kinesim._kernels`.

numba costs about half a second to import and to load its cached machine code, more than a small
run takes, so a run uses the twins only when it is large (:func:`use_kernels`). Their results are
the numpy versions' results, bit for bit (``tests/test_kernels.py``), so this choice changes only
the speed. ``KINESIM_NUMBA=0`` never uses them, ``KINESIM_NUMBA=1`` always does (when numba is
installed)."""
from __future__ import annotations

import os

#: Expected user records of a run from which the compiled twins pay for their start-up.
LARGE_RUN_RECORDS = 2_000_000

_LOADED: dict[str, object] = {}


def use_kernels(expected_records: float) -> bool:
    """Whether a run of ``expected_records`` user records should use the compiled twins."""
    mode = os.environ.get("KINESIM_NUMBA", "auto")
    if mode == "0" or (mode != "1" and expected_records < LARGE_RUN_RECORDS):
        return False
    return compiled("compiled_chain") is not None


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
