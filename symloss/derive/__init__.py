"""derive: pure SymPy. Gradient, Hessian, non-smooth policy, stability rewrites, LaTeX."""
from .derivation import Derivation, Derivatives

__all__ = ["Derivation", "Derivatives"]
