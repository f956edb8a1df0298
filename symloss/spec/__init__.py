"""spec: text -> validated, immutable LossSpec."""
from .load import load_spec, spec_from_table
from .model import Input, LossSpec, Param

__all__ = ["Input", "LossSpec", "Param", "load_spec", "spec_from_table"]
