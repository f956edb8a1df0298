"""keras.ops implementations of every primitive in ``symloss.derive.primitives`` (and
the row calculus' ``quotient0``): source text emitted once into each generated
keras module that uses it, so that module imports only ``math`` and ``keras``
and runs on whichever backend Keras runs on (jax, torch, tensorflow).

The formulas are the jax backend's, one for one (elementwise; branches as
``ops.where`` selects with no ``0 * inf`` on the unselected side), spelt with
``keras.ops``.  Max/min against a constant: Keras's torch backend computes
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

import math

from ...derive import primitives as P

_INV_FACT = tuple(1.0 / math.factorial(n) for n in range(20))
_I19 = tuple(1.0 / (math.factorial(j) * (20 + j)) for j in range(19))
_INV_N = tuple(1.0 / n if n else 0.0 for n in range(20))

SOURCES: dict[str, str] = {
    'log1p': "",
    'expm1': "",
    'Tanh': "",
    'sigmoid': "",
    'grouped': "",
    'sech2': '''
def sech2(x):
    # 1/cosh(x)^2 = 4 e^{-2|x|} / (1 + e^{-2|x|})^2: no overflow, no cancellation
    e = ops.exp(-2.0 * ops.abs(x))
    d = 1.0 + e
    return 4.0 * e / (d * d)
''',
    'softplus': '''
def softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}): exact for any finite x, NaN propagates
    # max(x, 0): ops.maximum fuses under XLA, but Keras's torch backend computes it in float32
    m = ops.where(x > 0.0, x, 0.0) if "float64" in str(x.dtype) else ops.maximum(x, 0.0)
    return m + ops.log1p(ops.exp(-ops.abs(x)))
''',
    'logcosh': '''
def logcosh(x):
    # log cosh|x| = log1p(cosh m - 1) + (|x| - m), m = min(|x|, 20), cosh m - 1 = v^2/(2 + 2v), v = expm1(m):
    # exact near 0 (no cancellation) and branch-free (one expm1, one log1p under XLA); beyond 20,
    # log cosh grows by exactly |x| - m (the dropped log1p(e^{-2|x|}) is below 1e-17)
    a = ops.abs(x)
    # min(|x|, 20): ops.minimum fuses under XLA, but Keras's torch backend computes it in float32
    m = ops.where(a < 20.0, a, 20.0) if "float64" in str(a.dtype) else ops.minimum(a, 20.0)
    v = ops.expm1(m)
    return ops.log1p(v * v / (2.0 + 2.0 * v)) + (a - m)
''',
    'xlogy': '''
def xlogy(x, y):
    # x log(y), 0 where x = 0 (0 log 0 = 0); NaN in y still propagates
    return ops.where((x == 0.0) & (y == y), 0.0, x * ops.log(y))
''',
    'xlog1py': '''
def xlog1py(x, y):
    # x log(1 + y), 0 where x = 0
    return ops.where((x == 0.0) & (y == y), 0.0, x * ops.log1p(y))
''',
    'xdivy': '''
def xdivy(x, y):
    # x / y, 0 where x = 0 (the derivative of x log y at x = 0)
    return ops.where((x == 0.0) & (y == y), 0.0, x / y)
''',
    'quotient0': '''
def quotient0(x, y):
    # x / y, 0 where x = 0 (a norm's derivative where the vector vanishes)
    return ops.where((x == 0.0) & (y == y), 0.0, x / y)
''',
    'powdiv': '''
def powdiv(x, b, g, k):
    # x * b**g / b**k: x * b**(g - k) where b != 0; at b = 0, 0 where x * b**g is
    x = ops.zeros_like(b) + x  # an array (x may be a number), b's dtype
    n = x * b ** g
    at0 = ops.where(n == 0.0, 0.0, n / b ** k)
    r = ops.where(b != 0.0, x * b ** (g - k), at0)
    return ops.where((x == 0.0) & (b == b) & (g == g), 0.0, r)
''',
    'kinkmax': '''
def kinkmax(a, b):
    # max that propagates NaN from either side
    return ops.where(a >= b, a, ops.where(b > a, b, a + b))
''',
    'sqrt1pm1': '''
def sqrt1pm1(u):
    # sqrt(1 + u) - 1 = u / (sqrt(1 + u) + 1): no cancellation for small u
    return u / (ops.sqrt(1.0 + u) + 1.0)
''',
    'xmlog1p': '''
def xmlog1p(x):
    # x - log1p(x); near 0 with s = x/(2 + x): x^2/(2 + x) - 2(s^3/3 + s^5/5 + ...)
    far = x - ops.log1p(x)
    xs = ops.clip(x, -0.3, 0.3)
    s = xs / (2.0 + xs)
    s2 = s * s
    acc = 0.0 * s
    for k in range(27, 1, -2):
        acc = acc * s2 + 1.0 / k
    near = xs * xs / (2.0 + xs) - 2.0 * s * s2 * acc
    return ops.where(ops.abs(x) > 0.3, far, near)
''',
    'logistic': '''
def logistic(u, k):
    # softplus(u) + k*u, grouped so the linear parts never cancel the softplus
    tail = ops.log1p(ops.exp(-ops.abs(u)))
    return tail + ops.where(u > 0.0, (1.0 + k) * u, k * u)
''',
    'sigmoid_plus': '''
def sigmoid_plus(u, k):
    # sigmoid(u) + k with s = sigmoid(-|u|): (1 + k) - s for u > 0, else s + k
    e = ops.exp(-ops.abs(u))
    s = e / (1.0 + e)
    return ops.where(u > 0.0, (1.0 + k) - s, s + k)
''',
    'powm1': '''
def powm1(u, a):
    # (1 + u)**a - 1 without cancellation when a*log1p(u) is small
    return ops.expm1(a * ops.log1p(u))
''',
    'boxcox1p': '''
def boxcox1p(u, a):
    # ((1 + u)**a - 1) / a; log1p(u) where t = a log1p(u) is 0 or subnormal
    L = ops.log1p(u)
    t = a * L
    # the smallest normal number of L's dtype (float64's, else float32's)
    tiny = 2.2250738585072014e-308 if 'float64' in str(L.dtype) else 1.1754943508222875e-38
    small = (a == 0.0) | (ops.abs(t) < tiny)
    return ops.where(small, L, ops.expm1(t) / ops.where(small, 1.0, a))
''',
    'barron_dalpha': f'''
def barron_dalpha(rc, alpha):
    # |alpha-2|/4 K(L, a), s = rc^2, L = log1p(s/|alpha-2|), a = alpha/2, x = a L,
    # K(L, a) = int_0^L e^(a t) (t - 1 + e^(-t)) dt; the Numba helper's branches as selects
    inv_fact = {_INV_FACT!r}
    i19 = {_I19!r}
    inv_n = {_INV_N!r}
    # broadcast to one shape (zeros, not 0 * x, so no inf becomes NaN)
    rc, alpha = rc + ops.zeros_like(alpha), alpha + ops.zeros_like(rc)
    b = ops.abs(alpha - 2.0)
    bs = ops.where(b == 0.0, 1.0, b)
    s = rc * rc
    ss = ops.where((s == 0.0) | (s == math.inf), 1.0, s)
    u = s / bs
    L = ops.where(u < 1e30, ops.log1p(u), ops.log(ss) - ops.log(bs) + ops.log1p(bs / ss))
    a = 0.5 * alpha
    x = a * L
    a_ = ops.where(a == 0.0, 1.0, a)
    # |x| > 1: K integrated by parts twice
    km = -ops.expm1(-L)
    k = 0.0 * L
    for n in range(19, 1, -1):
        k = inv_fact[n] - L * k
    k = ops.where(L < 1.0, L * L * k, L - km)
    z = (a - 1.0) * L
    ez = ops.where(z != 0.0, ops.expm1(z) / ops.where(z != 0.0, z, 1.0), 1.0)
    h = 0.25 * b
    r1 = ops.exp(x + ops.log(h)) * (k / a_ - km / (a_ * a_)) + h * L * ez / (a_ * a_)
    # |x| <= 1: I_n(x) = int_0^1 e^(x t) t^n dt from a series for I_19 and a recurrence
    xc = ops.clip(x, -1.0, 1.0)
    i_top = 0.0 * xc
    for j in range(18, -1, -1):
        i_top = i_top * xc + i19[j]
    ex = ops.exp(xc)
    i_n = i_top
    for n in range(19, 1, -1):
        i_n = (ex - xc * i_n) * inv_n[n]
    e1 = ops.where(xc != 0.0, ops.expm1(xc) / ops.where(xc != 0.0, xc, 1.0), 1.0)
    r2 = 0.25 * b * L * (L * i_n - e1 + ez)
    i_n = i_top
    acc = i_n * inv_fact[19]
    for n in range(18, 1, -1):
        i_n = (ex - xc * i_n) * inv_n[n + 1]
        acc = i_n * inv_fact[n] - L * acc
    r3 = 0.25 * b * L * L * L * acc
    r = ops.where(ops.abs(x) > 1.0, r1, ops.where(L >= 1.0, r2, r3))
    r = ops.where(s == math.inf, ops.where(alpha < 0.0, 2.0 / (alpha * alpha), s), r)
    return ops.where(b == 0.0, ops.where(rc == 0.0, rc * 0.0, ops.abs(rc) * math.inf), r)
''',
}

# primitives printed as one keras.ops function
# (Tanh is printed as the printer's float64-keeping tanh helper)
FUNCTIONS = {"log1p": "ops.log1p", "expm1": "ops.expm1", "sigmoid": "ops.sigmoid"}


def missing(primitives=None) -> list[str]:
    """Names of primitives without a keras implementation (the coverage test wants none)."""
    from ...derive.row import quotient0

    names = [p.__name__ for p in (primitives or (*P.ALL, quotient0))]
    return [n for n in names if n not in SOURCES]
