"""Print IR expressions as keras.ops code.

The torch printer's rules (plain Python floats, weakly typed on every Keras
backend so float32 stays float32; ``Piecewise`` as nested selects; constant
subexpressions folded), with ``keras.ops`` names.  A function or primitive
without a keras form is a loud error naming it.
"""
from __future__ import annotations

import sympy as sp

from ...derive import primitives as P
from ..torch.printer import TorchPrinter
from .primitives import FUNCTIONS as PRIMITIVE_FUNCTIONS, SOURCES as PRIMITIVE_SOURCES

KERAS_FUNCTIONS = {
    sp.exp: "ops.exp",
    sp.log: "ops.log",
    sp.sqrt: "ops.sqrt",
    sp.sin: "ops.sin",
    sp.cos: "ops.cos",
    sp.atan: "ops.arctan",
}

SIGN_HELPER = '''
def sign(x):
    # sign with sign(NaN) = NaN on every backend (torch's sign gives 0 there)
    return ops.where(x == x, ops.sign(x), x)
'''


# Keras's jax backend computes ops.tanh, sinh, cosh (and sin, cos, arctan) in float32 even for float64
# input: keras.backend.result_type maps float64 to float32 on non-tensorflow backends.  The hyperbolic
# functions get helpers that keep float64 through expm1/exp, which keep the dtype on every backend;
# sin, cos and arctan have no such form in keras.ops, so float64 on Keras's jax backend gets float32
# digits there (no catalog loss uses them).
DTYPE_HELPERS = {
    "tanh": '''
def tanh(x):
    # Keras's jax backend computes ops.tanh in float32 even for float64; there tanh|x| = -t / (2 + t), t = expm1(-2|x|)
    if "float64" not in str(x.dtype):
        return ops.tanh(x)
    t = ops.expm1(-2.0 * ops.abs(x))
    r = -t / (2.0 + t)
    return ops.where(x < 0.0, -r, r)
''',
    "sinh": '''
def sinh(x):
    # float64 (ops.sinh may compute in float32): sinh|x| = (u + u / (u + 1)) / 2, u = expm1(|x|), exact near 0
    if "float64" not in str(x.dtype):
        return ops.sinh(x)
    u = ops.expm1(ops.abs(x))
    r = 0.5 * (u + ops.where(u == math.inf, 1.0, u / (u + 1.0)))
    return ops.where(x < 0.0, -r, r)
''',
    "cosh": '''
def cosh(x):
    # float64 (ops.cosh may compute in float32): e^2 / 2 + 1 / (2 e^2), e = exp(|x| / 2), finite up to cosh's overflow
    if "float64" not in str(x.dtype):
        return ops.cosh(x)
    e = ops.exp(0.5 * ops.abs(x))
    return (0.5 * e) * e + 0.5 / (e * e)
''',
}
_HELPER_OF = {sp.tanh: "tanh", sp.sinh: "sinh", sp.cosh: "cosh", P.Tanh: "tanh"}


class KerasPrinter(TorchPrinter):
    """The torch printer's rules with keras.ops' names."""

    printmethod = "_kerascode"
    BACKEND = "keras"
    FUNCTIONS = KERAS_FUNCTIONS
    PRIMITIVE_FUNCTIONS = PRIMITIVE_FUNCTIONS
    PRIMITIVE_SOURCES = PRIMITIVE_SOURCES
    SIGN_HELPER = SIGN_HELPER
    SQRT, RSQRT, EXP, ABS, WHERE = "ops.sqrt", "ops.rsqrt", "ops.exp", "ops.abs", "ops.where"

    def _print_Function(self, expr):
        name = _HELPER_OF.get(type(expr))
        if name is None:
            return super()._print_Function(expr)
        self.helpers[name] = DTYPE_HELPERS[name]
        return f"{name}({self._print(expr.args[0])})"
