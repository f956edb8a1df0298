"""symloss: one loss expression -> gradient, Hessian, LaTeX and fused Numba kernels."""
from .errors import DerivationError, InputError, SpecError, SymlossError
from .runtime import Loss, load

__all__ = ["DerivationError", "InputError", "Loss", "SpecError", "SymlossError", "combine", "load", "plot_history"]
__version__ = "0.1.0"


def __getattr__(name: str):  # on first use, so `import symloss` stays light
    if name == "combine":
        from .multitask import combine

        return combine
    if name == "plot_history":
        from .plotting import plot_history

        return plot_history
    raise AttributeError(f"module 'symloss' has no attribute {name!r}")
