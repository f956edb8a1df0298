"""Print IR expressions as jax.numpy code.

The torch printer's rules (plain Python floats, which JAX treats as weakly
typed so float32 stays float32; ``Piecewise`` as nested selects; constant
subexpressions folded), with ``jnp`` functions.  A function or primitive
without a jax form is a loud error naming it.
"""
from __future__ import annotations

import sympy as sp

from ..torch.printer import TorchPrinter
from .primitives import FUNCTIONS as PRIMITIVE_FUNCTIONS, SOURCES as PRIMITIVE_SOURCES

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
    """The torch printer's rules with jax.numpy's names."""

    printmethod = "_jaxcode"
    BACKEND = "jax"
    FUNCTIONS = JAX_FUNCTIONS
    PRIMITIVE_FUNCTIONS = PRIMITIVE_FUNCTIONS
    PRIMITIVE_SOURCES = PRIMITIVE_SOURCES
    SIGN_HELPER = SIGN_HELPER
    SQRT, RSQRT, EXP, ABS, WHERE = "jnp.sqrt", "jax.lax.rsqrt", "jnp.exp", "jnp.abs", "jnp.where"
