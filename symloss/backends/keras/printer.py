"""Print IR expressions as keras.ops code.

The torch printer's rules (plain Python floats, weakly typed on every Keras
backend so float32 stays float32; ``Piecewise`` as nested selects; constant
subexpressions folded), with ``keras.ops`` names.  A function or primitive
without a keras form is a loud error naming it.
"""
from __future__ import annotations

import sympy as sp

from ..torch.printer import TorchPrinter
from .primitives import FUNCTIONS as PRIMITIVE_FUNCTIONS, SOURCES as PRIMITIVE_SOURCES

KERAS_FUNCTIONS = {
    sp.exp: "ops.exp",
    sp.log: "ops.log",
    sp.sqrt: "ops.sqrt",
    sp.sin: "ops.sin",
    sp.cos: "ops.cos",
    sp.tanh: "ops.tanh",
    sp.cosh: "ops.cosh",
    sp.sinh: "ops.sinh",
    sp.atan: "ops.arctan",
}

SIGN_HELPER = '''
def sign(x):
    # sign with sign(NaN) = NaN on every backend (torch's sign gives 0 there)
    return ops.where(x == x, ops.sign(x), x)
'''


class KerasPrinter(TorchPrinter):
    """The torch printer's rules with keras.ops' names."""

    printmethod = "_kerascode"
    BACKEND = "keras"
    FUNCTIONS = KERAS_FUNCTIONS
    PRIMITIVE_FUNCTIONS = PRIMITIVE_FUNCTIONS
    PRIMITIVE_SOURCES = PRIMITIVE_SOURCES
    SIGN_HELPER = SIGN_HELPER
    SQRT, RSQRT, EXP, ABS, WHERE = "ops.sqrt", "ops.rsqrt", "ops.exp", "ops.abs", "ops.where"
