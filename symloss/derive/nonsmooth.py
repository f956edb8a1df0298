"""Policy for non-smooth functions, applied before and after differentiation.

* ``Max``/``Min`` become :class:`kinkmax`, whose derivative at a tie is the
  minimum-norm subgradient (0 for relu, hinge and pinball kinks).
* ``Abs`` differentiates to ``sign``, and ``sign(0) = 0``: again the
  minimum-norm subgradient.
* The derivative of ``sign`` (a ``DiracDelta``) is 0: it is 0 almost
  everywhere, and a delta can never be evaluated in a kernel.
* At a ``Piecewise`` boundary the derivative is that of the branch whose
  condition holds there (the first true condition wins).
"""
from __future__ import annotations

import sympy as sp

from ..errors import DerivationError
from .primitives import kinkmax


def _max(*args: sp.Basic) -> sp.Basic:
    out = args[0]
    for a in args[1:]:
        out = kinkmax(out, a)
    return out


def _min(*args: sp.Basic) -> sp.Basic:
    return -_max(*(-a for a in args))


def prepare(expr: sp.Basic) -> sp.Basic:
    """Replace Max/Min by their kink-aware forms; reject Piecewise without a default."""
    for pw in expr.atoms(sp.Piecewise):
        if pw.args[-1].cond is not sp.true:
            raise DerivationError(f"Piecewise without a default branch (last condition True): {pw}")
    return expr.replace(sp.Max, _max).replace(sp.Min, _min)


def clean_derivative(expr: sp.Basic) -> sp.Basic:
    """Drop Dirac deltas and refuse any Heaviside step (its value at 0 is ambiguous)."""
    expr = expr.replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    if expr.has(sp.Heaviside):
        raise DerivationError(f"derivative contains a Heaviside step, whose value at 0 is ambiguous: {expr}")
    if expr.has(sp.Derivative) or expr.has(sp.Subs):
        raise DerivationError(f"SymPy could not differentiate part of the expression: {expr}")
    return expr


def derivative(expr: sp.Basic, *symbols: sp.Symbol) -> sp.Basic:
    return clean_derivative(sp.diff(expr, *symbols))
