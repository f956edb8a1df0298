"""Custom primitives: each carries its derivative, LaTeX, high-precision value and code.

A primitive is a SymPy function whose generated code is either a ``math``
function or a small helper emitted once into every module that uses it.
Helpers take the float type ``T`` last so their constants stay float32 in
float32 kernels.  Adding a primitive means adding one class here.
"""
from __future__ import annotations

import math

import mpmath
import sympy as sp


class Primitive(sp.Function):
    """Base class.  Subclasses set ``math_name`` or ``helper`` (source text)."""

    math_name: str | None = None  # printed as math.<name>(args)
    helper: str | None = None  # source of `def <name>(..., T)`, printed as name(args, T)
    # CPU variant on the vectorisable math library (symloss.mathlib), branch-free
    # so a loop calling it vectorises; falls back to `helper` when None
    vector_helper: str | None = None
    library_name: str | None = None  # printed as <name>(args, T) from the math library
    latex_template: str = ""  # str.format template over the arguments' LaTeX

    @classmethod
    def naive(cls, *args: sp.Basic) -> sp.Basic:  # the plain formula it replaces
        raise NotImplementedError

    @staticmethod
    def mp(*args):  # value in mpmath at the working precision
        raise NotImplementedError

    def _latex(self, printer, exp=None) -> str:
        tex = self.latex_template.format(*(printer._print(a) for a in self.args))
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None


class log1p(Primitive):
    library_name = "flog1p"
    nargs = 1
    math_name = "log1p"
    latex_template = r"\log\left(1 + {0}\right)"

    @classmethod
    def naive(cls, x):
        return sp.log(1 + x)

    mp = staticmethod(mpmath.log1p)

    def fdiff(self, argindex=1):
        return 1 / (1 + self.args[0])


class expm1(Primitive):
    library_name = "fexpm1"
    nargs = 1
    math_name = "expm1"
    latex_template = r"\left(e^{{{0}}} - 1\right)"

    @classmethod
    def naive(cls, x):
        return sp.exp(x) - 1

    mp = staticmethod(mpmath.expm1)

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])


class Tanh(Primitive):
    library_name = "ftanh"
    nargs = 1
    math_name = "tanh"
    latex_template = r"\tanh\left({0}\right)"

    @classmethod
    def naive(cls, x):
        return sp.tanh(x)

    mp = staticmethod(mpmath.tanh)

    def fdiff(self, argindex=1):
        return sech2(self.args[0])  # 1 - tanh^2 cancels to garbage for large |x|


class sech2(Primitive):
    library_name = "fsech2"
    nargs = 1
    latex_template = r"\operatorname{{sech}}^{{2}}\left({0}\right)"
    helper = '''
def sech2(x, T):
    # 1/cosh(x)^2 = 4 e^{-2|x|} / (1 + e^{-2|x|})^2: no overflow, no cancellation
    e = math.exp(T(-2) * abs(x))
    d = T(1) + e
    return T(4) * e / (d * d)
'''

    @classmethod
    def naive(cls, x):
        return 1 / sp.cosh(x) ** 2

    @staticmethod
    def mp(x):
        return mpmath.sech(x) ** 2

    def fdiff(self, argindex=1):
        x = self.args[0]
        return -2 * sech2(x) * Tanh(x)


class sigmoid(Primitive):
    library_name = "fsigmoid"
    nargs = 1
    latex_template = r"\sigma\left({0}\right)"
    helper = '''
def sigmoid(x, T):
    # 1/(1 + e^{-x}), with exp only of non-positive arguments
    if x >= T(0):
        return T(1) / (T(1) + math.exp(-x))
    e = math.exp(x)
    return e / (T(1) + e)
'''

    @classmethod
    def naive(cls, x):
        return 1 / (1 + sp.exp(-x))

    @staticmethod
    def mp(x):
        return 1 / (1 + mpmath.exp(-x))

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)  # sigmoid(-x) = 1 - sigmoid(x) without cancellation


class softplus(Primitive):
    library_name = "fsoftplus"
    nargs = 1
    latex_template = r"\log\left(1 + e^{{{0}}}\right)"
    helper = '''
def softplus(x, T):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}): exact for any finite x
    if x > T(0):
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))
'''

    @classmethod
    def naive(cls, x):
        return sp.log(1 + sp.exp(x))

    @staticmethod
    def mp(x):
        return mpmath.log1p(mpmath.exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class logcosh(Primitive):
    library_name = "flogcosh"
    nargs = 1
    latex_template = r"\log\left(\cosh\left({0}\right)\right)"
    helper = '''
def logcosh(x, T):
    # near 0: cosh(x) - 1 = 2 sinh(x/2)^2 keeps every digit of the x^2/2 result;
    # beyond: |x| + log1p(e^{-2|x|}) - log 2 never overflows
    a = abs(x)
    if a < T(1):
        s = math.sinh(T(0.5) * a)
        return math.log1p(T(2) * s * s)
    return a + math.log1p(math.exp(T(-2) * a)) - T(0.6931471805599453)
'''

    @classmethod
    def naive(cls, x):
        return sp.log(sp.cosh(x))

    @staticmethod
    def mp(x):
        return mpmath.log(mpmath.cosh(x))

    def fdiff(self, argindex=1):
        return Tanh(self.args[0])


class xlogy(Primitive):
    vector_helper = '''
def xlogy(x, y, T):
    # x log(y), 0 where x = 0 (NaN still propagates); a select, not a branch
    return T(0) if (x == T(0)) & (y == y) else x * flog(y, T)
'''
    nargs = 2
    latex_template = r"{0} \log\left({1}\right)"
    helper = '''
def xlogy(x, y, T):
    # x log(y), defined as 0 where x = 0 (0 log 0 = 0); NaN still propagates
    if x == T(0) and y == y:
        return T(0)
    return x * math.log(y)
'''

    @classmethod
    def naive(cls, x, y):
        return x * sp.log(y)

    @staticmethod
    def mp(x, y):
        return mpmath.mpf(0) if x == 0 and not mpmath.isnan(y) else x * mpmath.log(y)

    def fdiff(self, argindex=1):
        x, y = self.args
        return sp.log(y) if argindex == 1 else xdivy(x, y)


class xlog1py(Primitive):
    vector_helper = '''
def xlog1py(x, y, T):
    # x log(1 + y), 0 where x = 0; a select, not a branch
    return T(0) if (x == T(0)) & (y == y) else x * flog1p(y, T)
'''
    nargs = 2
    latex_template = r"{0} \log\left(1 + {1}\right)"
    helper = '''
def xlog1py(x, y, T):
    # x log(1 + y), defined as 0 where x = 0
    if x == T(0) and y == y:
        return T(0)
    return x * math.log1p(y)
'''

    @classmethod
    def naive(cls, x, y):
        return x * sp.log(1 + y)

    @staticmethod
    def mp(x, y):
        return mpmath.mpf(0) if x == 0 and not mpmath.isnan(y) else x * mpmath.log1p(y)

    def fdiff(self, argindex=1):
        x, y = self.args
        return log1p(y) if argindex == 1 else xdivy(x, 1 + y)


class xdivy(Primitive):
    nargs = 2
    latex_template = r"\frac{{{0}}}{{{1}}}"
    helper = '''
def xdivy(x, y, T):
    # x / y, defined as 0 where x = 0 (the derivative of x log y at x = 0)
    if x == T(0) and y == y:
        return T(0)
    return x / y
'''

    @classmethod
    def naive(cls, x, y):
        return x / y

    @staticmethod
    def mp(x, y):
        return mpmath.mpf(0) if x == 0 and not mpmath.isnan(y) else x / y

    def fdiff(self, argindex=1):
        x, y = self.args
        return 1 / y if argindex == 1 else -xdivy(x, y**2)


# The smallest normal number of the helper's float type T, as source: 1e-50 rounds to
# 0 only in float32, a comparison LLVM folds
_TINY = "T(1.1754943508222875e-38) if T(1e-50) == T(0) else T(2.2250738585072014e-308)"


class powdiv(Primitive):
    """x b^g / b^k for an integer k > 0, as x b^(g - k) wherever b != 0, so that
    no part under- or overflows on its own (b = 1e-300, g = 1.3: b^g is 0 and the
    quotient would be 0, not 1e-90).  At b = 0 it is the quotient's own value,
    0 where the numerator x b^g is 0 (focal loss at a logit whose probability
    rounds to 1); 0 where x = 0 (focal loss at gamma = 0, where b^g / b is 1 / 0).
    """

    nargs = 4

    def _latex(self, printer, exp=None) -> str:  # the power it is: x b^(g - k)
        x, b, g, k = self.args
        power = sp.Pow(b, g - k, evaluate=False)
        tex = printer._print(power if x == 1 else sp.Mul(x, power, evaluate=False))
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"

    helper = '''
def powdiv(x, b, g, k, T):
    # x * b**g / b**k: x * b**(g - k) where b != 0; at b = 0, 0 where x * b**g is
    if x == T(0) and b == b and g == g:
        return T(0)
    if b != T(0):
        return x * b ** (g - k)
    n = x * b ** g
    return T(0) if n == T(0) else n / b ** k
'''
    # A second pow behind a branch keeps the loop scalar (pow cannot be speculated), so
    # the CPU keeps the quotient (one pow, as exact as pow) where its parts are normal
    # floats and takes b**(g - k) by exp and log, branch-free, only where one is not
    # (|(g - k) log b| ulp, as pow would be), "normal" in the float type's own range (_TINY)
    vector_helper = f'''
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
'''

    @classmethod
    def naive(cls, x, b, g, k):
        return x * b**g / b**k

    @staticmethod
    def mp(x, b, g, k):
        if x == 0 and not mpmath.isnan(b) and not mpmath.isnan(g):
            return mpmath.mpf(0)
        if b == 0:  # x 0^g / 0: 0 where 0^g is, else infinite
            return mpmath.mpf(0) if g > 0 else mpmath.sign(x) * mpmath.inf
        return x * b ** (g - k)

    def fdiff(self, argindex=1):
        x, b, g, k = self.args
        if argindex == 1:
            return powdiv(1, b, g, k)
        if argindex == 2:
            return powdiv(x * (g - k), b, g, k + 1)
        if argindex == 3:
            return powdiv(x, b, g, k) * sp.log(b)
        return sp.S.Zero  # k is an integer constant


class kinkmax(Primitive):
    """max(a, b) whose derivative at a tie is the minimum-norm subgradient.

    Where a = b the one-sided derivatives a', b' bound the subdifferential;
    the element of least magnitude is 0 when they differ in sign, else the
    smaller one.  For relu, |x|, hinge and pinball losses this is 0 at the kink,
    as PyTorch's autograd gives.
    """

    nargs = 2
    latex_template = r"\max\left({0}, {1}\right)"
    helper = '''
def kinkmax(a, b, T):
    # max that propagates NaN from either side (Python's max drops it)
    if a >= b:
        return a
    if b > a:
        return b
    return a + b
'''

    @classmethod
    def naive(cls, a, b):
        return sp.Max(a, b)

    @staticmethod
    def mp(a, b):
        return mpmath.nan if mpmath.isnan(a) or mpmath.isnan(b) else max(a, b)

    def _eval_derivative(self, s):
        a, b = self.args
        da, db = sp.diff(a, s), sp.diff(b, s)
        if da == db:
            return da
        tie = sp.Piecewise(
            (0, da * db <= 0),
            (da, sp.Abs(da) <= sp.Abs(db)),
            (db, True),
        )
        if da == 0 or db == 0:
            tie = sp.S.Zero
        # compare a - b with 0: SymPy's Piecewise can recurse forever on `a > b`, `b > a`
        gap = a - b
        return sp.Piecewise((da, gap > 0), (db, gap < 0), (tie, True))


class sqrt1pm1(Primitive):
    """sqrt(1 + u) - 1 without the cancellation near u = 0 (pseudo-Huber)."""

    nargs = 1
    latex_template = r"\left(\sqrt{{1 + {0}}} - 1\right)"
    helper = '''
def sqrt1pm1(u, T):
    # sqrt(1 + u) - 1 = u / (sqrt(1 + u) + 1): no cancellation for small u
    return u / (math.sqrt(T(1) + u) + T(1))
'''

    @classmethod
    def naive(cls, u):
        return sp.sqrt(1 + u) - 1

    @staticmethod
    def mp(u):
        return mpmath.sqrt(1 + u) - 1

    def fdiff(self, argindex=1):
        return 1 / (2 * sp.sqrt(1 + self.args[0]))


class xmlog1p(Primitive):
    """x - log(1 + x), which cancels to garbage near x = 0 if written directly (Fair loss)."""

    nargs = 1
    latex_template = r"\left({0} - \log\left(1 + {0}\right)\right)"
    helper = '''
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
'''

    @classmethod
    def naive(cls, x):
        return x - sp.log(1 + x)

    @staticmethod
    def mp(x):
        return x - mpmath.log1p(x)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return x / (1 + x)


class logistic(Primitive):
    """softplus(u) + k u: the logistic loss, with no cancellation between its two terms.

    For u > 0 it is (1 + k) u + log1p(e^-u), else k u + log1p(e^u); with
    k = -y and y in [0, 1] both are sums of non-negative terms.
    """

    vector_helper = '''
def logistic(u, k, T):
    # softplus(u) + k*u = log1p(e^-|u|) + ((1 + k) u if u > 0 else k u)
    tail = flog1p(fexp(-abs(u), T), T)
    return tail + ((T(1) + k) * u if u > T(0) else k * u)
'''
    nargs = 2
    latex_template = r"\left(\log\left(1 + e^{{{0}}}\right) + {1} {0}\right)"
    helper = '''
def logistic(u, k, T):
    # softplus(u) + k*u, grouped so the linear parts never cancel the softplus
    if u > T(0):
        return (T(1) + k) * u + math.log1p(math.exp(-u))
    return k * u + math.log1p(math.exp(u))
'''

    @classmethod
    def naive(cls, u, k):
        return sp.log(1 + sp.exp(u)) + k * u

    @staticmethod
    def mp(u, k):
        return mpmath.log1p(mpmath.exp(u)) + k * u

    def fdiff(self, argindex=1):
        u, k = self.args
        return sigmoid_plus(u, k) if argindex == 1 else u


class sigmoid_plus(Primitive):
    """sigmoid(u) + k, as (1 + k) - sigmoid(-u) for u > 0: exact when k = -1 (y = 1)."""

    vector_helper = '''
def sigmoid_plus(u, k, T):
    # sigmoid(u) + k with s = sigmoid(-|u|): (1 + k) - s for u > 0, else s + k
    e = fexp(-abs(u), T)
    s = e / (T(1) + e)
    return ((T(1) + k) - s) if u > T(0) else (s + k)
'''
    nargs = 2
    latex_template = r"\left(\sigma\left({0}\right) + {1}\right)"
    helper = '''
def sigmoid_plus(u, k, T):
    # sigmoid(u) + k; for u > 0 write sigmoid(u) = 1 - sigmoid(-u) so that
    # k = -1 gives -sigmoid(-u) exactly instead of 1 - 1
    if u > T(0):
        e = math.exp(-u)
        return (T(1) + k) - e / (T(1) + e)
    e = math.exp(u)
    return e / (T(1) + e) + k
'''

    @classmethod
    def naive(cls, u, k):
        return 1 / (1 + sp.exp(-u)) + k

    @staticmethod
    def mp(u, k):
        return 1 / (1 + mpmath.exp(-u)) + k

    def fdiff(self, argindex=1):
        u, _ = self.args
        return sigmoid(u) * sigmoid(-u) if argindex == 1 else sp.S.One


class powm1(Primitive):
    """(1 + u)^a - 1 = expm1(a log1p(u)): exact when the power is close to 1."""

    vector_helper = '''
def powm1(u, a, T):
    # (1 + u)**a - 1 without cancellation when a*log1p(u) is small
    return fexpm1(a * flog1p(u, T), T)
'''
    nargs = 2
    latex_template = r"\left(\left(1 + {0}\right)^{{{1}}} - 1\right)"
    helper = '''
def powm1(u, a, T):
    # (1 + u)**a - 1 without cancellation when a*log1p(u) is small
    return math.expm1(a * math.log1p(u))
'''

    @classmethod
    def naive(cls, u, a):
        return (1 + u) ** a - 1

    @staticmethod
    def mp(u, a):
        return mpmath.expm1(a * mpmath.log1p(u))

    def fdiff(self, argindex=1):
        u, a = self.args
        if argindex == 1:
            return a * (1 + u) ** (a - 1)
        return (1 + u) ** a * log1p(u)


class boxcox1p(Primitive):
    """((1 + u)^a - 1) / a, and log1p(u) at a = 0 (Box-Cox of 1 + u).

    Dividing powm1 by a afterwards loses everything where t = a log1p(u) is
    subnormal (float32 Barron at alpha = 1e-8, |r| = 1e-18): expm1(t) keeps
    t's few bits.  There the result is log1p(u) (1 + t/2 + ...) = log1p(u) to
    within t/2, below the smallest normal.
    """

    nargs = 2
    latex_template = r"\frac{{\left(1 + {0}\right)^{{{1}}} - 1}}{{{1}}}"
    helper = f'''
def boxcox1p(u, a, T):
    # ((1 + u)**a - 1) / a; log1p(u) where t = a log1p(u) is 0 or subnormal (1e-50 is 0 only in float32)
    L = math.log1p(u)
    t = a * L
    tiny = {_TINY}
    if a == T(0) or abs(t) < tiny:
        return L
    return math.expm1(t) / a
'''
    vector_helper = f'''
def boxcox1p(u, a, T):
    # ((1 + u)**a - 1) / a; log1p(u) where t = a log1p(u) is 0 or subnormal (1e-50 is 0 only in float32)
    L = flog1p(u, T)
    t = a * L
    tiny = {_TINY}
    r = fexpm1(t, T) / a
    return L if (a == T(0) or abs(t) < tiny) else r
'''

    @classmethod
    def naive(cls, u, a):
        return ((1 + u) ** a - 1) / a

    @staticmethod
    def mp(u, a):
        return mpmath.log1p(u) if a == 0 else mpmath.expm1(a * mpmath.log1p(u)) / a

    def fdiff(self, argindex=1):
        u, a = self.args
        if argindex == 1:
            return (1 + u) ** (a - 1)
        return ((1 + u) ** a * log1p(u) - boxcox1p(u, a)) / a


class grouped(Primitive):
    """Identity that keeps its sum together: (1 - y) + x must not become (x - y) + 1."""

    nargs = 1
    latex_template = r"\left({0}\right)"

    @classmethod
    def naive(cls, x):
        return x

    @staticmethod
    def mp(x):
        return x

    def fdiff(self, argindex=1):
        return sp.S.One


# barron_dalpha's series coefficients, computed here rather than typed in:
# 1/n! for n = 0..19, and 1/(j! (20 + j)) for I_19(x) = int_0^1 e^(x t) t^19 dt = sum_j x^j/(j! (20 + j))
_INV_FACT = tuple(1.0 / math.factorial(n) for n in range(20))
_I19 = tuple(1.0 / (math.factorial(j) * (20 + j)) for j in range(19))
_INV_N = tuple(1.0 / n if n else 0.0 for n in range(20))  # 1/n, for the recurrence's division


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


class barron_dalpha(Primitive):
    """d/dalpha of Barron's rho(rc, alpha) = |alpha-2|/alpha ((rc^2/|alpha-2| + 1)^(alpha/2) - 1), rc = r/c.

    Differentiating the formula gives terms that cancel: to (1 - alpha/2) u^3/12
    for small u = rc^2/|alpha-2|, and to 0 as alpha -> 2 for any u.  Integrating
    d/dL of the result shows it equals |alpha-2|/4 K(log1p(u), alpha/2) with
    K(L, a) = int_0^L e^(a t) (t - 1 + e^(-t)) dt, a positive integral that the
    helper evaluates without cancellation: a series in L and a L for
    L < 1 and |a L| <= 1, the closed form for L >= 1 and |a L| <= 1 (cancels at
    most 10x), and K integrated by parts twice for |a L| > 1.  At alpha = 2 the
    derivative is +inf for rc != 0 (it diverges like (rc^2/4) log(1/|alpha-2|)).
    """

    nargs = 2
    latex_template = r"\frac{{\partial \rho}}{{\partial \alpha}}\left({0}, {1}\right)"
    helper = _barron_dalpha_source(library=False)
    # CPU: on the math library, no libm calls (its branches keep the loop scalar all the same)
    vector_helper = _barron_dalpha_source(library=True)

    @classmethod
    def naive(cls, rc, alpha):
        b = sp.Abs(alpha - 2)
        return sp.diff(b / alpha * ((rc**2 / b + 1) ** (alpha / 2) - 1), alpha)

    @staticmethod
    def mp(rc, alpha):
        if alpha == 2:
            return mpmath.mpf(0) if rc == 0 else mpmath.inf
        s = rc * rc
        if s == 0:
            return mpmath.mpf(0)
        if mpmath.isinf(s):
            return 2 / alpha**2 if alpha < 0 else mpmath.inf
        b = abs(alpha - 2)
        # the closed form L^2 g(x) - L E1(x) + L E1((a-1)L) loses about 2 log10(1/L) + log10(1+|a|) digits
        lost = 2 * max(0, -int(mpmath.log10(s) - mpmath.log10(b))) + int(mpmath.log10(abs(alpha) + 2)) + 20
        with mpmath.workdps(mpmath.mp.dps + lost):
            L = mpmath.log1p(s / b)
            a = alpha / 2
            x = a * L
            e1 = lambda z: mpmath.expm1(z) / z if z != 0 else mpmath.mpf(1)  # noqa: E731
            g = (x * mpmath.exp(x) - mpmath.expm1(x)) / x**2 if x != 0 else mpmath.mpf(0.5)
            return b / 4 * (L * L * g - L * e1(x) + L * e1((a - 1) * L))


ALL: tuple[type[Primitive], ...] = (
    log1p, expm1, Tanh, sech2, sigmoid, softplus, logcosh, xlogy, xlog1py, xdivy, kinkmax,
    sqrt1pm1, xmlog1p, logistic, sigmoid_plus, powm1, boxcox1p, grouped, barron_dalpha, powdiv,
)
BY_NAME: dict[str, type[Primitive]] = {p.__name__: p for p in ALL}


def _real_only(fn):
    """A primitive's mpmath form, NaN where an argument has left the reals (the
    reference of (-2)**0.5 is complex; the kernels' real arithmetic gives NaN)."""

    def call(*args):
        if any(isinstance(a, mpmath.mpc) and a.imag != 0 for a in args):
            return mpmath.nan
        return fn(*(a.real if isinstance(a, mpmath.mpc) else a for a in args))

    return call


def mpmath_namespace() -> dict:
    """Names for ``sympy.lambdify(..., modules=[this, 'mpmath'])``."""
    return {p.__name__: _real_only(p.mp) for p in ALL}
