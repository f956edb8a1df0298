"""check: verification of generated kernels (finite differences, mpmath, fused vs separate)."""
from .verify import Result, check_loss

__all__ = ["Result", "check_loss"]
