"""An exact per-record reference model of kinesim, used only to check the fast engine."""
from .model import run_reference

__all__ = ["run_reference"]
