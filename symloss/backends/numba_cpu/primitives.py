"""The Numba implementations of the primitives (derive/primitives.py holds their math).

Each primitive prints as a ``math`` function (``math_name``), a call into the
vectorisable math library (``library_name``, CPU), or a helper emitted once
into every module that uses it: ``helper`` is plain Numba source (libm; the
GPU backend compiles it too), ``vector_helper`` the CPU's branch-free variant
on the math library, so a loop calling it vectorises.  Helpers take the float
type ``T`` last so their constants stay float32 in float32 kernels.  A
primitive missing here is an error at generate time (backends.require).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NumbaCode:
    math_name: str | None = None  # printed as math.<name>(args)
    library_name: str | None = None  # printed as <name>(args, T) from the math library (CPU)
    helper: str | None = None  # source of `def <name>(..., T)`, printed as name(args, T)
    vector_helper: str | None = None  # CPU variant on the math library; `helper` when None


# The smallest normal number of the helper's float type T, as source: 1e-50 rounds to
# 0 only in float32, a comparison LLVM folds
_TINY = "T(1.1754943508222875e-38) if T(1e-50) == T(0) else T(2.2250738585072014e-308)"


# barron_dalpha's series coefficients, computed here rather than typed in:
# 1/n! for n = 0..19, and 1/(j! (20 + j)) for I_19(x) = int_0^1 e^(x t) t^19 dt = sum_j x^j/(j! (20 + j))
_INV_FACT = tuple(1.0 / math.factorial(n) for n in range(20))


_I19 = tuple(1.0 / (math.factorial(j) * (20 + j)) for j in range(19))


_INV_N = tuple(1.0 / n if n else 0.0 for n in range(20))  # 1/n, for the recurrence's division


_INV_ODD = tuple(1.0 / k for k in range(27, 2, -2))  # xmlog1p's series: 1/27, 1/25, ..., 1/3


def _horner(coefficients, x: str) -> str:
    """Source of the polynomial c[0] x^(n-1) + ... + c[n-1] in Horner form, straight-line code."""
    out = f"T({coefficients[0]!r})"
    for c in coefficients[1:]:
        out = f"({out} * {x} + T({c!r}))"
    return out


def _barron_dalpha_source(library: bool) -> str:
    """The helper's source on libm, or on the math library's fexp(x, T) and kin."""
    fn = {f: (f"f{f}" if library else f"math.{f}") for f in ("exp", "expm1", "log", "log1p")}
    t = ", T" if library else ""
    return f"""
def barron_dalpha(rc, alpha, T):
    # |alpha-2|/4 K(L, a), rc = r/c, s = rc^2, L = log1p(s/|alpha-2|), a = alpha/2,
    # K(L, a) = int_0^L e^(a t) k(t) dt with k(t) = t - 1 + e^(-t); below, x = a L
    inv_fact = {_INV_FACT!r}
    b = abs(alpha - T(2))
    if b == T(0):  # rc, not rc^2, tells 0 from a residual whose square underflows
        return rc * T(0) if rc == T(0) else abs(rc) * T(math.inf)
    s = rc * rc
    if s == T(math.inf):  # r^2/c^2 overflowed: the limit, finite for alpha < 0
        return T(2) / (alpha * alpha) if alpha < T(0) else s
    u = s / b
    if u < T(1e30):
        L = {fn["log1p"]}(u{t})
    else:  # s/b may overflow where L does not
        L = {fn["log"]}(s{t}) - {fn["log"]}(b{t}) + {fn["log1p"]}(b / s{t})
    a = T(0.5) * alpha
    x = a * L
    if abs(x) > T(1):
        # by parts twice: K = e^x (k(L)/a - k'(L)/a^2) + L E1((a-1) L)/a^2, E1(z) = expm1(z)/z;
        # the bracket cancels at most 5x for |x| > 1
        km = -{fn["expm1"]}(-L{t})
        if L < T(1):  # k(L) = L^2 sum_(n>=2) (-L)^(n-2)/n!
            k = T(0)
            for n in range(19, 1, -1):
                k = T(inv_fact[n]) - L * k
            k = L * L * k
        else:
            k = L - km
        z = (a - T(1)) * L
        ez = {fn["expm1"]}(z{t}) / z if z != T(0) else T(1)
        # b/4 inside the exp: near alpha = 2, e^x alone overflows where the result does not
        h = T(0.25) * b
        return {fn["exp"]}(x + {fn["log"]}(h{t}){t}) * (k / a - km / (a * a)) + h * L * ez / (a * a)
    # I_n(x) = int_0^1 e^(x t) t^n dt: a series for I_19, then I_(n-1) = (e^x - x I_n)/n,
    # which only damps errors for |x| <= 1
    i19 = {_I19!r}
    inv_n = {_INV_N!r}
    i_n = T(0)
    for j in range(18, -1, -1):
        i_n = i_n * x + T(i19[j])
    ex = {fn["exp"]}(x{t})
    if L >= T(1):
        for n in range(19, 1, -1):
            i_n = (ex - x * i_n) * T(inv_n[n])
        # K = L^2 I_1(x) - L E1(x) + L E1((a-1) L): cancels at most 10x for L >= 1, |x| <= 1
        e1 = {fn["expm1"]}(x{t}) / x if x != T(0) else T(1)
        z = (a - T(1)) * L
        ez = {fn["expm1"]}(z{t}) / z if z != T(0) else T(1)
        return T(0.25) * b * L * (L * i_n - e1 + ez)
    # K = L^3 sum_(n>=2) (-L)^(n-2) I_n(x)/n!: terms shrink by L/3 or faster
    acc = i_n * T(inv_fact[19])
    for n in range(18, 1, -1):
        i_n = (ex - x * i_n) * T(inv_n[n + 1])
        acc = i_n * T(inv_fact[n]) - L * acc
    return T(0.25) * b * L * L * L * acc  # left to right: no early underflow
"""


# primitive name -> its Numba code; "grouped" prints as parentheses (printer.py)
SOURCES: dict[str, NumbaCode] = {
    "log1p": NumbaCode(
        library_name="flog1p",
        math_name="log1p",
    ),
    "expm1": NumbaCode(
        library_name="fexpm1",
        math_name="expm1",
    ),
    "Tanh": NumbaCode(
        library_name="ftanh",
        math_name="tanh",
    ),
    "sech2": NumbaCode(
        library_name="fsech2",
        helper='''
def sech2(x, T):
    # 1/cosh(x)^2 = 4 e^{-2|x|} / (1 + e^{-2|x|})^2: no overflow, no cancellation
    e = math.exp(T(-2) * abs(x))
    d = T(1) + e
    return T(4) * e / (d * d)
''',
    ),
    "sigmoid": NumbaCode(
        library_name="fsigmoid",
        helper='''
def sigmoid(x, T):
    # 1/(1 + e^{-x}), with exp only of non-positive arguments
    if x >= T(0):
        return T(1) / (T(1) + math.exp(-x))
    e = math.exp(x)
    return e / (T(1) + e)
''',
    ),
    "softplus": NumbaCode(
        library_name="fsoftplus",
        helper='''
def softplus(x, T):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}): exact for any finite x
    if x > T(0):
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))
''',
    ),
    "logcosh": NumbaCode(
        library_name="flogcosh",
        helper='''
def logcosh(x, T):
    # near 0: cosh(x) - 1 = 2 sinh(x/2)^2 keeps every digit of the x^2/2 result;
    # beyond: |x| + log1p(e^{-2|x|}) - log 2 never overflows
    a = abs(x)
    if a < T(1):
        s = math.sinh(T(0.5) * a)
        return math.log1p(T(2) * s * s)
    return a + math.log1p(math.exp(T(-2) * a)) - T(0.6931471805599453)
''',
    ),
    "xlogy": NumbaCode(
        vector_helper='''
def xlogy(x, y, T):
    # x log(y), 0 where x = 0 (NaN still propagates); a select, not a branch
    return T(0) if (x == T(0)) & (y == y) else x * flog(y, T)
''',
        helper='''
def xlogy(x, y, T):
    # x log(y), defined as 0 where x = 0 (0 log 0 = 0); NaN still propagates
    if x == T(0) and y == y:
        return T(0)
    return x * math.log(y)
''',
    ),
    "xlog1py": NumbaCode(
        vector_helper='''
def xlog1py(x, y, T):
    # x log(1 + y), 0 where x = 0; a select, not a branch
    return T(0) if (x == T(0)) & (y == y) else x * flog1p(y, T)
''',
        helper='''
def xlog1py(x, y, T):
    # x log(1 + y), defined as 0 where x = 0
    if x == T(0) and y == y:
        return T(0)
    return x * math.log1p(y)
''',
    ),
    "xdivy": NumbaCode(
        helper='''
def xdivy(x, y, T):
    # x / y, defined as 0 where x = 0 (the derivative of x log y at x = 0)
    if x == T(0) and y == y:
        return T(0)
    return x / y
''',
    ),
    "powdiv": NumbaCode(
        helper='''
def powdiv(x, b, g, k, T):
    # x * b**g / b**k: x * b**(g - k) where b != 0; at b = 0, 0 where x * b**g is
    if x == T(0) and b == b and g == g:
        return T(0)
    if b != T(0):
        return x * b ** (g - k)
    n = x * b ** g
    return T(0) if n == T(0) else n / b ** k
''',
        vector_helper=f'''
def powdiv(x, b, g, k, T):
    # x * b**g / b**k: x * b**(g - k) where b != 0; at b = 0, 0 where x * b**g is
    tiny = {_TINY}
    huge = T(1) / tiny
    p = b ** g
    bk = b ** k
    n = x * p
    normal = tiny <= abs(p) <= huge and tiny <= abs(bk) <= huge and tiny <= abs(n) <= huge
    e = g - k
    power = fexp(e * flog(abs(b), T), T)
    odd = T(0.5) * e != np.floor(T(0.5) * e)
    power = -power if (b < T(0) and odd) else power
    power = power if (b >= T(0) or e == np.floor(e)) else T(math.nan)  # real only for an integer g
    r = n / bk if normal else x * power
    r = (T(0) if n == T(0) else n / bk) if b == T(0) else r
    return T(0) if (x == T(0) and b == b and g == g) else r
''',
    ),
    "kinkmax": NumbaCode(
        helper='''
def kinkmax(a, b, T):
    # max that propagates NaN from either side (Python's max drops it)
    if a >= b:
        return a
    if b > a:
        return b
    return a + b
''',
    ),
    "sqrt1pm1": NumbaCode(
        helper='''
def sqrt1pm1(u, T):
    # sqrt(1 + u) - 1 = u / (sqrt(1 + u) + 1): no cancellation for small u
    return u / (math.sqrt(T(1) + u) + T(1))
''',
    ),
    "xmlog1p": NumbaCode(
        vector_helper=f'''
def xmlog1p(x, T):
    # x - log1p(x); for |x| <= 0.3 the series of the helper below, in Horner form with
    # 1/k as constants; both sides computed and selected, so a loop calling it vectorises
    s = x / (T(2) + x)
    s2 = s * s
    acc = {_horner(_INV_ODD, "s2")}
    near = x * x / (T(2) + x) - T(2) * s * s2 * acc
    return near if abs(x) <= T(0.3) else x - flog1p(x, T)
''',
        helper='''
def xmlog1p(x, T):
    # x - log1p(x).  Near 0, with s = x/(2 + x): log1p(x) = 2 atanh(s), and
    # x - 2s = x^2/(2 + x) exactly, so x - log1p(x) = x^2/(2+x) - 2(s^3/3 + s^5/5 + ...)
    if abs(x) > T(0.3):
        return x - math.log1p(x)
    s = x / (T(2) + x)
    s2 = s * s
    acc = T(0)
    k = 27
    while k >= 3:
        acc = acc * s2 + T(1) / T(k)
        k -= 2
    return x * x / (T(2) + x) - T(2) * s * s2 * acc
''',
    ),
    "logistic": NumbaCode(
        vector_helper='''
def logistic(u, k, T):
    # softplus(u) + k*u = log1p(e^-|u|) + ((1 + k) u if u > 0 else k u); e^-|u| is
    # in [0, 1], where the math library's _ml_log1pu needs no reduction
    tail = _ml_log1pu(fexp(-abs(u), T), T)
    return tail + ((T(1) + k) * u if u > T(0) else k * u)
''',
        helper='''
def logistic(u, k, T):
    # softplus(u) + k*u, grouped so the linear parts never cancel the softplus
    if u > T(0):
        return (T(1) + k) * u + math.log1p(math.exp(-u))
    return k * u + math.log1p(math.exp(u))
''',
    ),
    "sigmoid_plus": NumbaCode(
        vector_helper='''
def sigmoid_plus(u, k, T):
    # sigmoid(u) + k with s = sigmoid(-|u|): (1 + k) - s for u > 0, else s + k
    e = fexp(-abs(u), T)
    s = e / (T(1) + e)
    return ((T(1) + k) - s) if u > T(0) else (s + k)
''',
        helper='''
def sigmoid_plus(u, k, T):
    # sigmoid(u) + k; for u > 0 write sigmoid(u) = 1 - sigmoid(-u) so that
    # k = -1 gives -sigmoid(-u) exactly instead of 1 - 1
    if u > T(0):
        e = math.exp(-u)
        return (T(1) + k) - e / (T(1) + e)
    e = math.exp(u)
    return e / (T(1) + e) + k
''',
    ),
    "powm1": NumbaCode(
        vector_helper='''
def powm1(u, a, T):
    # (1 + u)**a - 1 without cancellation when a*log1p(u) is small
    return fexpm1(a * flog1p(u, T), T)
''',
        helper='''
def powm1(u, a, T):
    # (1 + u)**a - 1 without cancellation when a*log1p(u) is small
    return math.expm1(a * math.log1p(u))
''',
    ),
    "boxcox1p": NumbaCode(
        helper=f'''
def boxcox1p(u, a, T):
    # ((1 + u)**a - 1) / a; log1p(u) where t = a log1p(u) is 0 or subnormal (1e-50 is 0 only in float32)
    L = math.log1p(u)
    t = a * L
    tiny = {_TINY}
    if a == T(0) or abs(t) < tiny:
        return L
    return math.expm1(t) / a
''',
        vector_helper=f'''
def boxcox1p(u, a, T):
    # ((1 + u)**a - 1) / a; log1p(u) where t = a log1p(u) is 0 or subnormal (1e-50 is 0 only in float32)
    L = flog1p(u, T)
    t = a * L
    tiny = {_TINY}
    r = fexpm1(t, T) / a
    return L if (a == T(0) or abs(t) < tiny) else r
''',
    ),
    "grouped": NumbaCode(),
    "barron_dalpha": NumbaCode(
        helper=_barron_dalpha_source(library=False),
        vector_helper=_barron_dalpha_source(library=True),
    ),
    # the row calculus' primitive (derive/row.py)
    "quotient0": NumbaCode(
        helper='''
def quotient0(x, y, T):
    # x / y, defined as 0 where x = 0 (a norm's derivative where the vector vanishes)
    if x == T(0) and y == y:
        return T(0)
    return x / y
''',
    ),
}
