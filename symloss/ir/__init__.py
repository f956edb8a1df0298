"""ir: per-kernel assignment lists after deterministic common-subexpression elimination."""
from .kernels import KERNELS, Assignment, KernelIR, LossIR, build_ir

__all__ = ["KERNELS", "Assignment", "KernelIR", "LossIR", "build_ir"]
