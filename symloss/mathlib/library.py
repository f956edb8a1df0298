"""Source templates of the math library (expanded by ``symloss.mathlib``).

Each entry is the source text of one top-level definition group, emitted
verbatim into generated modules (which import ``math``, ``numpy as np`` and
``numba``).  Placeholders are expanded from ``coefficients.py``:

* ``{{estrin NAME x x2 x4 ...}}`` -> NAME's polynomial by Estrin's scheme, given
  the names of x, x^2, x^4... (which the template computes); coefficients are
  plain literals for ``_F64`` names and ``T(c)`` for ``_F32`` names.
* ``{{poly NAME x}}``    -> the same by Horner's scheme.
* ``{{const NAME}}``     -> the constant's literal (``T(c)`` for ``_F32`` names).

Scheme.  A public function ``fexp(x, T)`` is a stub with a Numba overload that
picks, at typing time, a float32 or a float64 implementation from ``T``
(``numba.types.NumberClass``): each implementation is straight-line code with
its own polynomial degree and constants, so each dtype compiles to branch-free
code and only the one used is compiled.  Implementations take ``(x, T)`` and
cast ``x`` to their float type first.  Every conditional is a select on values
already computed (``a if c else b`` of plain values), so LLVM if-converts it.
"""
from __future__ import annotations

# name -> template.  Order is the emission order (dependencies first).
ENTRIES: dict[str, str] = {}

ENTRIES["_ml_jit"] = '''
# symloss math library: branch-free exp/log family that LLVM vectorises.
# Options of the float32/float64 implementations behind each overload; "contract"
# only lets LLVM fuse a*b + c into an FMA (one rounding instead of two).
_ML_JIT = {"error_model": "numpy", "fastmath": {"contract"}, "forceinline": True}


def _ml_is_f32(x, T):
    # typing time: the float type asked for by T (a NumberClass), else x's own
    t = getattr(T, "instance_type", x)
    return t == numba.types.float32
'''

_BITCAST = '''
@numba.extending.intrinsic
def {name}(typingctx, v):
    # reinterpret the bits of {src} as {dst} (LLVM bitcast; free in vector code)
    if not isinstance(v, ({accept})):
        return None

    def codegen(context, builder, sig, args):
        w = context.cast(builder, args[0], sig.args[0], numba.types.{src})
        return builder.bitcast(w, context.get_value_type(numba.types.{dst}))

    return numba.types.{dst}(v), codegen
'''

ENTRIES["_ml_i64_as_f64"] = _BITCAST.format(
    name="_ml_i64_as_f64", src="int64", dst="float64", accept="numba.types.Integer,"
)
ENTRIES["_ml_f64_as_i64"] = _BITCAST.format(
    name="_ml_f64_as_i64", src="float64", dst="int64", accept="numba.types.Float,"
)
ENTRIES["_ml_i32_as_f32"] = _BITCAST.format(
    name="_ml_i32_as_f32", src="int32", dst="float32", accept="numba.types.Integer,"
)
ENTRIES["_ml_f32_as_i32"] = _BITCAST.format(
    name="_ml_f32_as_i32", src="float32", dst="int32", accept="numba.types.Float,"
)


# Plain-Python bodies of the stubs (numpy, not the algorithms below): what runs
# when the caller is not compiled, e.g. under NUMBA_DISABLE_JIT=1.
_PYTHON = {
    "fexp": "np.exp(x)",
    "fexpm1": "np.expm1(x)",
    "flog": "np.log(x)",
    "flog1p": "np.log1p(x)",
    "_ml_log1pu": "np.log1p(x)",
    "ftanh": "np.tanh(x)",
    "fsigmoid": "T(1.0) / (T(1.0) + np.exp(-x))",
    "fsoftplus": "np.logaddexp(T(0.0), x)",
    "flogcosh": "(np.log1p(T(2.0) * np.sinh(x / T(2.0)) ** 2) if abs(x) < T(0.75)"
    " else abs(x) + np.log1p(np.exp(T(-2.0) * abs(x))) - T(0.6931471805599453))",
    "fsech2": "T(1.0) / np.cosh(x) ** 2",
}


def _public(name: str, doc: str, f64: str, f32: str) -> str:
    """Stub + overload + the two implementations of one function of (x, T).

    The implementations are named ``<base>_f64`` and ``<base>_f32`` with
    ``base = _ml_<name>`` (or ``name`` itself for internal ``_ml_`` names).
    """
    base = name if name.startswith("_ml_") else f"_ml_{name}"
    return f'''
def {name}(x, T):
    """{doc}: in numba-compiled code the overload below replaces this body."""
    x = T(x)
    with np.errstate(all="ignore"):
        return T({_PYTHON[name]})


@numba.extending.overload({name}, jit_options=_ML_JIT)
def {base}_ol(x, T):
    return {base}_f32 if _ml_is_f32(x, T) else {base}_f64

{f64}
{f32}'''


# --- exp -------------------------------------------------------------------
# x = k ln2 + r, |r| <= ln2/2 (k = round(x log2 e) read off the low bits of
# x log2e + 1.5 * 2^52, no float->int conversion); r by Cody-Waite with a split
# ln 2; exp(r) = 1 + (r + r^2 q(r)); 2^k = 2^(k>>1) * 2^(k - k>>1), each factor
# built by bit cast and normal, so results down to the smallest subnormal round
# once.  Arguments past the overflow/underflow thresholds are computed as exp(0)
# and replaced by inf/0 afterwards: k stays in range and no lane produces an
# underflow (which costs a slow microcode assist on x86); NaN flows through.
ENTRIES["fexp"] = _public(
    "fexp",
    "e**x",
    '''
def _ml_fexp_f64(x, T):
    x = np.float64(x)
    under = x < -745.2
    over = x > 709.8
    y = 0.0 if under else x
    y = 0.0 if over else y
    t = y * {{const LOG2E_F64}} + 6755399441055744.0
    k = _ml_f64_as_i64(t) - 0x4338000000000000
    kf = t - 6755399441055744.0
    r = (y - kf * {{const LN2_HI_F64}}) - kf * {{const LN2_LO_F64}}
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    em = r + r2 * {{estrin EXPM1_Q_F64 r r2 r4 r8}}
    p = 1.0 + em
    k1 = k >> 1
    res = p * _ml_i64_as_f64((k1 + 1023) << 52) * _ml_i64_as_f64((k - k1 + 1023) << 52)
    res = 0.0 if under else res
    return math.inf if over else res
''',
    '''
def _ml_fexp_f32(x, T):
    x = T(x)
    under = x < T(-104.0)
    over = x > T(88.8)
    y = T(0.0) if under else x
    y = T(0.0) if over else y
    t = y * {{const LOG2E_F32}} + T(12582912.0)
    k = _ml_f32_as_i32(t) - 0x4B400000
    kf = t - T(12582912.0)
    r = (y - kf * {{const LN2_HI_F32}}) - kf * {{const LN2_LO_F32}}
    r2 = r * r
    r4 = r2 * r2
    em = r + r2 * {{estrin EXPM1_Q_F32 r r2 r4}}
    p = T(1.0) + em
    k1 = k >> 1
    res = p * _ml_i32_as_f32((k1 + 127) << 23) * _ml_i32_as_f32((k - k1 + 127) << 23)
    res = T(0.0) if under else res
    return T(math.inf) if over else res
''',
)

# --- expm1 -----------------------------------------------------------------
# Same reduction; expm1(x) = 2^k (expm1(r) + 1 - 2^-k).  k = 0 returns the
# polynomial itself (full relative accuracy near 0); 1 - 2^-k is exact for the
# k where it matters and its exponent is clamped where it does not (below
# x = -40, or -20 in float32, the result rounds to -1 and is set so).  The
# argument goes through fexp's very selects and reduction, instruction for
# instruction: where a kernel computes both of one argument (the Poisson and
# gamma losses' value and gradient, tanh and sech^2), LLVM computes them once.
ENTRIES["fexpm1"] = _public(
    "fexpm1",
    "e**x - 1",
    '''
def _ml_fexpm1_f64(x, T):
    x = np.float64(x)
    under = x < -745.2
    over = x > 709.8
    y = 0.0 if under else x
    y = 0.0 if over else y
    t = y * {{const LOG2E_F64}} + 6755399441055744.0
    k = _ml_f64_as_i64(t) - 0x4338000000000000
    kf = t - 6755399441055744.0
    r = (y - kf * {{const LN2_HI_F64}}) - kf * {{const LN2_LO_F64}}
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    em = r + r2 * {{estrin EXPM1_Q_F64 r r2 r4 r8}}
    kc = k if k < 64 else 64
    kc = kc if kc > -64 else -64
    k1 = k >> 1
    res = (em + (1.0 - _ml_i64_as_f64((1023 - kc) << 52))) * _ml_i64_as_f64((k1 + 1023) << 52) * _ml_i64_as_f64((k - k1 + 1023) << 52)
    res = -1.0 if x < -40.0 else res
    res = math.inf if over else res
    return x if x == 0.0 else res
''',
    '''
def _ml_fexpm1_f32(x, T):
    x = T(x)
    under = x < T(-104.0)
    over = x > T(88.8)
    y = T(0.0) if under else x
    y = T(0.0) if over else y
    t = y * {{const LOG2E_F32}} + T(12582912.0)
    k = _ml_f32_as_i32(t) - 0x4B400000
    kf = t - T(12582912.0)
    r = (y - kf * {{const LN2_HI_F32}}) - kf * {{const LN2_LO_F32}}
    r2 = r * r
    r4 = r2 * r2
    em = r + r2 * {{estrin EXPM1_Q_F32 r r2 r4}}
    kc = k if k < 32 else 32
    kc = kc if kc > -32 else -32
    k1 = k >> 1
    res = (em + (T(1.0) - _ml_i32_as_f32((127 - kc) << 23))) * _ml_i32_as_f32((k1 + 127) << 23) * _ml_i32_as_f32((k - k1 + 127) << 23)
    res = T(-1.0) if x < T(-20.0) else res
    res = T(math.inf) if over else res
    return x if x == T(0.0) else res
''',
)

# --- log -------------------------------------------------------------------
# x = 2^e m, m in [sqrt(1/2), sqrt(2)), read from the bits (subnormals scaled
# first); f = m - 1 exact; with s = f/(2+f), z = s^2:
# log(1+f) = f - f^2/2 + s (f^2/2 + z h(z)), so the leading f is exact.
# e to float by the same 1.5 * 2^52 trick (no int->float conversion).
_LOG_F64_CORE = '''
    ef = _ml_i64_as_f64(e + 0x4338000000000000) - 6755399441055744.0
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * (f * f)
    z2 = z * z
    z4 = z2 * z2
    R = z * {{estrin LOG_H_F64 z z2 z4}}'''
_LOG_F32_CORE = '''
    ef = _ml_i32_as_f32(e + 0x4B400000) - T(12582912.0)
    f = m - T(1.0)
    s = f / (T(2.0) + f)
    z = s * s
    z2 = z * z
    hfsq = T(0.5) * (f * f)
    R = z * {{estrin LOG_H_F32 z z2}}'''

ENTRIES["flog"] = _public(
    "flog",
    "natural logarithm",
    '''
def _ml_flog_f64(x, T):
    x = np.float64(x)
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x
    ix = _ml_f64_as_i64(xs)
    e = (ix - 0x3FE6A09E667F3BCD) >> 52
    m = _ml_i64_as_f64(ix - (e << 52))
    e = e - 54 if sub else e''' + _LOG_F64_CORE + '''
    res = ef * {{const LN2_HI_F64}} - ((hfsq - (s * (hfsq + R) + ef * {{const LN2_LO_F64}})) - f)
    res = -math.inf if x == 0.0 else res
    res = math.nan if x < 0.0 else res
    return x if not (x < math.inf) else res
''',
    '''
def _ml_flog_f32(x, T):
    x = T(x)
    sub = x < T(1.1754943508222875e-38)
    xs = x * T(33554432.0) if sub else x
    ix = _ml_f32_as_i32(xs)
    e = (ix - 0x3F3504F3) >> 23
    m = _ml_i32_as_f32(ix - (e << 23))
    e = e - 25 if sub else e''' + _LOG_F32_CORE + '''
    res = ef * {{const LN2_HI_F32}} - ((hfsq - (s * (hfsq + R) + ef * {{const LN2_LO_F32}})) - f)
    res = -T(math.inf) if x == T(0.0) else res
    res = T(math.nan) if x < T(0.0) else res
    return x if not (x < T(math.inf)) else res
''',
)

# --- log1p -----------------------------------------------------------------
# u = 1 + x rounded, c = its exact rounding error (Fast2Sum, ordered by size);
# log1p(x) = log(u) + c/u, with c/u = c 2^-e / m and 1/m = (1-s)/(1+s)
# ~ (1-s)(1-s+s^2): c/u is below an ulp of the result, so three digits of it
# are plenty, and no second division is needed.
ENTRIES["flog1p"] = _public(
    "flog1p",
    "log(1 + x)",
    '''
def _ml_flog1p_f64(x, T):
    x = np.float64(x)
    u = 1.0 + x
    c_small = x - (u - 1.0)
    c_large = 1.0 - (u - x)
    c = c_small if abs(x) <= 1.0 else c_large
    iu = _ml_f64_as_i64(u)
    e = (iu - 0x3FE6A09E667F3BCD) >> 52
    m = _ml_i64_as_f64(iu - (e << 52))''' + _LOG_F64_CORE + '''
    ec = e if e < 1000 else 1000
    cs = c * _ml_i64_as_f64((1023 - ec) << 52) * (1.0 - s) * ((1.0 - s) + z)
    res = ef * {{const LN2_HI_F64}} - ((hfsq - (s * (hfsq + R) + (ef * {{const LN2_LO_F64}} + cs))) - f)
    res = -math.inf if x == -1.0 else res
    res = math.nan if x < -1.0 else res
    res = x if not (x < math.inf) else res
    return x if x == 0.0 else res
''',
    '''
def _ml_flog1p_f32(x, T):
    x = T(x)
    u = T(1.0) + x
    c_small = x - (u - T(1.0))
    c_large = T(1.0) - (u - x)
    c = c_small if abs(x) <= T(1.0) else c_large
    iu = _ml_f32_as_i32(u)
    e = (iu - 0x3F3504F3) >> 23
    m = _ml_i32_as_f32(iu - (e << 23))''' + _LOG_F32_CORE + '''
    ec = e if e < 100 else 100
    cs = c * _ml_i32_as_f32((127 - ec) << 23) * (T(1.0) - s) * ((T(1.0) - s) + z)
    res = ef * {{const LN2_HI_F32}} - ((hfsq - (s * (hfsq + R) + (ef * {{const LN2_LO_F32}} + cs))) - f)
    res = -T(math.inf) if x == T(-1.0) else res
    res = T(math.nan) if x < T(-1.0) else res
    res = x if not (x < T(math.inf)) else res
    return x if x == T(0.0) else res
''',
)

# --- log1p on [0, 1] (internal) --------------------------------------------
# The argument of softplus/logcosh: u = 1 + t in [1, 2], so m = u or u/2 by a
# select, no bit manipulation; c = t - (u - 1) exact.
ENTRIES["_ml_log1pu"] = _public(
    "_ml_log1pu",
    "log(1 + t) for t in [0, 1] or NaN",
    '''
def _ml_log1pu_f64(x, T):
    t = np.float64(x)
    u = 1.0 + t
    c = t - (u - 1.0)
    big = u > 1.4142135623730951
    m = 0.5 * u if big else u
    ef = 1.0 if big else 0.0
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * (f * f)
    z2 = z * z
    z4 = z2 * z2
    R = z * {{estrin LOG_H_F64 z z2 z4}}
    cs = c * (0.5 if big else 1.0) * (1.0 - s) * ((1.0 - s) + z)
    return ef * {{const LN2_HI_F64}} - ((hfsq - (s * (hfsq + R) + (ef * {{const LN2_LO_F64}} + cs))) - f)
''',
    '''
def _ml_log1pu_f32(x, T):
    t = T(x)
    u = T(1.0) + t
    c = t - (u - T(1.0))
    big = u > T(1.4142135623730951)
    m = T(0.5) * u if big else u
    ef = T(1.0) if big else T(0.0)
    f = m - T(1.0)
    s = f / (T(2.0) + f)
    z = s * s
    z2 = z * z
    hfsq = T(0.5) * (f * f)
    R = z * {{estrin LOG_H_F32 z z2}}
    cs = c * (T(0.5) if big else T(1.0)) * (T(1.0) - s) * ((T(1.0) - s) + z)
    return ef * {{const LN2_HI_F32}} - ((hfsq - (s * (hfsq + R) + (ef * {{const LN2_LO_F32}} + cs))) - f)
''',
)

# --- tanh ------------------------------------------------------------------
# tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): no overflow, full relative
# accuracy near 0, one division.
ENTRIES["ftanh"] = _public(
    "ftanh",
    "hyperbolic tangent",
    '''
def _ml_ftanh_f64(x, T):
    x = np.float64(x)
    em = fexpm1(-2.0 * abs(x), T)
    r = -em / (2.0 + em)
    res = r if x > 0.0 else -r
    return x if x == 0.0 else res
''',
    '''
def _ml_ftanh_f32(x, T):
    x = T(x)
    em = fexpm1(T(-2.0) * abs(x), T)
    r = -em / (T(2.0) + em)
    res = r if x > T(0.0) else -r
    return x if x == T(0.0) else res
''',
)

# --- sigmoid, softplus, logcosh, sech2 -------------------------------------
# exp only of -|x| (never overflows); inlined next to each other, LLVM shares
# one exp between softplus(z) and sigmoid(z).
ENTRIES["fsigmoid"] = _public(
    "fsigmoid",
    "1/(1 + e**-x)",
    '''
def _ml_fsigmoid_f64(x, T):
    x = np.float64(x)
    e = fexp(-abs(x), T)
    num = 1.0 if x >= 0.0 else e
    return num / (1.0 + e)
''',
    '''
def _ml_fsigmoid_f32(x, T):
    x = T(x)
    e = fexp(-abs(x), T)
    num = T(1.0) if x >= T(0.0) else e
    return num / (T(1.0) + e)
''',
)

ENTRIES["fsoftplus"] = _public(
    "fsoftplus",
    "log(1 + e**x)",
    '''
def _ml_fsoftplus_f64(x, T):
    x = np.float64(x)
    e = fexp(-abs(x), T)
    pos = x if x > 0.0 else 0.0
    return pos + _ml_log1pu(e, T)
''',
    '''
def _ml_fsoftplus_f32(x, T):
    x = T(x)
    e = fexp(-abs(x), T)
    pos = x if x > T(0.0) else T(0.0)
    return pos + _ml_log1pu(e, T)
''',
)

# log cosh x: |x| >= 3/4: |x| - log 2 + log1p(t), t = e^-2|x| = 1 + expm1(-2|x|)
# (the expm1 that ftanh(x) computes too: inlined side by side, LLVM shares it)
# and log1p(t), t <= e^-1.5, by a polynomial; |x| < 3/4, where that cancels:
# x^2 g(x^2), a minimax polynomial.  No division.
ENTRIES["flogcosh"] = _public(
    "flogcosh",
    "log(cosh(x))",
    '''
def _ml_flogcosh_f64(x, T):
    x = np.float64(x)
    a = abs(x)
    w = a * a
    w2 = w * w
    w4 = w2 * w2
    w8 = w4 * w4
    small = w * {{estrin LOGCOSH_G_F64 w w2 w4 w8}}
    t = 1.0 + fexpm1(-2.0 * a, T)
    t2 = t * t
    t4 = t2 * t2
    t8 = t4 * t4
    large = (a - {{const LN2_F64}}) + (t + t2 * {{estrin LOGCOSH_L_F64 t t2 t4 t8}})
    return small if a < 0.75 else large
''',
    '''
def _ml_flogcosh_f32(x, T):
    x = T(x)
    a = abs(x)
    w = a * a
    w2 = w * w
    w4 = w2 * w2
    small = w * {{estrin LOGCOSH_G_F32 w w2 w4}}
    t = T(1.0) + fexpm1(T(-2.0) * a, T)
    t2 = t * t
    t4 = t2 * t2
    large = (a - {{const LN2_F32}}) + (t + t2 * {{estrin LOGCOSH_L_F32 t t2 t4}})
    return small if a < T(0.75) else large
''',
)

ENTRIES["fsech2"] = _public(
    "fsech2",
    "1/cosh(x)**2",
    '''
def _ml_fsech2_f64(x, T):
    x = np.float64(x)
    e = fexp(-2.0 * abs(x), T)
    d = 1.0 + e
    return (4.0 * e) / (d * d)
''',
    '''
def _ml_fsech2_f32(x, T):
    x = T(x)
    e = fexp(T(-2.0) * abs(x), T)
    d = T(1.0) + e
    return (T(4.0) * e) / (d * d)
''',
)
