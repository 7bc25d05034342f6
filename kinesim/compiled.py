"""Access to the optional numba-compiled twins of :mod:`kinesim._kernels`.

numba costs about half a second to import and to load its cached machine code, more than a small
run takes, so a run uses the twins only when it is large (:func:`use_kernels`). Their results are
the numpy versions' results, bit for bit (``tests/test_kernels.py``), so this choice changes only
the speed. ``KINESIM_NUMBA=0`` never uses them, ``KINESIM_NUMBA=1`` always does (an error without
numba), ``auto`` (the default) decides by size."""
from __future__ import annotations

import os
import warnings

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
    """The compiled function ``name`` of :mod:`kinesim._kernels`, or None when numba is missing.
    Its first call in a process loads numba's cached machine code (``kinesim/__pycache__``); an
    unreadable cache (a file cut short, say) is then discarded and the kernels compiled afresh,
    with a warning, instead of failing the run."""
    if "module" not in _LOADED:
        try:
            from kinesim import _kernels
        except ImportError:
            _kernels = None
        _LOADED["module"] = _kernels
    module = _LOADED["module"]
    if module is None:
        return None
    if name not in _LOADED:
        _LOADED[name] = _first_call(name, getattr(module, name))
    return _LOADED[name]


def _first_call(name: str, kernel):
    """``kernel`` (a numba dispatcher) behind a guard for its first call, which loads the cache."""

    def call(*args):
        _LOADED[name] = kernel  # later calls go straight to the kernel
        try:
            return kernel(*args)
        except Exception as exc:  # loading happens before the kernel runs: nothing has changed yet
            if not _from_numba_cache(exc):
                raise
            warnings.warn(f"numba's cache of the compiled kernels was unreadable ({type(exc).__name__}); "
                          "compiling them again", RuntimeWarning, stacklevel=2)
            for other in vars(_LOADED["module"]).values():
                if hasattr(other, "_cache") and hasattr(other._cache, "flush"):
                    other._cache.flush()  # every kernel: the broken file may be one it calls
            return kernel(*args)

    return call


def _from_numba_cache(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while numba read its cache files."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.replace(os.sep, "/").endswith("numba/core/caching.py"):
            return True
        tb = tb.tb_next
    return False
