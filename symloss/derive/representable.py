"""Whether an expression's constants can be written into float64 code.

The printers write each number as a literal of the kernel's float type: a
complex constant (sqrt(-1), log(-2), (-1)**(1/3)) or one past the float64 range (1e300 *
1e300, exp(800.0), 2**2000) would print as code that does not compile or
names an undefined ``inf``.  The spec loader refuses them in what the user
wrote, and the IR in what the derivation made of it (a derivative can
square a large constant)."""
from __future__ import annotations

import math

import sympy as sp

from .. import limits


_INFINITIES = (sp.oo, -sp.oo, sp.zoo, sp.nan)


def float64_problem(expr: sp.Basic) -> str | None:
    """Why ``expr`` cannot be printed as real float64 code, or None."""
    if expr.has(sp.I):
        return "the expression is not real-valued (it contains the imaginary unit)"
    for node in limits.distinct_nodes(expr):
        if node in _INFINITIES:  # the printers write these (and the parser refuses them as undefined)
            continue
        if node.is_number and not isinstance(node, sp.Number) and node.is_extended_real is False:
            return f"the expression is not real-valued ({sp.sstr(node)[:40]} is not a real number)"
        if isinstance(node, sp.Number):
            try:
                value = float(node)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                text = sp.sstr(node)
                shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
                return f"the constant {shown} is outside the float64 range"
    return None
