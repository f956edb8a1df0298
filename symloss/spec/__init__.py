"""spec: text -> validated, immutable LossSpec.

The loader (and with it SymPy) is imported on first use: the runtime needs
only the model and a catalog spec's header.
"""
from .model import Input, LossSpec, Param

__all__ = ["Input", "LossSpec", "Param", "load_spec", "spec_from_table"]


def __getattr__(name: str):
    if name in ("load_spec", "spec_from_table"):
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
