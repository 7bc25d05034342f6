"""Ctrl-C where Python cannot raise it: in a callback from C (numba's compiler calls back
through ctypes, which prints and drops an exception raised there) or inside compiled code (which
turns it into a ``SystemError``). The command line (:mod:`kinesim.cli`) uses these to end such a
run as interrupted."""
from __future__ import annotations

#: Set when a Ctrl-C was raised where Python could only drop it (a callback from C: numba's compiler
#: calls back through ctypes); the run then ends as interrupted (:func:`note_dropped_interrupts`).
DROPPED_INTERRUPT: list[bool] = []


def note_dropped_interrupts(default_hook):
    """A ``sys.unraisablehook`` that records a dropped KeyboardInterrupt (instead of printing its
    traceback) and hands anything else to ``default_hook``."""
    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            DROPPED_INTERRUPT.append(True)
        else:
            default_hook(unraisable)
    return hook


def from_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a Ctrl-C: a KeyboardInterrupt in its chain of causes (compiled
    code turns one into a SystemError), or one dropped in a callback meanwhile."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return bool(DROPPED_INTERRUPT)
