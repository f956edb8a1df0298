"""keras.ops implementations of every primitive in ``symloss.derive.primitives`` (and
the row calculus' ``quotient0``): source text emitted once into each generated
keras module that uses it, so that module imports only ``math`` and ``keras``
and runs on whichever backend Keras runs on (jax, torch, tensorflow).

The formulas are the jax backend's, one for one (elementwise; branches as
``ops.where`` selects with no ``0 * inf`` on the unselected side): its source
text respelt with ``keras.ops``, and four lines replaced (``_KERAS_LINES``).
Max/min against a constant: Keras's torch backend computes
``ops.maximum``/``ops.minimum`` of float64 tensors in float32 (its result_type
maps float64 to float32 off tensorflow), while a select (``ops.where``, or
``ops.clip``) keeps the dtype but is not fused into the loss's reduction by XLA
CPU (log_cosh through the keras module took 1.2-1.4x Keras's time at 10M
float32 elements, 1.0x with ``ops.minimum``): float64 selects, other dtypes
``ops.maximum``/``ops.minimum``, decided by the dtype when traced.  Also
``ops.broadcast_arrays`` and ``finfo`` do not exist there, so
barron_dalpha broadcasts by adding zeros and boxcox1p takes the float32 or
float64 ``tiny`` by the dtype's name.  Keras never differentiates them: the
generated ``ops.custom_gradient`` rule is the symbolic gradient.
"""
from __future__ import annotations

from ...derive import primitives as P
from ..jax.primitives import SOURCES as _JAX_SOURCES

# (primitive, the jax line respelt, what keras runs instead)
_KERAS_LINES = (
    ("softplus", "    return ops.maximum(x, 0.0) + ops.log1p(ops.exp(-ops.abs(x)))\n",
     "    # max(x, 0): ops.maximum fuses under XLA, but Keras's torch backend computes it in float32\n"
     "    m = ops.where(x > 0.0, x, 0.0) if \"float64\" in str(x.dtype) else ops.maximum(x, 0.0)\n"
     "    return m + ops.log1p(ops.exp(-ops.abs(x)))\n"),
    ("logcosh", "    m = ops.minimum(a, 20.0)\n",
     "    # min(|x|, 20): ops.minimum fuses under XLA, but Keras's torch backend computes it in float32\n"
     "    m = ops.where(a < 20.0, a, 20.0) if \"float64\" in str(a.dtype) else ops.minimum(a, 20.0)\n"),
    ("boxcox1p", "    tiny = ops.finfo(L.dtype).tiny\n",
     "    # the smallest normal number of L's dtype (float64's, else float32's)\n"
     "    tiny = 2.2250738585072014e-308 if 'float64' in str(L.dtype) else 1.1754943508222875e-38\n"),
    ("barron_dalpha", "    rc, alpha = ops.broadcast_arrays(rc, alpha)\n",
     "    # broadcast to one shape (zeros, not 0 * x, so no inf becomes NaN)\n"
     "    rc, alpha = rc + ops.zeros_like(alpha), alpha + ops.zeros_like(rc)\n"),
)


def _keras_sources() -> dict[str, str]:
    out = {name: text.replace("jnp.", "ops.") for name, text in _JAX_SOURCES.items()}
    for name, old, new in _KERAS_LINES:
        if out[name].count(old) != 1:  # the jax source changed under this table
            raise AssertionError(f"keras primitives: {name!r} no longer has the line {old!r}")
        out[name] = out[name].replace(old, new)
    return out


SOURCES: dict[str, str] = _keras_sources()

# primitives printed as one keras.ops function
# (Tanh is printed as the printer's float64-keeping tanh helper)
FUNCTIONS = {"log1p": "ops.log1p", "expm1": "ops.expm1", "sigmoid": "ops.sigmoid"}


def missing(primitives=None) -> list[str]:
    """Names of primitives without a keras implementation (the coverage test wants none)."""
    from ...derive.row import quotient0

    names = [p.__name__ for p in (primitives or (*P.ALL, quotient0))]
    return [n for n in names if n not in SOURCES]
