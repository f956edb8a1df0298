"""Properties of a loss derived from its expression, never typed by hand.

For an elementwise loss L(targets, predictions; parameters) this module works
out, in the predictions:

* convexity: SymPy proves it where it can (the a.e. Hessian is >= 0 on every
  smooth piece, the loss is continuous at every kink and its derivative jumps
  upwards there); otherwise it is tested numerically on the inputs' domains
  with the generated kernels, and a counterexample is reported;
* smoothness (C0, C1, C2, ... C∞) and where the kinks are: every ``Abs``,
  ``max``/``min``, ``sign`` and ``Piecewise`` boundary that depends on a
  prediction is a candidate; the loss is split into its two one-sided forms
  there and the jump of each derivative is evaluated at the solved location;
* growth for large residuals (quadratic, linear, logarithmic, bounded, ...),
  from the loss along each end of the prediction's domain;
* whether the gradient is bounded;
* whether the Hessian vanishes on a set of positive measure.

Every decision records its method ("symbolic" or "numeric") and the
parameters it holds for ("all admissible parameters" when the proof keeps
them symbolic, else the defaults), and the docs print both.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..derive import nonsmooth
from ..derive import primitives as P
from ..spec.model import LossSpec

ALL_PARAMS = "all admissible parameters"
DEFAULT_PARAMS = "the default parameters"
SYMBOLIC = "symbolic"
NUMERIC = "numeric"

# A value that stands for the prediction's domain when nothing else is known.
TYPICAL = {"real": 0.0, "positive": 1.0, "unit": 0.5, "unit_closed": 1.0, "binary": 1.0, "sign": 1.0}
# Targets used for the growth and gradient probes (every value of a discrete domain).
PROBE_TARGETS = {
    "real": (0.0,), "positive": (1.0,), "unit": (0.5,),
    "unit_closed": (0.0, 1.0), "binary": (0.0, 1.0), "sign": (-1.0, 1.0),
}
DISCRETE = {"binary": (0, 1), "sign": (-1, 1)}
GROWTH_RANK = {
    "unbounded": -1, "bounded": 0, "logarithmic": 1, "sublinear": 2, "linear": 3, "superlinear": 4,
    "quadratic": 5, "polynomial": 6, "exponential": 7,
}
_MAX_OPS = 400  # larger expressions skip simplify() and go to the numeric test


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """How to plot a loss: which prediction varies, over what, the rest held fixed."""

    kind: str  # residual | margin | logit | probability | prediction
    prediction: str
    lo: float
    hi: float
    fixed: tuple[tuple[str, float], ...]
    label: str  # matplotlib mathtext
    text: str  # plain words


@dataclass(frozen=True)
class Kink:
    prediction: str
    latex: str  # where, e.g. "\hat{y} = y + \delta"
    text: str  # the same in plain text
    order: int  # -1: the value jumps; k >= 0: C^k there (derivative k+1 jumps)
    method: str
    where: tuple = ()  # SymPy relations, for other printers

    @property
    def what_jumps(self) -> str:
        return {-1: "value", 0: "gradient", 1: "Hessian"}.get(self.order, f"derivative {self.order + 1}")


@dataclass(frozen=True)
class Growth:
    direction: str  # e.g. "yhat → +∞ (y = 0)"
    rate: str


@dataclass(frozen=True)
class Properties:
    name: str
    family: str
    axis: Axis
    convex: bool
    convex_method: str
    convex_scope: str
    convex_detail: str
    smoothness: str
    smoothness_method: str
    smoothness_scope: str
    kinks: tuple[Kink, ...]
    growth: str
    growth_by_direction: tuple[Growth, ...]
    bounded_gradient: bool
    gradient_detail: str
    hessian_vanishes: bool
    hessian_zero_latex: str  # where, as LaTeX ("" if nowhere)
    hessian_zero_text: str
    hessian_method: str
    hessian_zero_where: tuple  # (prediction name or "", SymPy region or None, text) per entry
    residual_based: bool
    symmetric: bool | None  # only for residual losses

    # one-line forms for tables and `symloss show`
    @property
    def convex_text(self) -> str:
        return "yes" if self.convex else "no"

    @property
    def kinks_text(self) -> str:
        return "; ".join(f"{k.text} ({k.what_jumps} jumps)" for k in self.kinks) or "none"

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs, each value saying how it was decided."""
        out = [
            ("family", self.family),
            ("convex", f"{self.convex_text} ({self.convex_method}, {self.convex_scope})"
                       + (f": {self.convex_detail}" if self.convex_detail else "")),
            ("smoothness", f"{self.smoothness} ({self.smoothness_method}, {self.smoothness_scope})"),
            ("kinks", self.kinks_text),
            ("growth", f"{self.growth} (numeric): "
                       + "; ".join(f"{g.direction}: {g.rate}" for g in self.growth_by_direction)),
            ("bounded gradient", f"{'yes' if self.bounded_gradient else 'no'} (numeric)"
                                 + (f": {self.gradient_detail}" if self.gradient_detail else "")),
            ("Hessian = 0 on a set of positive measure",
             f"{'yes' if self.hessian_vanishes else 'no'} ({self.hessian_method})"
             + (f": {self.hessian_zero_text}" if self.hessian_vanishes else "")),
        ]
        if self.residual_based:
            sym = "yes" if self.symmetric else "no"
            out.append(("residual loss", f"yes, a function of the residual alone; symmetric: {sym}"))
        return out


# ---------------------------------------------------------------------------
# axis and family: from the inputs' roles and domains
# ---------------------------------------------------------------------------
def _tex(spec: LossSpec, name: str) -> str:
    return sp.latex(spec.symbols[name])


def plot_axis(spec: LossSpec) -> Axis:
    x = spec.predictions[0]
    target_domains = {t.domain for t in spec.targets}
    fixed = [(t.name, TYPICAL[t.domain]) for t in spec.targets]
    fixed += [(p.name, TYPICAL[p.domain]) for p in spec.predictions[1:]]
    scale = max([abs(p.default) for p in spec.params] + [0.0])
    xt, xs = _tex(spec, x.name), x.name
    held = ", ".join(f"${_tex(spec, n)} = {v:g}$" for n, v in fixed)
    held_text = ", ".join(f"{n} = {v:g}" for n, v in fixed)
    if "sign" in target_domains:
        t = next(t.name for t in spec.targets if t.domain == "sign")
        return Axis("margin", xs, -3.0, 3.0, tuple(fixed),
                    f"margin ${_tex(spec, t)}\\,{xt}$ ({held})", f"margin {t}*{xs} ({held_text})")
    if x.domain == "unit":
        return Axis("probability", xs, 0.02, 0.98, tuple(fixed),
                    f"probability ${xt}$ ({held})", f"probability {xs} ({held_text})")
    if x.domain == "positive":
        return Axis("prediction", xs, 0.05, 5.0, tuple(fixed), f"${xt}$ ({held})", f"{xs} ({held_text})")
    if target_domains & {"binary", "unit_closed", "unit"}:
        return Axis("logit", xs, -6.0, 6.0, tuple(fixed), f"logit ${xt}$ ({held})", f"logit {xs} ({held_text})")
    if target_domains and target_domains <= {"real"}:
        hi = float(min(50.0, max(3.0, 2.5 * scale)))
        t = spec.targets[0].name
        return Axis("residual", xs, -hi, hi, tuple(fixed),
                    f"residual ${xt} - {_tex(spec, t)}$ ({held})", f"residual {xs} - {t} ({held_text})")
    return Axis("prediction", xs, -3.0, 3.0, tuple(fixed), f"${xt}$ ({held})", f"{xs} ({held_text})")


CATEGORICAL = {"binary", "unit_closed", "unit", "sign", "simplex"}


def family(spec: LossSpec) -> str:
    """regression / classification / probabilistic / metric learning, from roles and domains."""
    target_domains = {t.domain for t in spec.targets}
    if spec.kind != "elementwise":
        if len(spec.predictions) > 1:
            return "metric learning"
        return "classification" if target_domains & CATEGORICAL else "other"
    if len(spec.predictions) > 1:
        return "probabilistic"
    if plot_axis(spec).kind in ("margin", "logit", "probability"):
        return "classification"
    if "positive" in target_domains or spec.predictions[0].domain == "positive":
        return "probabilistic"
    return "regression"


# ---------------------------------------------------------------------------
# symbolic helpers
# ---------------------------------------------------------------------------
def _naive(expr: sp.Basic) -> sp.Basic:
    """Primitives back to their plain formulas (kinkmax stays: it carries the kink)."""
    return expr.replace(
        lambda e: isinstance(e, P.Primitive) and not isinstance(e, P.kinkmax),
        lambda e: type(e).naive(*e.args),
    )


class _TextPrinter(StrPrinter):
    def _print_Abs(self, e):
        return "|" + self._print(e.args[0]) + "|"

    def _print_kinkmax(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"


def plain(expr: sp.Basic) -> str:
    """Plain text of an expression or relation, with |x| for absolute values."""
    return _TextPrinter().doprint(expr)


def _d(expr: sp.Basic, x: sp.Symbol) -> sp.Basic:
    """The a.e. derivative (Dirac deltas dropped), as the kernels compute it."""
    return nonsmooth.derivative(expr, x)


@dataclass
class _Frame:
    """One setting for proofs: discrete targets fixed; parameters symbolic or at defaults."""

    subs: dict
    reparam: dict  # continuous symbol -> a form whose sign assumptions encode its domain
    scope: str
    label: str  # e.g. "y = 1"


def _interval_form(lo: float | None, hi: float | None, sym: sp.Symbol):
    c = sp.Dummy(f"{sym.name}_c", nonnegative=True)
    if lo is not None and hi is not None:
        return sp.nsimplify(lo) + (sp.nsimplify(hi) - sp.nsimplify(lo)) * c / (1 + c)
    if lo is not None:
        return sp.nsimplify(lo) + c
    if hi is not None:
        return sp.nsimplify(hi) - c
    return None


def _frames(spec: LossSpec, symbolic_params: bool) -> list[_Frame]:
    reparam: dict = {}
    for i in spec.inputs:
        s = spec.symbols[i.name]
        if i.domain == "positive":
            reparam[s] = sp.Dummy(f"{i.name}_p", positive=True)
        elif i.domain == "unit":
            a = sp.Dummy(f"{i.name}_a", positive=True)
            reparam[s] = a / (1 + a)
        elif i.domain == "unit_closed":
            b = sp.Dummy(f"{i.name}_b", nonnegative=True)
            reparam[s] = b / (1 + b)
    fixed: dict = {}
    for p in spec.params:
        s = spec.symbols[p.name]
        if not symbolic_params:
            fixed[s] = sp.nsimplify(p.default)
            continue
        lo = p.min
        if p.positive or p.nonnegative:
            lo = 0.0 if lo is None else max(lo, 0.0)
        if p.max is None and lo == 0.0:
            continue  # the symbol's own assumption says it all
        form = _interval_form(lo, p.max, s)
        if form is not None:
            reparam[s] = form
    discrete = [(spec.symbols[i.name], DISCRETE[i.domain]) for i in spec.inputs if i.domain in DISCRETE]
    frames = []
    scope = ALL_PARAMS if symbolic_params or not spec.params else DEFAULT_PARAMS
    for values in itertools.product(*(v for _, v in discrete)):
        subs = dict(fixed)
        subs.update({s: sp.Integer(v) for (s, _), v in zip(discrete, values)})
        label = ", ".join(f"{s} = {v}" for (s, _), v in zip(discrete, values))
        frames.append(_Frame(subs, reparam, scope, label))
    return frames


def _small(e: sp.Basic) -> bool:
    return sp.count_ops(e) <= _MAX_OPS


def _nonneg_struct(e: sp.Basic) -> bool:
    """Non-negativity from the expression's shape: squares, absolute values, exponentials, sums and products."""
    if e.is_nonnegative:
        return True
    if isinstance(e, sp.Pow):
        n = e.exp
        if n.is_integer and n.is_even and e.base.is_real:
            return True
        return _nonneg_struct(e.base) and e.exp.is_real is True
    if isinstance(e, (sp.Add, sp.Mul)):
        return all(_nonneg_struct(a) for a in e.args)
    if isinstance(e, (sp.Abs, sp.exp)):
        return True
    return False


def _prove_nonneg(e: sp.Basic, frame: _Frame) -> bool:
    """True when SymPy shows e >= 0 on the domain; False means 'not shown'."""
    e = sp.piecewise_fold(sp.sympify(e).subs(frame.subs))
    if isinstance(e, sp.Piecewise):
        return all(_prove_nonneg(branch, frame) for branch, _ in e.args)
    e = e.subs(frame.reparam)
    if _nonneg_struct(e):
        return True
    if not _small(e):
        return False
    attempts = (
        lambda: sp.simplify(e),
        lambda: sp.factor(sp.together(e)),
        lambda: sp.simplify(e.rewrite(sp.exp)),
        lambda: sp.factor(sp.together(sp.expand(e.rewrite(sp.exp)))),
    )
    for attempt in attempts:
        try:
            if _nonneg_struct(attempt()):
                return True
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
    return False


def _witness_nonzero(e: sp.Basic, tries: int = 8) -> bool:
    """Evaluate e (30 digits) at a few random points of its free symbols: nonzero anywhere?"""
    syms = sorted(e.free_symbols, key=lambda s: s.name)
    try:
        f = sp.lambdify(syms, e, modules=[P.mpmath_namespace(), "mpmath"])
    except (TypeError, ValueError, NameError):
        return False
    rng = np.random.default_rng(7)
    import mpmath

    with mpmath.workdps(30):
        for _ in range(tries):
            point = [
                mpmath.mpf(float(rng.uniform(0.2, 2.0))) if (s.is_nonnegative or s.is_positive)
                else mpmath.mpf(float(rng.normal(0.0, 1.5)))
                for s in syms
            ]
            try:
                v = f(*point)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError):
                continue
            try:
                if abs(v) > mpmath.mpf("1e-20") and mpmath.isfinite(v):
                    return True
            except TypeError:
                continue
    return False


def _zero(e: sp.Basic, frame: _Frame) -> bool | None:
    """Is e identically 0 (True), shown nonzero somewhere (False), or undecided (None)?"""
    e = sp.sympify(e).subs(frame.subs)
    if e == 0:
        return True
    if e.is_zero is False:
        return False
    if not _small(e):
        return None
    try:
        s = sp.simplify(e)
    except (TypeError, ValueError, NotImplementedError, RecursionError):
        return None
    if s == 0:
        return True
    r = s.subs(frame.reparam)
    if s.is_zero is False or r.is_zero is False:
        return False
    if _witness_nonzero(r):
        return False
    return None


# ---------------------------------------------------------------------------
# kinks: where a non-smooth function of a prediction switches branch
# ---------------------------------------------------------------------------
@dataclass
class _Site:
    """A kink locus u(x) = 0 and the replacements giving the loss on each side."""

    u: sp.Basic
    plus: dict  # on the side u > 0
    minus: dict  # on the side u < 0


def _sites(expr: sp.Basic, x: sp.Symbol) -> list[_Site]:
    found: dict[sp.Basic, _Site] = {}

    def add(u, plus, minus):
        u = sp.expand(u)
        if u.could_extract_minus_sign():
            u, plus, minus = -u, minus, plus
        site = found.setdefault(u, _Site(u, {}, {}))
        site.plus.update(plus)
        site.minus.update(minus)

    def visit(e):
        if not e.has(x):
            return
        if isinstance(e, sp.Abs):
            add(e.args[0], {e: e.args[0]}, {e: -e.args[0]})
        elif isinstance(e, sp.sign):
            add(e.args[0], {e: sp.S.One}, {e: sp.S.NegativeOne})
        elif isinstance(e, P.kinkmax):
            a, b = e.args
            add(a - b, {e: a}, {e: b})
        elif isinstance(e, sp.Piecewise):
            for branch, cond in e.args:
                visit(branch)
                for rel in cond.atoms(sp.Rel):
                    if not rel.has(x) or isinstance(rel, (sp.Eq, sp.Ne)):
                        continue  # an equality holds on a set of measure zero
                    lt = isinstance(rel, (sp.StrictLessThan, sp.LessThan))
                    u = rel.rhs - rel.lhs if lt else rel.lhs - rel.rhs
                    add(u, {rel: sp.true}, {rel: sp.false})
            return
        for a in e.args:
            visit(a)

    visit(expr)
    return [found[k] for k in sorted(found, key=sp.default_sort_key)]


def _solve(u: sp.Basic, x: sp.Symbol) -> list[sp.Basic] | None:
    """The real solutions of u = 0 for x, or None if SymPy cannot give them in closed form."""
    if not _small(u):
        return None
    try:
        sols = sp.solve(u, x, dict=False)
    except (NotImplementedError, TypeError, ValueError, RecursionError):
        return None
    if not isinstance(sols, list):
        return None
    out = []
    for s in sols:
        if not isinstance(s, sp.Expr) or s.has(x) or s.has(sp.Piecewise) or s.is_real is False:
            return None
        out.append(s)
    return sorted(out, key=sp.default_sort_key)


def _one_sided(loss: sp.Basic, site: _Site) -> tuple[sp.Basic, sp.Basic]:
    return loss.xreplace(site.plus), loss.xreplace(site.minus)


def _jump_order(loss, x, site, sols, frame, nmax=6) -> int | None:
    """Smallest k with the k-th derivative jumping at the locus, minus 1 (so C^(k-1)).

    Returns nmax + 1 when no derivative up to nmax jumps (no kink), None if undecided.
    """
    plus, minus = _one_sided(loss, site)
    diff = plus - minus
    for n in range(nmax + 1):
        # an infinite or undefined one-sided value (|r|^(1/2) at 0) counts as a jump
        verdicts = [False if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) else _zero(v, frame)
                    for v in (diff.subs(x, s) for s in sols)]
        if any(v is False for v in verdicts):
            return n - 1
        if any(v is None for v in verdicts):
            return None
        diff = _d(diff, x)
    return nmax + 1


def _upward_jump(loss, x, site, sols, frame) -> bool:
    """At each solution, right derivative - left derivative >= 0 (shown symbolically)."""
    plus, minus = _one_sided(loss, site)
    jump = _d(plus - minus, x)
    du = _d(site.u, x)
    for s in sols:
        j, slope = jump.subs(x, s), du.subs(x, s)
        if _prove_nonneg(slope, frame) and _prove_nonneg(j, frame):
            continue
        if _prove_nonneg(-slope, frame) and _prove_nonneg(-j, frame):
            continue
        return False
    return True


def _branches(expr: sp.Basic, x: sp.Symbol, limit: int = 5) -> list[sp.Basic] | None:
    """Every smooth piece of expr: each kink site replaced by one of its sides."""
    sites = _sites(expr, x)
    if len(sites) > limit:
        return None
    out = []
    for sides in itertools.product((0, 1), repeat=len(sites)):
        repl = {}
        for site, side in zip(sites, sides):
            repl.update(site.plus if side else site.minus)
        out.append(expr.xreplace(repl))
    return out


# ---------------------------------------------------------------------------
# numeric helpers: the generated kernels on the inputs' domains
# ---------------------------------------------------------------------------
def _loss_object(spec: LossSpec):
    from .. import catalog
    from ..runtime.loss import Loss, load

    try:
        builtin = catalog.spec_path(spec.name)
    except Exception:  # not a built-in name
        builtin = None
    if builtin is not None and Path(spec.source).resolve() == builtin.resolve():
        return load(spec.name)
    return Loss.from_spec(spec)


class Kernels:
    """The generated kernels on dicts of named inputs; parameters default to the spec's."""

    def __init__(self, spec: LossSpec, loss):
        self.spec = spec
        self.loss = loss
        self.params = {p.name: p.default for p in spec.params}
        self.k = len(spec.predictions)

    def _arrays(self, values: dict):
        n = max(np.size(v) for v in values.values())
        return [np.array(np.broadcast_to(np.asarray(values[i.name], dtype=np.float64), (n,)))
                for i in self.spec.inputs]

    def value(self, values, params=None):
        with np.errstate(all="ignore"):
            return self.loss.value(*self._arrays(values), reduction="none", **(params or self.params))

    def grad(self, values, j=0, params=None):
        with np.errstate(all="ignore"):
            g = self.loss.grad(*self._arrays(values), reduction="none", **(params or self.params))
        return g if self.k == 1 else g[j]

    def hess(self, values, j=0, params=None):
        with np.errstate(all="ignore"):
            h = self.loss.hessian(*self._arrays(values), reduction="none", **(params or self.params))
        return h if self.k == 1 else h[j, j]


def _grid(domain: str, reach: float, n: int = 801) -> np.ndarray:
    if domain == "positive":
        return np.geomspace(1e-9, 1e3, n)
    if domain in ("unit", "unit_closed"):
        return 1.0 / (1.0 + np.exp(-np.linspace(-12.0, 12.0, n)))
    return np.linspace(-reach, reach, n)


def _reach(axis: Axis) -> float:
    return 2.0 * max(abs(axis.lo), abs(axis.hi))


def _samples(spec: LossSpec, vary: str, n: int, seed: int = 0) -> list[dict]:
    """n settings of every input but ``vary``: targets sampled from their domains."""
    from ..check.sampling import sample

    rng = np.random.default_rng(seed)
    cols = {}
    for i in spec.inputs:
        if i.name == vary:
            continue
        if i.role == "target":
            cols[i.name] = sample(i.domain, n, rng)
        else:
            cols[i.name] = np.full(n, TYPICAL[i.domain])
    return [{k: float(v[j]) for k, v in cols.items()} for j in range(n)]


def _fmt(settings: dict) -> str:
    return ", ".join(f"{k} = {v:.3g}" for k, v in settings.items())


# ---------------------------------------------------------------------------
# the properties
# ---------------------------------------------------------------------------
class _Analysis:
    def __init__(self, spec: LossSpec, loss=None):
        if spec.kind != "elementwise":
            raise ValueError(f"{spec.name}: derived properties cover elementwise losses, not kind '{spec.kind}'")
        self.spec = spec
        self.expr = _naive(nonsmooth.prepare(spec.loss))
        self.xs = [spec.symbols[i.name] for i in spec.predictions]
        self.axis = plot_axis(spec)
        self.kernels = Kernels(spec, loss if loss is not None else _loss_object(spec))
        self.modes = [True, False] if spec.params else [True]

    def _sols(self, u: sp.Basic, x: sp.Symbol) -> list[sp.Basic] | None:
        """Solutions of u = 0: generic; else for positive parameters; else at the defaults."""
        sols = _solve(u, x)
        if sols is not None:
            return sols
        spec = self.spec
        loose = [spec.symbols[p.name] for p in spec.params if not spec.symbols[p.name].is_positive]
        if loose:
            pos = {s: sp.Symbol(s.name, positive=True) for s in loose}
            sols = _solve(u.xreplace(pos), x)
            if sols is not None:
                back = {v: k for k, v in pos.items()}
                return [s.xreplace(back) for s in sols]
        return _solve(u.subs({spec.symbols[p.name]: sp.nsimplify(p.default) for p in spec.params}), x)

    # smoothness --------------------------------------------------------------
    def kinks(self) -> list[Kink]:
        kinks = []
        for x, inp in zip(self.xs, self.spec.predictions):
            for site in _sites(self.expr, x):
                kink = self._kink(x, inp.name, site)
                if kink is not None:
                    kinks.append(kink)
        return kinks

    def _kink(self, x, name, site) -> Kink | None:
        sols = self._sols(site.u, x)
        if sols is not None and not sols:
            return None  # the locus is never crossed
        if sols is not None:
            for symbolic in self.modes:
                orders = [_jump_order(self.expr, x, site, sols, f) for f in _frames(self.spec, symbolic)]
                if all(o is not None for o in orders):
                    order = min(orders)
                    if order > 6:
                        return None
                    latex = ", \\quad ".join(sp.latex(sp.Eq(x, s)) for s in sols)
                    text = " or ".join(f"{name} = {plain(s)}" for s in sols)
                    scope = ALL_PARAMS if symbolic or not self.spec.params else DEFAULT_PARAMS
                    where = tuple(sp.Eq(x, s) for s in sols)
                    return Kink(name, latex, text, order, f"{SYMBOLIC}|{scope}", where)
        order = self._numeric_jump(x, name, site)
        if order is None:
            return None
        latex = sp.latex(sp.Eq(site.u, 0))
        return Kink(name, latex, f"{plain(site.u)} = 0", order, f"{NUMERIC}|{DEFAULT_PARAMS}",
                    (sp.Eq(site.u, 0),))

    def _numeric_jump(self, x, name, site) -> int | None:
        """Find where u changes sign on a grid, then compare the kernels just either side."""
        spec, K = self.spec, self.kernels
        others = [s for s in site.u.free_symbols if s != x]
        f = sp.lambdify([x, *others], site.u.subs({spec.symbols[p.name]: p.default for p in spec.params}),
                        modules=[P.mpmath_namespace(), "mpmath"])
        inp = next(i for i in spec.inputs if i.name == name)
        grid = _grid(inp.domain, _reach(self.axis), 401)
        worst = None
        for setting in _samples(spec, name, 6, seed=1):
            vals = [spec.symbols[n] for n in setting]
            env = dict(zip(vals, setting.values()))
            try:
                us = np.array([float(f(g, *[env.get(o, 0.0) for o in others])) for g in grid])
            except (TypeError, ValueError, ZeroDivisionError):
                return None
            for k in np.nonzero(np.sign(us[:-1]) * np.sign(us[1:]) < 0)[0]:
                lo, hi = grid[k], grid[k + 1]
                for _ in range(60):
                    mid = 0.5 * (lo + hi)
                    if np.sign(float(f(mid, *[env.get(o, 0.0) for o in others]))) == np.sign(us[k]):
                        lo = mid
                    else:
                        hi = mid
                x0 = 0.5 * (lo + hi)
                # a jump stays as the gap shrinks 1000-fold; a continuous (even Hölder) value closes it
                gaps = np.array([1e-5, 1e-8]) * max(1.0, abs(x0))
                pts = dict(setting)
                pts[name] = np.concatenate([x0 - gaps, x0 + gaps])
                j = spec.predictions.index(inp)
                order = 2
                for k_, fn in ((-1, K.value), (0, lambda v: K.grad(v, j)), (1, lambda v: K.hess(v, j))):
                    left_far, left_near, right_far, right_near = fn(pts)
                    far, near = abs(right_far - left_far), abs(right_near - left_near)
                    scale = 1.0 + abs(left_near) + abs(right_near)
                    if not np.isfinite(near) or (near > 1e-6 * scale and near > 0.3 * far):
                        order = k_
                        break
                worst = order if worst is None else min(worst, order)
        return worst

    # convexity -----------------------------------------------------------------
    def convexity(self) -> tuple[bool, str, str, str]:
        if len(self.xs) == 1:
            for symbolic in self.modes:
                frames = _frames(self.spec, symbolic)
                if all(self._convex_1d(f) for f in frames):
                    if _sites(self.expr, self.xs[0]):
                        why = "the Hessian is ≥ 0 on every smooth piece and the slope jumps upwards at every kink"
                    else:
                        why = "the Hessian is ≥ 0 on the whole domain"
                    return True, SYMBOLIC, frames[0].scope, why
        elif not any(_sites(self.expr, x) for x in self.xs):
            for symbolic in self.modes:
                frames = _frames(self.spec, symbolic)
                if all(self._convex_psd(f) for f in frames):
                    return True, SYMBOLIC, frames[0].scope, "every principal minor of the Hessian is ≥ 0"
        return self._convex_numeric()

    def _convex_1d(self, frame) -> bool:
        x = self.xs[0]
        for site in _sites(self.expr, x):
            sols = self._sols(site.u, x)
            if sols is None:
                return False
            if not sols:
                continue
            if _jump_order(self.expr, x, site, sols, frame, nmax=0) not in (0, 1):  # the value must not jump
                return False
            if not _upward_jump(self.expr, x, site, sols, frame):
                return False
        h = _d(_d(self.expr, x), x)
        pieces = _branches(h, x)
        return pieces is not None and all(_prove_nonneg(p, frame) for p in pieces)

    def _convex_psd(self, frame) -> bool:
        H = sp.Matrix(len(self.xs), len(self.xs), lambda i, j: _d(_d(self.expr, self.xs[i]), self.xs[j]))
        n = len(self.xs)
        for size in range(1, n + 1):
            for idx in itertools.combinations(range(n), size):
                if not _prove_nonneg(H.extract(list(idx), list(idx)).det(), frame):
                    return False
        return True

    def _convex_numeric(self) -> tuple[bool, str, str, str]:
        spec, K = self.spec, self.kernels
        scope = DEFAULT_PARAMS if spec.params else ALL_PARAMS
        if len(self.xs) == 1:
            inp = spec.predictions[0]
            grid = _grid(inp.domain, _reach(self.axis))
            settings = _samples(spec, inp.name, 24)
            worst, where = 0.0, None
            for setting in settings:
                vals = dict(setting)
                vals[inp.name] = grid
                f = K.value(vals)
                ok = np.isfinite(f)
                x, f = grid[ok], f[ok]
                if x.size < 3:
                    continue
                h = np.diff(x)
                d1 = np.diff(f) / h
                d2 = 2.0 * np.diff(d1) / (x[2:] - x[:-2])
                mag = np.maximum(np.maximum(np.abs(f[:-2]), np.abs(f[1:-1])), np.abs(f[2:]))
                noise = 1e3 * np.finfo(float).eps * mag * (1 / h[:-1] + 1 / h[1:]) / (h[:-1] + h[1:]) + 1e-9
                score = d2 / noise
                k = int(np.argmin(score))
                if score[k] < -1.0 and score[k] < worst:
                    worst, where = score[k], (x[k + 1], setting)
            n = len(settings) * grid.size
            if where is None:
                return True, NUMERIC, scope, f"no concave stretch on {n} sampled points"
            x0, setting = where
            return False, NUMERIC, scope, f"concave near {inp.name} = {x0:.3g} ({_fmt(setting)})"
        return self._midpoint_numeric(scope)

    def _midpoint_numeric(self, scope) -> tuple[bool, str, str, str]:
        spec, K = self.spec, self.kernels
        rng = np.random.default_rng(0)
        n = 20000
        reach = _reach(self.axis)
        from ..check.sampling import sample

        def draw(inp):
            if inp.domain == "positive":
                return np.exp(rng.uniform(np.log(1e-3), np.log(1e2), n))
            if inp.domain in ("unit", "unit_closed"):
                return rng.uniform(1e-3, 1 - 1e-3, n)
            return rng.uniform(-reach, reach, n)

        a, b, fixed = {}, {}, {}
        for inp in spec.inputs:
            if inp.role == "target":
                fixed[inp.name] = sample(inp.domain, n, rng)
            else:
                a[inp.name] = draw(inp)
                near = a[inp.name] * (1 + rng.normal(0, 0.05, n))
                far = draw(inp)
                b[inp.name] = np.where(np.arange(n) % 2 == 0, near, far)
        mid = {k: 0.5 * (a[k] + b[k]) for k in a}
        fa, fb, fm = (K.value({**fixed, **pt}) for pt in (a, b, mid))
        slack = 1e-9 * (1 + np.abs(fa) + np.abs(fb))
        bad = np.nonzero(np.isfinite(fa + fb + fm) & (fm > 0.5 * (fa + fb) + slack))[0]
        if bad.size == 0:
            return True, NUMERIC, scope, f"midpoint inequality holds on {n} sampled pairs"
        k = int(bad[0])
        pt = {name: float(v[k]) for name, v in {**fixed, **a}.items()}
        other = {name: float(v[k]) for name, v in b.items()}
        return False, NUMERIC, scope, f"midpoint inequality fails between ({_fmt(pt)}) and ({_fmt(other)})"

    # growth and gradient ---------------------------------------------------------
    def _ends(self):
        inp = self.spec.predictions[0]
        s = 10.0 ** np.arange(2, 8)
        name = inp.name
        if inp.domain == "positive":
            return [(f"{name} → +∞", s), (f"{name} → 0⁺", 1.0 / s)]
        if inp.domain in ("unit", "unit_closed"):
            return [(f"{name} → 0⁺", 1.0 / s), (f"{name} → 1⁻", 1.0 - 1.0 / s)]
        return [(f"{name} → +∞", s), (f"{name} → −∞", -s)]

    def _probe_settings(self) -> list[dict]:
        spec = self.spec
        names, choices = [], []
        for i in spec.inputs:
            if i.name == spec.predictions[0].name:
                continue
            names.append(i.name)
            choices.append(PROBE_TARGETS[i.domain] if i.role == "target" else (TYPICAL[i.domain],))
        return [dict(zip(names, c)) for c in itertools.product(*choices)]

    def growth(self) -> tuple[str, list[Growth]]:
        name = self.spec.predictions[0].name
        out = []
        for setting in self._probe_settings():
            for label, xs in self._ends():
                f = self.kernels.value({**setting, name: xs})
                held = f" ({_fmt(setting)})" if setting else ""
                out.append(Growth(label + held, _rate(f)))
        overall = max((g.rate for g in out), key=lambda r: GROWTH_RANK[r.split()[0]])
        return overall, out

    def bounded_gradient(self) -> tuple[bool, str]:
        name = self.spec.predictions[0].name
        for setting in self._probe_settings():
            for label, xs in self._ends():
                g = np.abs(self.kernels.grad({**setting, name: xs}))
                if not np.all(np.isfinite(g)) or g[-1] > 1.5 * g[-3] + 1e-9:
                    held = f" ({_fmt(setting)})" if setting else ""
                    return False, f"|∂L/∂{name}| grows without bound as {label}{held}"
        # a singular slope at a kink (e.g. |r|^(1/2) at r = 0)
        x = self.xs[0]
        for site in _sites(self.expr, x):
            sols = self._sols(site.u, x) or []
            for setting in self._probe_settings():
                env = {self.spec.symbols[k]: v for k, v in setting.items()}
                env.update({self.spec.symbols[p.name]: p.default for p in self.spec.params})
                for s in sols:
                    try:
                        x0 = float(s.subs(env))
                    except (TypeError, ValueError):
                        continue
                    steps = 10.0 ** -np.arange(2, 9)
                    for side in (-1, 1):
                        g = np.abs(self.kernels.grad({**setting, name: x0 + side * steps}))
                        if not np.all(np.isfinite(g)) or g[-1] > 1.5 * g[-3] + 1e-9:
                            return False, f"|∂L/∂{name}| blows up at {name} = {x0:.3g}"
        return True, ""

    # Hessian -------------------------------------------------------------------------
    def hessian_zero(self) -> tuple[bool, str, str, str, tuple]:
        """Does d²L/dx² vanish on a set of positive measure (per prediction)?"""
        found, latex, text, methods, where_all = False, [], [], set(), []
        multi = len(self.xs) > 1
        for j, (x, inp) in enumerate(zip(self.xs, self.spec.predictions)):
            h = _d(_d(self.expr, x), x)
            label = f"∂²L/∂{inp.name}²" if len(self.xs) > 1 else ""
            ltex = (f"\\frac{{\\partial^{{2}} L}}{{\\partial {sp.latex(x)}^{{2}}}} = 0 \\text{{ where }} "
                    if len(self.xs) > 1 else "")
            frames = _frames(self.spec, True)
            verdicts = [_zero(h, f) for f in frames]
            if any(verdicts):
                found = True
                methods.add(SYMBOLIC)
                when = "" if all(verdicts) else " when " + " or ".join(
                    f.label for f, v in zip(frames, verdicts) if v)
                latex.append(ltex + f"\\text{{everywhere{when}}}" if ltex else f"\\text{{everywhere{when} (a.e.)}}")
                text.append(f"{label} = 0 everywhere{when}" if label else f"everywhere{when} (a.e.)")
                where_all.append((inp.name if multi else "", None, f"everywhere{when}"))
                continue
            pieces = _branches(h, x)
            if pieces is not None and all(_zero(piece, f) is False for piece in pieces for f in frames):
                # each smooth piece is analytic and not identically 0: its zeros are isolated
                methods.add(SYMBOLIC)
                continue
            fraction = self._zero_fraction(j)
            if fraction < 0.005:
                methods.add(NUMERIC)
                continue
            found = True
            where = self._zero_region(h, x, j)
            if where is not None:
                methods.add(f"{SYMBOLIC}, measure checked {NUMERIC}ally")
                latex.append(ltex + sp.latex(where))
                text.append((f"{label} = 0 where " if label else "") + plain(where))
                where_all.append((inp.name if multi else "", where, plain(where)))
            else:
                methods.add(NUMERIC)
                latex.append(ltex + f"\\text{{on {100 * fraction:.0f}\\% of sampled points}}")
                text.append((f"{label} = 0 " if label else "") + f"on {100 * fraction:.0f}% of sampled points")
                where_all.append((inp.name if multi else "", None, f"on {100 * fraction:.0f}% of sampled points"))
        method = NUMERIC if NUMERIC in methods else sorted(methods)[-1] if methods else SYMBOLIC
        return found, "; ".join(latex), "; ".join(text), method, tuple(where_all)

    def _zero_fraction(self, j: int) -> float:
        inp = self.spec.predictions[j]
        grid = _grid(inp.domain, _reach(self.axis))
        zeros = total = 0
        for setting in _samples(self.spec, inp.name, 12):
            h = self.kernels.hess({**setting, inp.name: grid}, j)
            zeros += int(np.sum(h == 0.0))
            total += grid.size
        return zeros / total

    def _zero_region(self, h, x, j) -> sp.Basic | None:
        """Where a Piecewise Hessian takes a zero branch, if that set has positive measure."""
        h = sp.piecewise_fold(h)
        if not isinstance(h, sp.Piecewise):
            return None
        parts, earlier = [], []
        for branch, cond in h.args:
            region = sp.And(cond, *[sp.Not(c) for c in earlier])
            earlier.append(cond)
            if _zero(branch, _Frame({}, {}, ALL_PARAMS, "")) and self._measure(region, j) > 0.005:
                parts.append(region)
        if not parts:
            return None
        region = sp.Or(*parts)
        try:
            simpler = sp.simplify(region)
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            simpler = region
        return simpler if sp.count_ops(simpler) <= sp.count_ops(region) else region

    def _measure(self, region, j) -> float:
        inp = self.spec.predictions[j]
        spec = self.spec
        grid = _grid(inp.domain, _reach(self.axis))
        at_defaults = region.subs({spec.symbols[p.name]: p.default for p in spec.params})
        syms = sorted(at_defaults.free_symbols, key=lambda s: s.name)
        f = sp.lambdify(syms, at_defaults, modules=[P.mpmath_namespace(), "mpmath"])
        hits = total = 0
        for setting in _samples(spec, inp.name, 4):
            env = {**setting}
            for g in grid[::4]:
                env[inp.name] = g
                try:
                    hits += bool(f(*[env[s.name] for s in syms]))
                except (TypeError, ValueError, KeyError):
                    return 0.0
                total += 1
        return hits / max(total, 1)

    # residual structure ---------------------------------------------------------------
    def residual(self) -> tuple[bool, bool | None]:
        spec = self.spec
        if self.axis.kind != "residual" or len(spec.targets) != 1 or len(self.xs) != 1:
            return False, None
        y, x = spec.symbols[spec.targets[0].name], self.xs[0]
        r = sp.Dummy("r", real=True)
        in_r = self.expr.subs(x, y + r)
        if in_r.has(y):
            in_r = sp.simplify(in_r) if _small(in_r) else in_r
            if in_r.has(y):
                return False, None
        if sp.expand(in_r - in_r.subs(r, -r)) == 0:
            return True, True
        # numerically, at the parameter values the plots use
        rs = np.linspace(0.05, _reach(self.axis), 97)
        for params in parameter_variations(spec, all_params=True):
            a = self.kernels.value({y.name: 0.0, x.name: rs}, params)
            b = self.kernels.value({y.name: 0.0, x.name: -rs}, params)
            if np.max(np.abs(a - b)) > 1e-9 * (1 + np.max(np.abs(a))):
                return True, False
        return True, True


def _rate(f: np.ndarray) -> str:
    """Growth class of f along s = 10^2 .. 10^7 (or the distance to a finite end)."""
    if not np.all(np.isfinite(f)):
        return "exponential" if np.any(f == np.inf) else "bounded"
    d = np.diff(f)
    scale = 1.0 + np.max(np.abs(f))
    if np.all(np.abs(d) <= 1e-12 * scale):
        return "bounded"
    a, b = d[-2], d[-1]
    if a > 0 and b > 0:
        p = math.log10(b / a)
        if p > 8:
            return "exponential"
        if abs(p - 2) < 0.25:
            return "quadratic"
        if abs(p - 1) < 0.25:
            return "linear"
        if abs(p) < 0.25:
            return "logarithmic"
        if p < 0:
            return "bounded"
        kind = "sublinear" if p < 1 else "superlinear" if p < 2 else "polynomial"
        return f"{kind} (power {p:.2g})"
    if abs(b) <= 0.5 * abs(a) or abs(b) <= 1e-12 * scale:
        return "bounded"
    return "unbounded below"  # keeps falling: not a loss one can minimise


def parameter_variations(spec: LossSpec, all_params: bool = False) -> list[dict]:
    """A few admissible values of the first parameter (the default first), others at defaults.

    With ``all_params`` every parameter is varied in turn.
    """
    base = {p.name: p.default for p in spec.params}
    out = [dict(base)]
    for p in spec.params if all_params else spec.params[:1]:
        for v in parameter_values(p):
            if v != p.default:
                out.append({**base, p.name: v})
    return out


def parameter_values(p) -> list[float]:
    """The default and a few admissible neighbours, at most four values, sorted."""
    if p.min is not None and p.max is not None:
        lo, hi = p.min, p.max
        cands = [lo + f * (hi - lo) for f in (0.1, 0.5, 0.9)]
        cands = [c for c in cands if abs(c - p.default) > 0.1 * (hi - lo)]
    elif p.default != 0:
        cands = [p.default / 2, p.default * 2]
    else:
        cands = [-1.0, 1.0]
    vals = {float(p.default)} | {float(round(c, 10)) for c in cands if p.violation(c) is None}
    return sorted(vals)[:4]


_CACHE: dict = {}


def properties(spec: LossSpec, loss=None) -> Properties:
    """Every derived property of an elementwise loss (cached per spec)."""
    key = (spec.name, spec.source, spec.loss_text, spec.params, spec.inputs)
    if key in _CACHE:
        return _CACHE[key]
    a = _Analysis(spec, loss)
    kinks = a.kinks()
    if kinks:
        order = min(k.order for k in kinks)
        smooth = "discontinuous" if order < 0 else f"C{order}"
        methods = {k.method.split("|")[0] for k in kinks}
        scopes = {k.method.split("|")[1] for k in kinks}
        smethod = NUMERIC if NUMERIC in methods else SYMBOLIC
        sscope = DEFAULT_PARAMS if DEFAULT_PARAMS in scopes else ALL_PARAMS
    else:
        smooth, smethod, sscope = "C∞", SYMBOLIC, ALL_PARAMS
    convex, cmethod, cscope, cdetail = a.convexity()
    growth, by_dir = a.growth()
    bounded, gdetail = a.bounded_gradient()
    vanishes, zlatex, ztext, zmethod, zwhere = a.hessian_zero()
    residual, symmetric = a.residual()
    result = Properties(
        name=spec.name,
        family=family(spec),
        axis=a.axis,
        convex=convex,
        convex_method=cmethod,
        convex_scope=cscope,
        convex_detail=cdetail,
        smoothness=smooth,
        smoothness_method=smethod,
        smoothness_scope=sscope,
        kinks=tuple(kinks),
        growth=growth,
        growth_by_direction=tuple(by_dir),
        bounded_gradient=bounded,
        gradient_detail=gdetail,
        hessian_vanishes=vanishes,
        hessian_zero_latex=zlatex,
        hessian_zero_text=ztext,
        hessian_method=zmethod,
        hessian_zero_where=zwhere,
        residual_based=residual,
        symmetric=symmetric,
    )
    _CACHE[key] = result
    return result
