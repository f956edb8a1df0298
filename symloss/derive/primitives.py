"""Custom primitives: each carries its derivative, LaTeX and high-precision value.

A primitive is a SymPy function the stability rewrites introduce.  This module
is pure math; each backend implements every primitive in its own table
(``symloss/backends/<name>/primitives.py``, checked by tests/test_backends.py).
Adding a primitive means adding one class here and one entry per backend.
"""
from __future__ import annotations

import mpmath
import sympy as sp


class Primitive(sp.Function):
    """Base class: the math of a primitive.  Its code lives in each backend's table."""

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
    nargs = 1
    latex_template = r"\log\left(1 + {0}\right)"

    @classmethod
    def naive(cls, x):
        return sp.log(1 + x)

    mp = staticmethod(mpmath.log1p)

    def fdiff(self, argindex=1):
        return 1 / (1 + self.args[0])


class expm1(Primitive):
    nargs = 1
    latex_template = r"\left(e^{{{0}}} - 1\right)"

    @classmethod
    def naive(cls, x):
        return sp.exp(x) - 1

    mp = staticmethod(mpmath.expm1)

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])


class Tanh(Primitive):
    nargs = 1
    latex_template = r"\tanh\left({0}\right)"

    @classmethod
    def naive(cls, x):
        return sp.tanh(x)

    mp = staticmethod(mpmath.tanh)

    def fdiff(self, argindex=1):
        return sech2(self.args[0])  # 1 - tanh^2 cancels to garbage for large |x|


class sech2(Primitive):
    nargs = 1
    latex_template = r"\operatorname{{sech}}^{{2}}\left({0}\right)"

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
    nargs = 1
    latex_template = r"\sigma\left({0}\right)"

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
    nargs = 1
    latex_template = r"\log\left(1 + e^{{{0}}}\right)"

    @classmethod
    def naive(cls, x):
        return sp.log(1 + sp.exp(x))

    @staticmethod
    def mp(x):
        return mpmath.log1p(mpmath.exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class logcosh(Primitive):
    nargs = 1
    latex_template = r"\log\left(\cosh\left({0}\right)\right)"

    @classmethod
    def naive(cls, x):
        return sp.log(sp.cosh(x))

    @staticmethod
    def mp(x):
        return mpmath.log(mpmath.cosh(x))

    def fdiff(self, argindex=1):
        return Tanh(self.args[0])


class xlogy(Primitive):
    nargs = 2
    latex_template = r"{0} \log\left({1}\right)"

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
    nargs = 2
    latex_template = r"{0} \log\left(1 + {1}\right)"

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

    @classmethod
    def naive(cls, x, y):
        return x / y

    @staticmethod
    def mp(x, y):
        return mpmath.mpf(0) if x == 0 and not mpmath.isnan(y) else x / y

    def fdiff(self, argindex=1):
        x, y = self.args
        return 1 / y if argindex == 1 else -xdivy(x, y**2)




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

    # A second pow behind a branch keeps the loop scalar (pow cannot be speculated), so
    # the CPU keeps the quotient (one pow, as exact as pow) where its parts are normal
    # floats and takes b**(g - k) by exp and log, branch-free, only where one is not
    # (|(g - k) log b| ulp, as pow would be), "normal" in the float type's own range (_TINY)

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

    nargs = 2
    latex_template = r"\left(\log\left(1 + e^{{{0}}}\right) + {1} {0}\right)"

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

    nargs = 2
    latex_template = r"\left(\sigma\left({0}\right) + {1}\right)"

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

    nargs = 2
    latex_template = r"\left(\left(1 + {0}\right)^{{{1}}} - 1\right)"

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
    # CPU: on the math library, no libm calls (its branches keep the loop scalar all the same)

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
