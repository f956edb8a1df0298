"""symloss: one loss expression -> gradient, Hessian, LaTeX and fused Numba kernels."""
from .errors import DerivationError, InputError, SpecError, SymlossError
from .runtime import Loss, load

__all__ = ["DerivationError", "InputError", "Loss", "SpecError", "SymlossError", "load"]
__version__ = "0.1.0"
