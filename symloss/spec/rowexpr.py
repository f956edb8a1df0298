"""Reductions over the class index of a row loss, as unevaluated SymPy nodes.

``RowSum(h, k)`` is sum_k h and ``RowMax(h, k)`` is max_k h, where ``h``
refers to class ``k`` of vector inputs as ``IndexedBase`` elements (``z[k]``).
SymPy never evaluates them; ``symloss.derive.row`` turns each into a named
reduction of the kernels and differentiates through it.
"""
from __future__ import annotations

import sympy as sp


class RowReduction(sp.Function):
    """Base class: args are (summand, index symbol)."""

    nargs = 2
    _latex_op = ""

    @property
    def summand(self) -> sp.Basic:
        return self.args[0]

    @property
    def index(self) -> sp.Symbol:
        return self.args[1]

    def _latex(self, printer, exp=None) -> str:
        body = printer._print(self.summand)
        if isinstance(self.summand, (sp.Add, sp.Mul)) and isinstance(self, RowSum):
            body = rf"\left({body}\right)"
        tex = rf"{self._latex_op}_{{{printer._print(self.index)}}} {body}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _eval_is_real(self):
        return self.summand.is_real

    def _eval_derivative(self, s):  # a reduction is opaque: derive.row differentiates it
        raise TypeError("differentiate row reductions with symloss.derive.row, not sympy.diff")


class RowSum(RowReduction):
    _latex_op = r"\sum"


class RowMax(RowReduction):
    _latex_op = r"\max"


def reductions(expr: sp.Basic) -> list[RowReduction]:
    """The reduction nodes of ``expr``, innermost first, each once, in a deterministic order."""
    seen: dict[sp.Basic, None] = {}
    for node in sp.postorder_traversal(expr):
        if isinstance(node, RowReduction):
            seen.setdefault(node, None)
    return list(seen)


def free_class_terms(expr: sp.Basic) -> set[sp.Indexed]:
    """Indexed entries (z[k]) of ``expr`` that are not inside a reduction."""
    # xreplace matches a node before its arguments, so outer reductions go whole
    stripped = expr.xreplace({r: sp.Dummy() for r in reductions(expr)})
    return stripped.atoms(sp.Indexed)
