"""Properties of a row loss (one value per row of the class axis), derived, never typed by hand.

The elementwise analysis (properties.py) works on one scalar prediction; a row
loss is a function of whole vectors, so here:

* convexity in the prediction vector(s): first by composition rules on the
  spec's expression (sums with nonnegative weights of convex terms, affine
  terms, log-sum-exp, max, -log, squares and norms of affine terms: what DCP
  tools call disciplined convex), which proves it symbolically; otherwise
  numerically with the generated row kernels: every sampled row's full
  Hessian must be positive semidefinite and the midpoint inequality must
  hold on sampled pairs (a concave kink has a PSD Hessian on both sides);
* smoothness and kinks: symbolic, from the non-smooth nodes (max, min, |x|,
  sign, conditions on a prediction, the square root of a sum of squares that
  can reach 0) that depend on a prediction; ``max(...)^n`` is C^(n-1);
* growth along rays (or towards the boundary of a bounded domain) and whether
  the gradient stays bounded there and near the origin: numeric;
* whether the Hessian is 0 on a set of positive measure: numeric.

Numbers are taken at the default parameters and class inputs, with K = 4
classes; each verdict records how it was decided.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..spec.model import LossSpec
from ..spec.rowexpr import RowMax, RowSum
from .properties import ALL_PARAMS, DEFAULT_PARAMS, GROWTH_RANK, NUMERIC, SYMBOLIC, _rate, _TextPrinter, family

K = 4  # classes (or embedding size) of the sampled rows
N_ROWS = 256
N_RAYS = 24
NONNEG_DOMAINS = {"simplex", "binary", "unit", "unit_closed", "positive"}


@dataclass(frozen=True)
class RowKink:
    text: str  # plain words
    latex: str
    where: sp.Basic | None  # a relation for the MathML printer, or None (text only)
    order: int  # C^order there; -1: the value jumps; None never

    @property
    def what_jumps(self) -> str:
        return {-1: "value", 0: "gradient", 1: "Hessian"}.get(self.order, f"derivative {self.order + 1}")


@dataclass(frozen=True)
class RowProperties:
    name: str
    family: str
    convex: bool
    convex_method: str
    convex_scope: str
    convex_detail: str
    smoothness: str
    smoothness_method: str
    kinks: tuple[RowKink, ...]
    growth: str
    growth_detail: str
    bounded_gradient: bool
    gradient_detail: str
    hessian_vanishes: bool
    hessian_detail: str
    hessian_method: str

    def lines(self) -> list[tuple[str, str]]:
        kinks = "; ".join(f"{k.text} ({k.what_jumps} jumps)" for k in self.kinks) or "none"
        return [
            ("family", self.family),
            ("convex", f"{'yes' if self.convex else 'no'} ({self.convex_method}, {self.convex_scope})"
                       + (f": {self.convex_detail}" if self.convex_detail else "")),
            ("smoothness", f"{self.smoothness} ({self.smoothness_method})"),
            ("kinks", kinks),
            ("growth", f"{self.growth} ({NUMERIC}): {self.growth_detail}"),
            ("bounded gradient", f"{'yes' if self.bounded_gradient else 'no'} ({NUMERIC})"
                                 + (f": {self.gradient_detail}" if self.gradient_detail else "")),
            ("Hessian = 0 on a set of positive measure",
             f"{'yes' if self.hessian_vanishes else 'no'} ({self.hessian_method}): {self.hessian_detail}"),
        ]


class _RowText(_TextPrinter):
    """Plain text with sum_k(...), max_k(...) and x1_k for the row nodes."""

    def _print_RowSum(self, e):
        return f"sum_{self._print(e.index)}({self._print(e.summand)})"

    def _print_RowMax(self, e):
        return f"max_{self._print(e.index)}({self._print(e.summand)})"

    def _print_Indexed(self, e):
        return f"{self._print(e.base)}_{self._print(e.indices[0])}"


def plain(expr: sp.Basic) -> str:
    return _RowText().doprint(expr)


# ---------------------------------------------------------------------------
# symbolic: the expression with parameters and class inputs at their defaults
# ---------------------------------------------------------------------------
class _Expr:
    """The spec's loss with its prediction entries marked and constants' signs known."""

    def __init__(self, spec: LossSpec):
        self.spec = spec
        bases = spec.row.symbols["bases"]
        size = spec.row.symbols["size"]
        subs = {spec.symbols[p.name]: sp.nsimplify(p.default) for p in spec.params}
        subs[size] = sp.Symbol("K", positive=True, integer=True)
        repl = {}
        for i in spec.inputs:
            base = bases.get(i.name)
            if i.shape == "class":
                repl[i.name] = sp.nsimplify(i.default)
            elif i.role == "target" and i.domain in NONNEG_DOMAINS:
                repl[i.name] = sp.Symbol(f"{i.name}_nonneg", nonnegative=True)
            if base is None and i.name in repl:  # scalar input: its own symbol
                subs[spec.symbols[i.name]] = repl.pop(i.name)
        index = spec.row.symbols["index"]
        expr = spec.loss.xreplace(subs)
        # x[k] of a class input or a nonnegative target -> a number or a nonnegative symbol
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) in repl,
                            lambda e: repl[str(e.base)])
        self.expr = expr
        self.rules: set[str] = set()  # the composition rules a convexity proof used, for the docs
        self.at_defaults = False  # a smoothness verdict needed a parameter's default (focal's gamma)
        self.defaults = {spec.symbols[p.name]: sp.nsimplify(p.default) for p in spec.params}
        self.original = spec.loss
        self.index = index
        self.preds = {str(bases[i.name]) for i in spec.predictions if i.name in bases}
        self.scalar_preds = {spec.symbols[i.name] for i in spec.predictions if i.name not in bases}
        self.pred_domain = {str(bases.get(i.name, i.name)): i.domain for i in spec.predictions}

    def has_pred(self, e: sp.Basic) -> bool:
        return any(str(a.base) in self.preds for a in e.atoms(sp.Indexed)) or bool(e.free_symbols & self.scalar_preds)


def _nonneg(e: sp.Basic) -> bool:
    if e.is_nonnegative:
        return True
    if isinstance(e, (sp.Add, sp.Mul)):
        return all(_nonneg(a) for a in e.args)
    if isinstance(e, RowSum):
        return _nonneg(e.summand)
    if isinstance(e, sp.Pow):
        return _nonneg(e.base) or (e.exp.is_integer and e.exp.is_even)
    return isinstance(e, (sp.exp, sp.Abs))


def _nonpos(e: sp.Basic) -> bool:
    return _nonneg(-e) or (isinstance(e, sp.Mul) and sp.S.NegativeOne in e.args and _nonneg(-e))


AFFINE, CONVEX, CONCAVE, CONST = "affine", "convex", "concave", "const"
_FLIP = {CONVEX: CONCAVE, CONCAVE: CONVEX, AFFINE: AFFINE, CONST: CONST, None: None}


def _add(cs: list) -> str | None:
    s = set(cs) - {CONST}
    if not s:
        return CONST
    if s == {AFFINE}:
        return AFFINE
    if s <= {AFFINE, CONVEX}:
        return CONVEX
    if s <= {AFFINE, CONCAVE}:
        return CONCAVE
    return None


def curvature(e: sp.Basic, x: _Expr) -> str | None:
    """Curvature of e in the predictions by the composition rules, or None when they do not decide."""
    if not x.has_pred(e):
        return CONST
    if isinstance(e, sp.Indexed) or e in x.scalar_preds:
        return AFFINE
    if isinstance(e, sp.Add):
        return _add([curvature(a, x) for a in e.args])
    if isinstance(e, RowSum):
        return curvature(e.summand, x)
    if isinstance(e, sp.Mul):
        const = sp.Mul(*(a for a in e.args if not x.has_pred(a)))
        rest = [a for a in e.args if x.has_pred(a)]
        if len(rest) != 1:
            return None
        c = curvature(rest[0], x)
        if c == AFFINE or _nonneg(const):
            return c
        if _nonpos(const):
            x.rules.add("a negative multiple flips curvature")
            return _FLIP[c]
        return None
    if isinstance(e, (sp.Max, RowMax)):
        args = e.args if isinstance(e, sp.Max) else (e.summand,)
        if all(curvature(a, x) in (CONST, AFFINE, CONVEX) for a in args):
            x.rules.add("max of convex terms")
            return CONVEX
        return None
    if isinstance(e, sp.Min):
        return CONCAVE if all(curvature(a, x) in (CONST, AFFINE, CONCAVE) for a in e.args) else None
    if isinstance(e, sp.Abs):
        return CONVEX if curvature(e.args[0], x) == AFFINE else None
    if isinstance(e, sp.exp):
        return CONVEX if curvature(e.args[0], x) in (AFFINE, CONVEX) else None
    if isinstance(e, sp.log):
        arg = e.args[0]
        if isinstance(arg, RowSum):  # log-sum-exp: log sum_k c_k exp(affine_k), c_k >= 0
            terms = sp.Add.make_args(arg.summand)
            if all(_lse_term(t, x) for t in terms):
                x.rules.add("log-sum-exp of affine terms")
                return CONVEX
        if isinstance(arg, sp.Mul):  # log of a product of positive factors: a sum of logs
            x.rules.add("log of a product is a sum of logs")
            return _add([curvature(sp.log(a), x) for a in arg.args])
        if isinstance(arg, sp.Pow) and arg.exp == -1:
            x.rules.add("log(1/u) = -log(u)")
            return _FLIP[curvature(sp.log(arg.base), x)]
        if curvature(arg, x) in (AFFINE, CONCAVE):
            x.rules.add("log of a concave term is concave")
            return CONCAVE
        return None
    if isinstance(e, sp.Pow):
        base, n = e.base, e.exp
        if x.has_pred(n):
            return None
        cb = curvature(base, x)
        if n.is_integer and n.is_even and n > 0 and cb == AFFINE:
            x.rules.add("even powers of affine terms")
            return CONVEX
        if n.is_number and n >= 1 and cb in (AFFINE, CONVEX) and _nonneg(base):
            x.rules.add("powers >= 1 of nonnegative convex terms")
            return CONVEX
        if n == sp.Rational(1, 2) and isinstance(base, RowSum):  # a Euclidean norm of affine terms
            s = base.summand
            if isinstance(s, sp.Pow) and s.exp == 2 and curvature(s.base, x) == AFFINE:
                x.rules.add("Euclidean norms of affine terms")
                return CONVEX
        return None
    return None


def _lse_term(t: sp.Basic, x: _Expr) -> bool:
    const = sp.Mul(*(a for a in sp.Mul.make_args(t) if not x.has_pred(a)))
    rest = [a for a in sp.Mul.make_args(t) if x.has_pred(a)]
    return (len(rest) == 1 and isinstance(rest[0], sp.exp) and curvature(rest[0].args[0], x) == AFFINE
            and _nonneg(const))


def kinks(x: _Expr) -> list[RowKink]:
    """Non-smooth nodes that depend on a prediction, with the order of smoothness there."""
    out: dict[str, RowKink] = {}

    def add(node, text, latex, where, order):
        out.setdefault(text, RowKink(text, latex, where, order))

    def visit(e, power=1):
        if not x.has_pred(e):
            return
        n = e.exp.xreplace(x.defaults) if isinstance(e, sp.Pow) else None
        if n is not None and n.is_integer and n > 1:  # an integer power at the defaults (focal's gamma = 2)
            x.at_defaults |= not e.exp.is_integer
            visit(e.base, power * int(n))
            return
        raised = power - 1  # max(u, 0)^n is C^(n-1) where u crosses 0
        if isinstance(e, (sp.Max, sp.Min)) and len(e.args) == 2:
            a, b = e.args
            order = raised if (a == 0 or b == 0) else 0
            rel = sp.Eq(b, 0) if a == 0 else sp.Eq(a, 0) if b == 0 else sp.Eq(a, b)
            add(e, f"where {plain(rel.lhs)} = {plain(rel.rhs)}", sp.latex(rel), rel, order)
        elif isinstance(e, (sp.Max, sp.Min)):
            add(e, f"where two of {plain(e)}'s arguments tie", sp.latex(e), None, 0)
        elif isinstance(e, RowMax):
            add(e, f"where the largest {plain(e.summand)} changes class (a tie)",
                r"\text{ties of } " + sp.latex(e), None, 0)
        elif isinstance(e, sp.Abs):
            rel = sp.Eq(e.args[0], 0)
            add(e, f"where {plain(e.args[0])} = 0", sp.latex(rel), rel, raised)
        elif isinstance(e, sp.sign):
            rel = sp.Eq(e.args[0], 0)
            add(e, f"where {plain(e.args[0])} = 0", sp.latex(rel), rel, -1)
        elif isinstance(e, sp.Piecewise):
            for _, cond in e.args:
                if cond is not sp.true and x.has_pred(cond):
                    add(e, f"where {plain(cond)} switches", sp.latex(cond), None, -1)
        elif isinstance(e, sp.Pow) and not n.is_integer and not _positive_base(e.base, x):
            rel = sp.Eq(e.base, 0)
            add(e, f"where {plain(e.base)} = 0", sp.latex(rel), rel, 0)
        for a in e.args:
            visit(a)

    visit(x.original)  # as the spec writes it: parameters by name
    return [out[k] for k in sorted(out)]


def _positive_base(base: sp.Basic, x: _Expr) -> bool:
    """Bounded away from 0: a positive constant plus nonnegative terms (e.g. |x|^2 + 1e-12), or products of such."""
    if isinstance(base, sp.Mul):
        return all(_positive_base(a, x) for a in base.args)
    if isinstance(base, sp.Add):
        consts = [a for a in base.args if not x.has_pred(a)]
        return any(c.is_positive for c in consts) and all(_nonneg(a) for a in base.args)
    return (base.is_positive is True) or (not x.has_pred(base) and bool(base.is_positive))


# ---------------------------------------------------------------------------
# numeric: the generated row kernels on sampled rows
# ---------------------------------------------------------------------------
class _Rows:
    def __init__(self, spec: LossSpec, loss):
        self.spec, self.loss = spec, loss
        self.vector = {i.name for i in spec.inputs if i.shape == "vector"}
        self.order = [i for i in spec.inputs if i.shape in ("vector", "scalar")]
        self.preds = [i for i in spec.predictions]

    def _draw(self, inp, n, rng):
        shape = (n, K) if inp.name in self.vector else (n,)
        d = inp.domain
        if d == "simplex":
            return rng.dirichlet(np.ones(K), n) if inp.name in self.vector else rng.uniform(0, 1, n)
        if d == "binary":
            return rng.integers(0, 2, shape).astype(np.float64)
        if d == "sign":
            return rng.choice([-1.0, 1.0], shape)
        if d in ("unit", "unit_closed"):
            return rng.uniform(0.02, 0.98, shape)
        if d == "positive":
            return np.exp(rng.normal(0.0, 1.0, shape))
        return rng.normal(0.0, 2.0, shape)

    def sample(self, n, seed):
        rng = np.random.default_rng(seed)
        return {i.name: self._draw(i, n, rng) for i in self.order}

    def _args(self, values):
        return [values[i.name] for i in self.order]

    def value(self, values):
        with np.errstate(all="ignore"):
            return self.loss.value(*self._args(values), reduction="none")

    def grad_norm(self, values):
        with np.errstate(all="ignore"):
            g = self.loss.grad(*self._args(values), reduction="none")
        gs = (g,) if len(self.preds) == 1 else g
        return np.sqrt(sum(np.sum(np.asarray(x) ** 2, axis=-1) for x in gs))

    def hessian(self, values) -> np.ndarray:
        """(n, P*K, P*K): each row's full Hessian in all predictions."""
        with np.errstate(all="ignore"):
            H = self.loss.hessian(*self._args(values), reduction="none")
        P = len(self.preds)
        if P == 1:
            return H
        n = H.shape[2]
        return H.transpose(2, 0, 3, 1, 4).reshape(n, P * K, P * K)


def _fmt_row(values: dict, j: int) -> str:
    parts = []
    for name, v in values.items():
        a = np.asarray(v[j])
        parts.append(f"{name} = " + (np.array2string(a, precision=2, separator=", ") if a.ndim else f"{float(a):.3g}"))
    return ", ".join(parts)


def _convex_numeric(R: _Rows) -> tuple[bool, str]:
    pts = R.sample(N_ROWS, seed=0)
    H = R.hessian(pts)
    H = 0.5 * (H + np.swapaxes(H, 1, 2))
    ok = np.all(np.isfinite(H), axis=(1, 2))
    lam = np.full((H.shape[0], H.shape[1]), np.nan)
    lam[ok] = np.linalg.eigvalsh(H[ok])
    lo = lam[:, 0]
    scale = 1.0 + np.nanmax(np.abs(lam), axis=1)
    bad = np.nonzero(ok & (lo < -1e-8 * scale))[0]
    if bad.size:
        j = int(bad[0])
        return False, f"the Hessian has eigenvalue {lo[j]:.3g} < 0 at {_fmt_row(pts, j)}"
    # midpoint inequality across pairs: near pairs and far ones (a kink can be concave with PSD sides)
    other = R.sample(N_ROWS, seed=1)
    rng = np.random.default_rng(2)
    b = dict(pts)
    for i in R.preds:
        near = pts[i.name] + rng.normal(0.0, 0.05, pts[i.name].shape) * np.abs(pts[i.name]).mean()
        if i.domain not in ("real",):
            near = pts[i.name]  # keep in the domain: the far partner below is a convex combination
        half = np.arange(N_ROWS) % 2 == 0
        mask = half.reshape(-1, *([1] * (pts[i.name].ndim - 1)))
        b[i.name] = np.where(mask, near, other[i.name])
        if i.domain == "real":  # pass through 0 too: -a is the far partner, the midpoint is 0
            b[i.name] = np.where((np.arange(N_ROWS) % 4 == 1).reshape(mask.shape), -pts[i.name], b[i.name])
    mid = dict(pts)
    for i in R.preds:
        mid[i.name] = 0.5 * (pts[i.name] + b[i.name])
    fa, fb, fm = R.value(pts), R.value(b), R.value(mid)
    slack = 1e-9 * (1 + np.abs(fa) + np.abs(fb))
    bad = np.nonzero(np.isfinite(fa + fb + fm) & (fm > 0.5 * (fa + fb) + slack))[0]
    if bad.size:
        j = int(bad[0])
        return False, f"midpoint inequality fails between rows at {_fmt_row(pts, j)} and {_fmt_row(b, j)}"
    return True, f"Hessian PSD on {N_ROWS} sampled rows (K = {K}) and the midpoint inequality holds on {N_ROWS} pairs"


def _rays(R: _Rows) -> list[tuple[str, dict]]:
    """Points along rays, 6 per ray (s = 10^2 .. 10^7), rays stacked: (label, values)."""
    s = 10.0 ** np.arange(2, 8)
    base = R.sample(N_RAYS, seed=3)
    rng = np.random.default_rng(4)
    out = []
    real = all(i.domain == "real" for i in R.preds)
    rep = {k: np.repeat(v, s.size, axis=0) for k, v in base.items()}
    ss = np.tile(s, N_RAYS)
    col = lambda a: ss.reshape(-1, *([1] * (a.ndim - 1)))  # noqa: E731
    if real:
        far, near = dict(rep), dict(rep)
        for i in R.preds:
            d = rng.normal(0.0, 1.0, base[i.name].shape)
            d = np.repeat(d, s.size, axis=0)
            far[i.name] = rep[i.name] + col(d) * d
            near[i.name] = rep[i.name] / col(rep[i.name])
        out.append(("along rays x0 + s d, s → ∞", far))
        out.append(("towards the origin, x0 / s", near))
    else:  # bounded domains: towards a vertex (simplex) or a corner (unit box)
        edge = dict(rep)
        for i in R.preds:
            x0 = rep[i.name]
            if i.domain == "simplex":
                target = np.eye(K)[rng.integers(0, K, N_RAYS)]
            elif i.domain in ("unit", "unit_closed"):
                target = rng.integers(0, 2, base[i.name].shape).astype(np.float64)
            elif i.domain == "positive":
                target = np.zeros_like(base[i.name])
            else:
                target = base[i.name]
            target = np.repeat(target, s.size, axis=0)
            edge[i.name] = target + (x0 - target) / col(x0)
        out.append(("towards the boundary of the domain (distance 1/s)", edge))
    return out


def _growth_and_gradient(R: _Rows) -> tuple[str, str, bool, str]:
    """Growth class along each ray (the fastest is the loss's), and whether |grad| stays bounded on every probe."""
    rates, growth_label, bounded, gdetail = [], "", True, ""
    for label, pts in _rays(R):
        g = R.grad_norm(pts).reshape(N_RAYS, -1)
        if not label.startswith("towards the origin"):  # shrinking probes test the gradient only
            growth_label = label
            rates += [_rate(row) for row in R.value(pts).reshape(N_RAYS, -1)]
        blown = [not np.all(np.isfinite(row)) or row[-1] > 1.5 * row[-3] + 1e-9 for row in g]
        if bounded and any(blown):
            bounded, gdetail = False, f"|∇L| grows without bound {label}"

    def rank(r: str) -> int:
        return GROWTH_RANK[r.split()[0]]

    counts: dict[str, int] = {}
    for r in rates:
        counts[r] = counts.get(r, 0) + 1
    order = sorted(counts, key=lambda r: (-rank(r), r))
    detail = f"{growth_label}: " + ", ".join(f"{r} on {counts[r]} of {len(rates)}" for r in order)
    return max(rates, key=rank), detail, bounded, gdetail


def _hessian_zero(R: _Rows) -> tuple[bool, str]:
    H = R.hessian(R.sample(N_ROWS, seed=5))
    zero = np.all(H == 0.0, axis=(1, 2))
    frac = float(np.mean(zero))
    if frac < 0.005:
        return False, f"nonzero on every one of {N_ROWS} sampled rows"
    return True, f"the whole Hessian is 0 on {100 * frac:.0f}% of {N_ROWS} sampled rows"


_CACHE: dict = {}


def row_properties(spec: LossSpec, loss=None) -> RowProperties:
    """Every derived property of a row loss (cached per spec)."""
    key = (spec.name, spec.source, spec.loss_text, spec.params, spec.inputs)
    if key in _CACHE:
        return _CACHE[key]
    if loss is None:
        from .properties import _loss_object

        loss = _loss_object(spec)
    x = _Expr(spec)
    R = _Rows(spec, loss)
    scope = DEFAULT_PARAMS if (spec.params or any(i.shape == "class" for i in spec.inputs)) else ALL_PARAMS
    c = curvature(x.expr, x)
    if c in (CONST, AFFINE, CONVEX):
        convex, cmethod = True, SYMBOLIC
        cdetail = ("affine in the predictions" if c == AFFINE else
                   "by composition rules: nonnegative sums of convex and affine terms; "
                   + ", ".join(sorted(x.rules)))
    else:
        convex, cdetail = _convex_numeric(R)
        cmethod = NUMERIC
    ks = kinks(x)
    orders = [k.order for k in ks]
    if not ks:
        smooth = "C∞"
    else:
        low = min(orders)
        smooth = "discontinuous" if low < 0 else f"C{low}"
    growth, gdetail_rate, bounded, gdetail = _growth_and_gradient(R)
    vanishes, hdetail = _hessian_zero(R)
    result = RowProperties(
        name=spec.name, family=family(spec),
        convex=convex, convex_method=cmethod, convex_scope=scope, convex_detail=cdetail,
        smoothness=smooth, kinks=tuple(ks),
        smoothness_method=f"{SYMBOLIC}, for {DEFAULT_PARAMS if x.at_defaults else ALL_PARAMS}",
        growth=growth, growth_detail=gdetail_rate, bounded_gradient=bounded, gradient_detail=gdetail,
        hessian_vanishes=vanishes, hessian_detail=hdetail, hessian_method=NUMERIC,
    )
    _CACHE[key] = result
    return result
