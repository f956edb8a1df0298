"""NaN propagation through branches.

Every comparison with NaN is false, so a NaN input falls through to a
Piecewise's default branch; if that branch is a constant (Tukey beyond c, a
zero Hessian), the NaN would be silently lost.  ``keepnan(value, x, ...)``
marks such a branch: it equals ``value`` but is printed as
``value + 0*(x - x ...)``, which is NaN exactly when an input is.
"""
from __future__ import annotations

import sympy as sp


class keepnan(sp.Function):
    """Value of the first argument; NaN if any later argument is NaN (codegen only)."""

    def _latex(self, printer):
        return printer._print(self.args[0])


def guard_branches(expr: sp.Basic, inputs: set[sp.Symbol]) -> sp.Basic:
    """Wrap input-free default branches, and outputs missing an input, in keepnan."""

    def fix(pw: sp.Piecewise) -> sp.Piecewise:
        default = pw.args[-1].expr
        if default.free_symbols & inputs:
            return pw
        probes = sorted(set().union(*(p.cond.free_symbols for p in pw.args[:-1])) & inputs, key=str)
        if not probes:
            return pw
        return sp.Piecewise(*pw.args[:-1], (keepnan(default, *probes), True))

    expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), fix)
    missing = sorted(inputs - expr.free_symbols, key=str)
    # an output that ignores an input (a constant Hessian) must still be NaN
    # when that input is
    return keepnan(expr, *missing) if missing else expr
