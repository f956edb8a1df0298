"""Print IR expressions as Numba-compatible Python (the CPU backend's; the CUDA backend prints with it too).

Every number is printed as ``T(value)`` so float32 kernels stay float32 (a bare
literal would promote to float64).  Small integer powers become products.
Functions go through one table; anything outside it is a loud error naming the
function, never silently wrong code.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from ...derive import primitives as P
from ...errors import DerivationError
from ...ir.nan import keepnan
from .primitives import SOURCES, NumbaCode

# SymPy function -> math-module name (all exist in numba's math support, CPU and CUDA).
MATH_FUNCTIONS = {
    sp.exp: "exp",
    sp.log: "log",
    sp.sqrt: "sqrt",
    sp.sin: "sin",
    sp.cos: "cos",
    sp.tanh: "tanh",
    sp.cosh: "cosh",
    sp.sinh: "sinh",
    sp.atan: "atan",
}

# Helpers that are not primitives but still need emitted code.
SIGN_HELPER = '''
def sign(x, T):
    # sign with sign(0) = 0 and sign(NaN) = NaN
    if x > T(0):
        return T(1)
    if x < T(0):
        return T(-1)
    return x * T(0)
'''


_SPECIAL_FUNCTIONS = (sp.Piecewise, sp.Abs, sp.sign)


class NumbaPrinter(PythonCodePrinter):
    """Prints expressions whose numbers are typed by a float class ``T``."""

    printmethod = "_numbacode"

    def __init__(self, settings=None):
        super().__init__(dict(settings or {}, fully_qualified_modules=False))
        self.helpers: dict[str, str] = {}  # name -> source, for the helpers used

    # numbers ---------------------------------------------------------------
    def _typed(self, value: float) -> str:
        return f"T({float(value)!r})" if value >= 0 else f"-T({-float(value)!r})"

    def _print_Integer(self, expr):
        n = int(expr)
        if abs(n) > 2**53:  # Numba cannot type an integer literal past int64; T is a float anyway
            return self._typed(float(n))
        return f"T({n})" if n >= 0 else f"-T({-n})"

    _print_int = _print_Integer

    def _print_Rational(self, expr):
        return self._typed(float(expr))

    def _print_Float(self, expr):
        return self._typed(float(expr))

    def _print_Half(self, expr):
        return "T(0.5)"

    def _print_NegativeOne(self, expr):
        return "-T(1)"

    def _print_One(self, expr):
        return "T(1)"

    def _print_Zero(self, expr):
        return "T(0)"

    def _print_Exp1(self, expr):
        return self._typed(float(sp.E))

    def _print_Pi(self, expr):
        return self._typed(float(sp.pi))

    def _print_NaN(self, expr):
        return "T(math.nan)"

    def _print_Infinity(self, expr):
        return "T(math.inf)"

    def _print_NegativeInfinity(self, expr):
        return "T(-math.inf)"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    # arithmetic -------------------------------------------------------------
    def _print_Pow(self, expr, rational=False):
        base, e = expr.base, expr.exp
        b = self.parenthesize(base, precedence(expr), strict=False)
        if e.is_Integer and 1 <= int(e) <= 4:
            return "(" + "*".join([b] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) <= -1:
            return "(T(1)/(" + "*".join([b] * -int(e)) + "))"
        if e == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        if e == -sp.S.Half:
            return f"(T(1)/math.sqrt({self._print(base)}))"
        if base == sp.E:
            return f"math.exp({self._print(e)})"
        return f"({b}**{self.parenthesize(e, precedence(expr), strict=False)})"

    def _print_Mul(self, expr):
        # x / b**k is printed as x/b/.../b: dividing step by step cannot
        # overflow where b**k would (the Cauchy Hessian at |r| = 1e150)
        den = [f for f in expr.args if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp <= -2]
        if not den:
            return super()._print_Mul(expr)
        num = sp.Mul(*[f for f in expr.args if f not in den])
        # a product's own level: precedence(expr) is an Add's for -x/b**2, which
        # would leave a sum in the denominator unparenthesised
        level = PRECEDENCE["Mul"]
        out = self.parenthesize(num, level, strict=False)
        for d in sorted(den, key=sp.default_sort_key):
            out += f"/{self.parenthesize(d.base, level, strict=False)}" * int(-d.exp)
        return f"({out})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        self.helpers["sign"] = SIGN_HELPER
        return f"sign({self._print(expr.args[0])}, T)"

    def _print_Piecewise(self, expr):
        out = self._print(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            out = f"({self._print(piece.expr)} if {self._print(piece.cond)} else {out})"
        return out

    def _print_keepnan(self, expr):
        # the value where every probe is a number (an infinite one too: x - x would be NaN there),
        # else their sum, which is NaN
        value, *probes = expr.args
        ps = [self._print(p) for p in probes]
        ok = " & ".join(f"({p} == {p})" for p in ps)
        return f"({self._print(value)} if {ok} else {' + '.join(ps)})"

    def _print_Relational(self, expr):
        op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return "(" + " and ".join(self._print(a) for a in sorted(expr.args, key=str)) + ")"

    def _print_Or(self, expr):
        return "(" + " or ".join(self._print(a) for a in sorted(expr.args, key=str)) + ")"

    def _print_Not(self, expr):
        return f"(not {self._print(expr.args[0])})"

    # functions --------------------------------------------------------------
    def _print(self, expr, **kwargs):
        # Every function goes through _print_Function's table: the parent
        # printer knows many (gamma, erf, ...) that numba may not compile.
        if isinstance(expr, sp.Function) and not isinstance(expr, _SPECIAL_FUNCTIONS):
            return self._print_Function(expr)
        return super()._print(expr, **kwargs)

    def _print_Function(self, expr):
        func = type(expr)
        if func is keepnan:
            return self._print_keepnan(expr)
        args = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, P.Primitive):
            if func is P.grouped:
                return f"({args})"
            impl = implementation(func)
            if impl.math_name:
                return f"math.{impl.math_name}({args})"
            self.helpers[func.__name__] = impl.helper
            return f"{func.__name__}({args}, T)"
        for sym_func, name in MATH_FUNCTIONS.items():
            if func is sym_func:
                return f"math.{name}({args})"
        raise DerivationError(f"the Numba backend has no code for the function '{func.__name__}'")

    def _print_Symbol(self, expr):
        return expr.name

    def emptyPrinter(self, expr):
        raise DerivationError(f"the Numba backend cannot print {type(expr).__name__}: {expr}")

    def _print_Derivative(self, expr):
        return self.emptyPrinter(expr)

    def _print_DiracDelta(self, expr):
        return self.emptyPrinter(expr)

    def _print_Heaviside(self, expr):
        return self.emptyPrinter(expr)


class VectorPrinter(NumbaPrinter):
    """The CPU printer: transcendental functions from the vectorisable math library.

    libm calls keep a loop scalar; ``symloss.mathlib``'s functions inline and
    vectorise.  ``library`` collects the names used, for ``mathlib.source``.
    """

    LIBRARY = {sp.exp: "fexp", sp.log: "flog", sp.tanh: "ftanh"}

    def __init__(self, settings=None):
        super().__init__(settings)
        self.library: set[str] = set()

    def _library_call(self, name: str, args) -> str:
        self.library.add(name)
        return f"{name}({', '.join(self._print(a) for a in args)}, T)"

    def _print_Function(self, expr):
        func = type(expr)
        if func in self.LIBRARY:
            return self._library_call(self.LIBRARY[func], expr.args)
        if isinstance(expr, P.Primitive) and func is not P.grouped:
            impl = implementation(func)
            if impl.library_name:
                return self._library_call(impl.library_name, expr.args)
            if impl.vector_helper:
                self.helpers[func.__name__] = impl.vector_helper
                self.library.update(_library_names(impl.vector_helper))
                return f"{func.__name__}({', '.join(self._print(a) for a in expr.args)}, T)"
        return super()._print_Function(expr)

    def _print_Pow(self, expr, rational=False):
        if expr.base == sp.E:
            return self._library_call("fexp", [expr.exp])
        return super()._print_Pow(expr, rational)


def implementation(func: type) -> NumbaCode:
    """The Numba code of a primitive; a loud error if this backend lacks it."""
    impl = SOURCES.get(func.__name__)
    if impl is None or not (impl.math_name or impl.helper or impl.library_name or impl.vector_helper):
        raise DerivationError(f"the Numba backend has no code for the primitive '{func.__name__}'")
    return impl


def _library_names(source: str) -> set[str]:
    """The math library's entries a helper calls: public names and internal _ml_ ones."""
    from ... import mathlib

    return {name for name in mathlib.SOURCES if re.search(rf"\b{name}\(", source)}
