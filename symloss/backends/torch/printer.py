"""Print IR expressions as torch code.

Numbers print as plain Python floats: torch treats them as weakly typed, so a
float32 tensor stays float32.  Every symbol is a tensor (the generated glue
turns parameters into 0-dim tensors), so comparisons give bool tensors and a
``Piecewise`` becomes nested ``torch.where``.  A function or primitive without
a torch form is a loud error naming it.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import precedence

from ...derive import primitives as P
from ...errors import DerivationError
from ...ir.nan import keepnan
from ..numba_cpu.printer import NumbaPrinter
from .primitives import FUNCTIONS as PRIMITIVE_FUNCTIONS, SOURCES as PRIMITIVE_SOURCES

TORCH_FUNCTIONS = {
    sp.exp: "torch.exp",
    sp.log: "torch.log",
    sp.sqrt: "torch.sqrt",
    sp.sin: "torch.sin",
    sp.cos: "torch.cos",
    sp.tanh: "torch.tanh",
    sp.cosh: "torch.cosh",
    sp.sinh: "torch.sinh",
    sp.atan: "torch.atan",
}

SIGN_HELPER = '''
def sign(x):
    # sign with sign(NaN) = NaN (torch.sign gives 0 there)
    return torch.where(x == x, torch.sign(x), x)
'''


class TorchPrinter(NumbaPrinter):
    # what differs between array frameworks (the jax printer sets its own)
    BACKEND = "torch"
    FUNCTIONS = TORCH_FUNCTIONS  # SymPy function -> the framework's
    PRIMITIVE_FUNCTIONS = PRIMITIVE_FUNCTIONS  # primitive -> a framework function
    PRIMITIVE_SOURCES = PRIMITIVE_SOURCES  # primitive -> helper source emitted into the module
    SIGN_HELPER = SIGN_HELPER
    SQRT, RSQRT, EXP, ABS, WHERE = "torch.sqrt", "torch.rsqrt", "torch.exp", "torch.abs", "torch.where"

    printmethod = "_torchcode"

    def _typed(self, value: float) -> str:
        return repr(float(value)) if value >= 0 else f"(-{float(-value)!r})"

    def _print_Integer(self, expr):
        return self._typed(int(expr))

    _print_int = _print_Integer

    def _print_Half(self, expr):
        return "0.5"

    def _print_NegativeOne(self, expr):
        return "(-1.0)"

    def _print_One(self, expr):
        return "1.0"

    def _print_Zero(self, expr):
        return "0.0"

    def _print_NaN(self, expr):
        return "math.nan"

    def _print_Infinity(self, expr):
        return "math.inf"

    def _print_NegativeInfinity(self, expr):
        return "(-math.inf)"

    def _print(self, expr, **kwargs):
        # a constant subexpression (sqrt(2), log(2)) is folded to a float: torch
        # functions want tensors, and the value is the same
        if isinstance(expr, sp.Expr) and not expr.is_Atom and expr.is_number and not expr.has(P.Primitive):
            try:
                return self._typed(float(expr)) if float(expr) == float(expr) else "math.nan"
            except (TypeError, ValueError):
                pass
        return super()._print(expr, **kwargs)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.base, expr.exp
        b = self.parenthesize(base, precedence(expr), strict=False)
        if e.is_Integer and 1 <= int(e) <= 4:
            return "(" + "*".join([b] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) <= -1:
            return "(1.0/(" + "*".join([b] * -int(e)) + "))"
        if e == sp.S.Half:
            return f"{self.SQRT}({self._print(base)})"
        if e == -sp.S.Half:
            return f"{self.RSQRT}({self._print(base)})"
        if base == sp.E:
            return f"{self.EXP}({self._print(e)})"
        return f"({b}**{self.parenthesize(e, precedence(expr), strict=False)})"

    def _print_Abs(self, expr):
        return f"{self.ABS}({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        self.helpers["sign"] = self.SIGN_HELPER
        return f"sign({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        out = self._print(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            cond = piece.cond
            if cond == sp.true:
                out = self._print(piece.expr)
                continue
            out = f"{self.WHERE}({self._print(cond)}, {self._print(piece.expr)}, {out})"
        return out

    def _print_keepnan(self, expr):
        value, *probes = expr.args
        ps = [self._print(p) for p in probes]
        ok = " & ".join(f"({p} == {p})" for p in ps)
        return f"{self.WHERE}({ok}, {self._print(value)}, {' + '.join(ps)})"

    def _print_And(self, expr):
        return "(" + " & ".join(self._print(a) for a in sorted(expr.args, key=str)) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(a) for a in sorted(expr.args, key=str)) + ")"

    def _print_Not(self, expr):
        return f"(~{self._print(expr.args[0])})"

    def _print_Function(self, expr):
        func = type(expr)
        if func is keepnan:
            return self._print_keepnan(expr)
        args = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, P.Primitive):
            name = func.__name__
            if func is P.grouped:
                return f"({args})"
            if name in self.PRIMITIVE_FUNCTIONS:
                return f"{self.PRIMITIVE_FUNCTIONS[name]}({args})"
            if not self.PRIMITIVE_SOURCES.get(name):
                raise DerivationError(f"the {self.BACKEND} backend has no implementation of the primitive '{name}'")
            self.helpers[name] = self.PRIMITIVE_SOURCES[name]
            return f"{name}({args})"
        for sym_func, name in self.FUNCTIONS.items():
            if func is sym_func:
                return f"{name}({args})"
        raise DerivationError(f"the {self.BACKEND} backend has no code for the function '{func.__name__}'")

    def emptyPrinter(self, expr):
        raise DerivationError(f"the {self.BACKEND} backend cannot print {type(expr).__name__}: {expr}")


