"""derive: pure SymPy. Gradient, Hessian, non-smooth policy, stability rewrites, LaTeX."""
from .derivation import Derivation, Derivatives

__all__ = ["Derivation", "Derivatives", "derive"]


def derive(spec):
    """The derivation every backend renders from: a RowDerivation for a row loss, else a Derivation."""
    if spec.kind == "row":
        from .row import RowDerivation

        return RowDerivation(spec)
    return Derivation(spec)
