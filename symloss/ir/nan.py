"""NaN propagation through branches.

Every comparison with NaN is false, so a NaN input falls through to a
Piecewise's default branch; if that branch is a constant (Tukey beyond c, a
zero Hessian), the NaN would be silently lost.  ``keepnan(value, x, ...)``
marks such a branch: it equals ``value`` but is printed as
``value if x == x ... else x + ...``, which is NaN exactly when an input is
(an infinite input keeps the value: ``x - x`` would be NaN there).
"""
from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational


class keepnan(sp.Function):
    """Value of the first argument; NaN if any later argument is NaN (codegen only)."""

    def _latex(self, printer):
        return printer._print(self.args[0])


def _reachable_with_nan(cond: sp.Basic, x: sp.Symbol) -> bool:
    """Whether ``cond`` can hold while ``x`` is NaN: every comparison with NaN
    is false (``!=`` true), the rest may go either way."""
    nan_values = {r: sp.true if isinstance(r, sp.Ne) else sp.false
                  for r in cond.atoms(Relational) if x in r.free_symbols}
    return cond.xreplace(nan_values) is not sp.false


def guard_branches(expr: sp.Basic, inputs: set[sp.Symbol]) -> sp.Basic:
    """Wrap in keepnan each branch that a NaN input can select although its value
    does not depend on that input, and outputs missing an input."""

    def fix(pw: sp.Piecewise) -> sp.Piecewise:
        # a NaN makes the comparisons on it false, so the conditions fall through
        # to a later branch (Tukey's constant beyond c; Piecewise((yhat, yhat > 0),
        # (y, True)) at yhat = NaN), or one not on it holds (pa < 1)
        used = pw.free_symbols & inputs
        pieces = []
        for value, cond in pw.args:
            lost = [x for x in sorted(used - value.free_symbols, key=str) if _reachable_with_nan(cond, x)]
            pieces.append((keepnan(value, *lost) if lost else value, cond))
        return sp.Piecewise(*pieces) if pieces != list(pw.args) else pw

    expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), fix)
    missing = sorted(inputs - expr.free_symbols, key=str)
    # an output that ignores an input (a constant Hessian) must still be NaN
    # when that input is
    return keepnan(expr, *missing) if missing else expr
