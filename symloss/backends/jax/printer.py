"""Print IR expressions as jax.numpy code.

The torch printer's rules (plain Python floats, which JAX treats as weakly
typed so float32 stays float32; ``Piecewise`` as nested selects; constant
subexpressions folded), with ``jnp`` functions.  A function or primitive
without a jax form is a loud error naming it.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import precedence

from ...derive import primitives as P
from ...errors import DerivationError
from ...ir.nan import keepnan
from ..torch.printer import TorchPrinter
from .primitives import FUNCTIONS, SOURCES

JAX_FUNCTIONS = {
    sp.exp: "jnp.exp",
    sp.log: "jnp.log",
    sp.sqrt: "jnp.sqrt",
    sp.sin: "jnp.sin",
    sp.cos: "jnp.cos",
    sp.tanh: "jnp.tanh",
    sp.cosh: "jnp.cosh",
    sp.sinh: "jnp.sinh",
    sp.atan: "jnp.arctan",
}

# jnp.sign(NaN) is NaN already; the helper keeps one spelling across backends
SIGN_HELPER = '''
def sign(x):
    # sign with sign(NaN) = NaN
    return jnp.where(x == x, jnp.sign(x), x)
'''


class JaxPrinter(TorchPrinter):
    printmethod = "_jaxcode"

    def _print_Pow(self, expr, rational=False):
        base, e = expr.base, expr.exp
        b = self.parenthesize(base, precedence(expr), strict=False)
        if e.is_Integer and 1 <= int(e) <= 4:
            return "(" + "*".join([b] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) <= -1:
            return "(1.0/(" + "*".join([b] * -int(e)) + "))"
        if e == sp.S.Half:
            return f"jnp.sqrt({self._print(base)})"
        if e == -sp.S.Half:
            return f"jax.lax.rsqrt({self._print(base)})"
        if base == sp.E:
            return f"jnp.exp({self._print(e)})"
        return f"({b}**{self.parenthesize(e, precedence(expr), strict=False)})"

    def _print_Abs(self, expr):
        return f"jnp.abs({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        self.helpers["sign"] = SIGN_HELPER
        return f"sign({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        out = self._print(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            if piece.cond == sp.true:
                out = self._print(piece.expr)
                continue
            out = f"jnp.where({self._print(piece.cond)}, {self._print(piece.expr)}, {out})"
        return out

    def _print_Function(self, expr):
        func = type(expr)
        if func is keepnan:
            return self._print_keepnan(expr)
        args = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, P.Primitive):
            name = func.__name__
            if func is P.grouped:
                return f"({args})"
            if name in FUNCTIONS:
                return f"{FUNCTIONS[name]}({args})"
            if name not in SOURCES or not SOURCES[name]:
                raise DerivationError(f"the jax backend has no implementation of the primitive '{name}'")
            self.helpers[name] = SOURCES[name]
            return f"{name}({args})"
        for sym_func, name in JAX_FUNCTIONS.items():
            if func is sym_func:
                return f"{name}({args})"
        raise DerivationError(f"the jax backend has no code for the function '{func.__name__}'")

    def emptyPrinter(self, expr):
        raise DerivationError(f"the jax backend cannot print {type(expr).__name__}: {expr}")
