"""Presentation MathML from SymPy, for formulas that browsers typeset with no script or network.

SymPy's presentation printer does the work; this subclass adds what the
catalog needs: accents for names like ``yhat``, cases for ``Piecewise``, a
plain ``e`` for Euler's number, and the custom primitives printed as the
formulas they stand for (``sigmoid`` as σ, ``kinkmax`` as max, the rest by
their plain formula).
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.mathml import MathMLPresentationPrinter

from ..derive import primitives as P
from ..spec.rowexpr import RowMax, RowReduction

_ACCENTS = {"hat": "^", "bar": "¯", "tilde": "~", "dot": "˙"}
# barron_dalpha: its textbook form is the cancelling derivative it replaces; the spec's description defines it
_NAMED = {"sigmoid": "σ", "Tanh": "tanh", "kinkmax": "max", "sech2": None, "barron_dalpha": "∂ρ/∂α"}


class Printer(MathMLPresentationPrinter):
    def __init__(self):
        super().__init__({"ln_notation": False})

    def _el(self, tag: str, *children, text: str | None = None, **attrs):
        node = self.dom.createElement(tag)
        for k, v in sorted(attrs.items()):
            node.setAttribute(k.rstrip("_").replace("_", "-"), v)
        if text is not None:
            node.appendChild(self.dom.createTextNode(text))
        for c in children:
            node.appendChild(c)
        return node

    def _print_Symbol(self, sym, style="plain"):
        for suffix, mark in _ACCENTS.items():
            if sym.name.endswith(suffix) and len(sym.name) > len(suffix):
                base = super()._print_Symbol(sp.Symbol(sym.name[: -len(suffix)]), style)
                return self._el("mover", base, self._el("mo", text=mark), accent="true")
        return super()._print_Symbol(sym, style)

    _print_Dummy = _print_Symbol

    def _print_Exp1(self, e):
        return self._el("mi", text="e")

    def _print_exp(self, e):
        return self._el("msup", self._el("mi", text="e"), self._print(e.args[0]))

    def _print_sign(self, e):
        return self._el("mrow", self._el("mi", text="sgn"), self._paren_comma_separated(*e.args))

    def _print_BooleanTrue(self, e):
        return self._el("mtext", text="otherwise")

    def _print_Piecewise(self, expr):
        rows = []
        for value, cond in expr.args:
            if cond is sp.true:
                when = self._el("mtext", text="otherwise")
            else:
                when = self._el("mrow", self._el("mtext", text="if\u00a0"), self._print(cond))
            cells = [self._el("mtd", self._print(value), style="text-align: left; padding-right: 1em"),
                     self._el("mtd", when, style="text-align: left")]
            rows.append(self._el("mtr", *cells))
        return self._el("mrow", self._el("mo", text="{", stretchy="true"), self._el("mtable", *rows))

    def _print_Function(self, e):
        if isinstance(e, RowReduction):
            op = self._el("mo", text="max" if isinstance(e, RowMax) else "∑", movablelimits="false")
            head = self._el("munder", op, self._print(e.index))
            body = self._print(e.summand)
            if isinstance(e.summand, (sp.Add, sp.Mul)):
                body = self._el("mrow", self._el("mo", text="("), body, self._el("mo", text=")"))
            return self._el("mrow", head, body)
        if not isinstance(e, P.Primitive):
            return super()._print_Function(e)
        name = type(e).__name__
        if name == "sech2":
            head = self._el("msup", self._el("mi", text="sech"), self._el("mn", text="2"))
            return self._el("mrow", head, self._paren_comma_separated(*e.args))
        if name in _NAMED:
            return self._el("mrow", self._el("mi", text=_NAMED[name]), self._paren_comma_separated(*e.args))
        return self._print(type(e).naive(*e.args))


_PRINTER = Printer()


def inline(expr: sp.Basic) -> str:
    """The MathML of expr, without the <math> element."""
    return _PRINTER.doprint(expr)


def symbol(name: str) -> str:
    return inline(sp.Symbol(name))


def block(*parts: str) -> str:
    """A displayed equation made of MathML fragments."""
    return ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><mrow>'
            + "".join(parts) + "</mrow></math>")


def math_inline(*parts: str) -> str:
    return '<math xmlns="http://www.w3.org/1998/Math/MathML"><mrow>' + "".join(parts) + "</mrow></math>"


EQ = "<mo>=</mo>"


def partial(order: int, wrt: list[str]) -> str:
    """∂L/∂x, ∂²L/∂x², ∂²L/∂x∂z as MathML."""
    top = "<mi>L</mi>" if order == 1 else f"<msup><mo>∂</mo><mn>{order}</mn></msup><mi>L</mi>"
    if order == 1:
        top = "<mo>∂</mo>" + top
    if len(wrt) == 2 and wrt[0] == wrt[1]:
        bottom = f"<mo>∂</mo><msup>{symbol(wrt[0])}<mn>2</mn></msup>"
    else:
        bottom = "".join(f"<mo>∂</mo>{symbol(w)}" for w in wrt)
    return f"<mfrac><mrow>{top}</mrow><mrow>{bottom}</mrow></mfrac>"

