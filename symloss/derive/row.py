"""Row losses: derivatives of L = G(R_1, ..., R_m), R_i a reduction over classes.

A row spec's loss is a function G of per-row quantities (scalar inputs,
parameters, the class count) and of *reductions* over the class index:
``R = sum_k h(x_k, ...)`` or ``R = max_k h(x_k, ...)``, where ``x_k`` are the
class-k entries of the vector inputs and ``h`` may itself use earlier
reductions (a softmax inside a sum, as in the focal loss).

Everything here is expressed with two kinds of SymPy symbols:

* *class symbols*: one per vector (or class) input, standing for that input's
  entry at "the current class" j (the spec's own input symbols);
* *row symbols*: per-row values, which include every reduction (``_r0``...).

The total derivative of a reduction with respect to class j of a prediction x
is a per-class expression (:meth:`RowCalculus.u`)::

    sum:  dR/dx_j = dh/dx (j) + sum_r' C_r' * dR'/dx_j,  C_r' = sum_k dh/dR' (k)
    max:  dR/dx_j = [j = argmax] dh/dx (j) + sum_r' h_r'(argmax) * dR'/dx_j

(the C's are new reductions), so the gradient of L at class j is
``g_x(j) = sum_r dG/dR_r * dR_r/dx_j``.  Differentiating once more gives the
per-row Hessian as a diagonal plus a rank-m term::

    H_xx'(j, k) = delta_jk E_xx'(j) + sum_r A_x,r(j) B_x',r(k)
    E = dg_x/dx'  (explicit), A_x,r = dg_x/dR_r,  B_x',r = dR_r/dx'_k

whence ``hessian_diag`` (E + sum_r A B at j = k) and the Hessian-vector
product ``Hv_x(j) = sum_x' E_xx'(j) v_x'(j) + sum_r A_x,r(j) Rdot_r`` with
tangent reductions ``Rdot_r = sum_x' sum_k B_x',r(k) v_x'(k)``: all O(K) per row.

Stability.  A sum whose terms all carry the same ``exp(a(x_k))`` factor is
rewritten ``exp(M) * sum_k exp(a_k - M) ...`` with a per-row shift
``M = max_k a_k`` (a "shift" reduction); ``log(exp(M) S) = M + log S`` and
``exp(M)`` cancels in ratios, so log-sum-exp and softmax never overflow.  For
the derivatives M is a constant: the rewritten expression equals the original
for *every* M, so its derivatives with M held fixed are exact.  The usual
elementwise stability rules (xlogy, softplus, ...) then apply to every part.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property

import mpmath
import sympy as sp

from .. import limits
from ..errors import DerivationError
from ..spec.header import full_spec
from ..spec.model import LossSpec
from ..spec.rowexpr import RowMax, RowReduction, RowSum
from . import nonsmooth
from . import primitives as P
from .derivation import spec_error
from .rewrites import POST_RULES, RULES, stabilize

# grad_hessian_diag: the gradient and the Hessian diagonal in one pass over each row (one softmax),
# what a boosting objective asks for every round
KERNELS = ("value", "grad", "value_and_grad", "hessian_diag", "grad_hessian_diag", "hvp", "hessian")


@dataclass(frozen=True)
class Reduction:
    """One per-row quantity computed by a loop over classes (or one lookup)."""

    symbol: sp.Symbol
    kind: str  # "sum" | "max" (tracks its argmax) | "shift" (a max, no argmax) | "pick" (expr at of's argmax)
    #            | "sqrt" (sqrt of the reduction ``expr``: a norm, computed per row)
    expr: sp.Basic  # per-class expression: summand, maximand or the picked value
    of: sp.Symbol | None = None  # pick: the max reduction whose argmax it reads


def _rebuild(node: sp.Basic, fn) -> sp.Basic:
    """Rebuild ``node`` bottom-up, applying ``fn`` to every node after its arguments."""
    if not node.args or isinstance(node, sp.Symbol):
        out = node
    else:
        args = tuple(_rebuild(a, fn) for a in node.args)
        out = node.func(*args) if args != node.args else node
    return fn(out)


def merge_exps(expr: sp.Basic) -> sp.Basic:
    """exp(a) * exp(b) -> exp(a + b) inside every product (SymPy keeps them apart)."""

    def fn(node):
        if isinstance(node, sp.Mul):
            exps = [f for f in node.args if isinstance(f, sp.exp)]
            if len(exps) > 1:
                rest = [f for f in node.args if not isinstance(f, sp.exp)]
                return sp.Mul(*rest) * sp.exp(sp.Add(*(e.args[0] for e in exps)))
        return node

    return _rebuild(expr, fn)


def split_exp_logs(expr: sp.Basic) -> sp.Basic:
    """log(exp(a) * u) -> a + log(u): the shift leaves the logarithm."""

    def fn(node):
        if isinstance(node, sp.log) and isinstance(node.args[0], sp.Mul):
            factors = sp.Mul.make_args(node.args[0])
            exps = [f for f in factors if isinstance(f, sp.exp)]
            if exps:
                rest = sp.Mul(*(f for f in factors if not isinstance(f, sp.exp)))
                return sp.Add(*(e.args[0] for e in exps)) + sp.log(rest)
        return node

    return _rebuild(expr, fn)


def _common_exponent(summand: sp.Basic, class_syms: set[sp.Symbol]) -> sp.Basic | None:
    """``a`` if every term of ``summand`` is exp(a(x_k)) times something, else None."""
    exponent = None
    for term in sp.Add.make_args(summand):
        exps = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp) and f.free_symbols & class_syms]
        if len(exps) != 1:
            return None
        a = exps[0].args[0]
        if exponent is None:
            exponent = a
        elif a != exponent:
            return None
    return exponent


def shift_exp_sums(expr: sp.Basic, class_syms: set[sp.Symbol]) -> tuple[sp.Basic, dict[sp.Basic, sp.Symbol]]:
    """Rewrite sum_k exp(a_k) b_k as exp(M) sum_k exp(a_k - M) b_k; returns (expr, {a: M})."""
    shifts: dict[sp.Basic, sp.Symbol] = {}

    def fn(node):
        if isinstance(node, RowSum):
            summand = merge_exps(node.summand)
            a = _common_exponent(summand, class_syms)
            if a is not None:
                m = shifts.setdefault(a, sp.Symbol(f"_m{len(shifts)}", real=True))
                shifted = sp.Add(*(merge_exps(t * sp.exp(-m)) for t in sp.Add.make_args(summand)))
                return sp.exp(m) * RowSum(shifted, node.index)
        return node

    out = _rebuild(expr, fn)
    return merge_exps(split_exp_logs(out)), shifts


# After differentiation: the stability rules again (derivatives reintroduce
# their patterns) and the a.e. conventions; not expm1_shift, whose branch per
# class would keep the class loops from vectorising and buys nothing for
# softmax-type gradients (p - y cancels in 1/S - 1 either way).
_POST = RULES + tuple(r for r in POST_RULES if r.name in ("sign_squared", "pow_quotient"))


class quotient0(P.Primitive):
    """a / b with 0 where a = 0 (and b is not NaN), differentiated as a quotient of that kind.

    Norms: d sqrt(R) / dx = (dR/dx) / (2 sqrt(R)) is 0/0 where the vector
    whose norm R is vanishes (x1 = x2 in the contrastive loss); the minimum-norm
    subgradient there is 0.  The derivative keeps the convention:
    d(a/b) = da/b - a db/b^2, each a quotient0 again, so a coefficient that is
    exactly 0 (a similar pair) gives 0, never 0 * inf.
    """

    nargs = 2
    latex_template = r"\frac{{{0}}}{{{1}}}"

    @classmethod
    def naive(cls, x, y):
        return x / y

    @staticmethod
    def mp(x, y):
        return mpmath.mpf(0) if x == 0 and not mpmath.isnan(y) else x / y

    def _eval_derivative(self, s):
        a, b = self.args
        da, db = sp.diff(a, s), sp.diff(b, s)
        out = quotient0(da, b) if da != 0 else sp.S.Zero
        if db != 0:
            out -= quotient0(a * db, b**2)
        return out


def _restabilize(expr: sp.Basic) -> sp.Basic:
    limits.check_time()
    out = stabilize(expr, _POST)[0]
    limits.check_expr(out, limits.stage_error, "a rewritten derivative")
    return out


def derivative(expr: sp.Basic, s: sp.Symbol) -> sp.Basic:
    """d expr / d s, bounded like the elementwise derivatives (symloss.limits):
    refused when its estimated or actual size is over the limits, or the
    guarded stage is out of time."""
    limits.check_time()
    limits.check_derivative(expr, s, limits.stage_error, f"a derivative in {s}")
    out = nonsmooth.derivative(expr, s)
    limits.check_expr(out, limits.stage_error, f"a derivative in {s}")
    return out


def _guarded(stage: str):
    """Run a RowDerivation method under the wall-clock guard, errors naming the spec."""
    def wrap(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            with limits.time_limit(stage, spec_error(self.spec)):
                return method(self, *args, **kwargs)
        return run
    return wrap


class RowCalculus:
    """Reductions plus the chain rule through them (see the module docstring)."""

    def __init__(self, reductions: list[Reduction], preds: tuple[sp.Symbol, ...], post=lambda e: e):
        self.reductions: dict[sp.Symbol, Reduction] = {r.symbol: r for r in reductions}
        self._keys = {(r.kind, r.expr, r.of): r.symbol for r in reductions}
        self.preds = preds
        self.post = post  # applied to every derived expression (stability rewrites)
        self._u: dict[tuple[sp.Symbol, sp.Symbol], sp.Basic] = {}
        self.sel: dict[sp.Symbol, sp.Symbol] = {}  # max reduction -> its "class j is the argmax" symbol
        for r in reductions:
            if r.kind == "max":
                self._sel(r.symbol)

    def _sel(self, m: sp.Symbol) -> sp.Symbol:
        if m not in self.sel:
            self.sel[m] = sp.Symbol(f"_sel{m.name[2:]}", nonnegative=True)
        return self.sel[m]

    def new(self, kind: str, expr: sp.Basic, of: sp.Symbol | None = None) -> sp.Basic:
        """A reduction of ``expr`` (deduplicated); zero for a zero summand."""
        expr = self.post(expr)
        if expr == 0:
            return sp.S.Zero
        key = (kind, expr, of)
        if key not in self._keys:
            sym = sp.Symbol(f"_r{len(self.reductions)}", real=True)
            self._keys[key] = sym
            self.reductions[sym] = Reduction(sym, kind, expr, of)
        return self._keys[key]

    def live(self, r: sp.Symbol) -> bool:
        """Does reduction ``r`` depend on a prediction (directly or through other reductions)?"""
        red = self.reductions[r]
        if red.kind == "shift":
            return False  # a constant for differentiation (see the module docstring)
        syms = red.expr.free_symbols
        return bool(syms & set(self.preds)) or any(self.live(q) for q in syms if q in self.reductions)

    def differentiable(self, expr: sp.Basic) -> list[sp.Symbol]:
        """Reductions in ``expr`` that depend on the predictions, in order."""
        syms = expr.free_symbols
        return [s for s in self.reductions if s in syms and self.live(s)]

    def u(self, r: sp.Symbol, x: sp.Symbol) -> sp.Basic:
        """dR/dx_j: the total derivative of reduction ``r`` w.r.t. class j of ``x`` (per-class)."""
        key = (r, x)
        if key not in self._u:
            red = self.reductions[r]
            h = red.expr
            if red.kind == "sum":
                out = derivative(h, x)
                for q in self.differentiable(h):
                    out += self.new("sum", derivative(h, q)) * self.u(q, x)
            elif red.kind in ("max", "pick"):
                at = r if red.kind == "max" else red.of
                out = self._sel(at) * derivative(h, x)
                for q in self.differentiable(h):
                    out += self.new("pick", derivative(h, q), of=at) * self.u(q, x)
            elif red.kind == "sqrt":  # D = sqrt(R): dD = dR / (2 D), 0 where the vector vanishes
                out = quotient0(self.u(red.expr, x), 2 * r)
            else:
                raise DerivationError(f"cannot differentiate a {red.kind} reduction")
            self._u[key] = self.post(out)
        return self._u[key]

    def total(self, expr: sp.Basic, x: sp.Symbol, explicit: bool) -> sp.Basic:
        """d expr / d x_j for the same class j: the explicit part (if asked) plus the chain through reductions."""
        out = derivative(expr, x) if explicit else sp.S.Zero
        for r in self.differentiable(expr):
            red = self.reductions[r]
            if red.kind == "sqrt":  # the coefficient goes inside the quotient: 0 stays 0
                out += quotient0(derivative(expr, r) * self.u(red.expr, x), 2 * r)
            else:
                out += derivative(expr, r) * self.u(r, x)
        return self.post(out)

    def tangent(self, r: sp.Symbol, v: dict[sp.Symbol, sp.Symbol]) -> sp.Basic:
        """Rdot = sum_x sum_k dR/dx_k v_x(k): a sum, plus one pick per argmax the derivative reads."""
        red = self.reductions[r]
        if red.kind == "sqrt":
            return quotient0(self.tangent(red.expr, v), 2 * r)
        summand = sp.Add(*(self.u(r, x) * vx for x, vx in v.items()))
        sels = [s for s in self.sel.values() if summand.has(s)]
        out = self.new("sum", summand.subs({s: 0 for s in sels}))
        for m, s in self.sel.items():
            if s in sels:
                out += self.new("pick", derivative(summand, s), of=m)
        return out


@dataclass(frozen=True)
class RowKernelExprs:
    """What one kernel computes: per-row outputs and per-class outputs (by name)."""

    row: tuple[tuple[str, sp.Basic], ...]
    cls: tuple[tuple[str, sp.Basic], ...]


class RowDerivation:
    """Everything the row backend, the runtime and the checker need about one row loss."""

    def __init__(self, spec: LossSpec):
        if spec.kind != "row" or spec.row is None:
            raise DerivationError(f"{spec.name}: not a row loss")
        self.spec = full_spec(spec)  # a catalog header parses here, on first derivation
        self._prepare()

    @_guarded("preparing the loss")
    def _prepare(self) -> None:
        spec = self.spec
        info = spec.row.symbols
        self.index: sp.Symbol = info["index"]
        self.size: sp.Symbol = info["size"]
        self.class_inputs = tuple(i for i in spec.inputs if i.shape in ("vector", "class"))
        self.class_syms = {spec.symbols[i.name] for i in self.class_inputs}
        self.preds = tuple(spec.symbols[i.name] for i in spec.predictions)
        self.tangents = {x: sp.Symbol(f"_v_{x.name}", real=True) for x in self.preds}
        loss = self._to_class_symbols(spec.loss)
        self._prepared = nonsmooth.prepare(loss)
        shifted, self.shifts = shift_exp_sums(self._prepared, self.class_syms)
        self.stable_loss, self.rewrites = stabilize(shifted)
        limits.check_expr(self.stable_loss, limits.stage_error, "the rewritten loss")
        if self.shifts:
            self.rewrites = ["logsumexp_shift", *self.rewrites]
        self.G, reductions = self._extract(self.stable_loss, self.shifts)
        self.calculus = RowCalculus(reductions, self.preds, _restabilize)

    # parsing the loss into G and reductions -------------------------------------
    def _to_class_symbols(self, expr: sp.Basic) -> sp.Basic:
        return expr.replace(lambda e: isinstance(e, sp.Indexed), lambda e: self.spec.symbols[e.base.label.name])

    @staticmethod
    def _extract(expr: sp.Basic, shifts: dict, norms: bool = True) -> tuple[sp.Basic, list[Reduction]]:
        """G and the reductions; with ``norms``, sqrt of a sum becomes its own per-row value."""
        reductions = [Reduction(m, "shift", a) for a, m in shifts.items()]
        keys: dict[tuple[str, sp.Basic], sp.Symbol] = {}

        def fn(node):
            if isinstance(node, RowReduction):
                kind = "sum" if isinstance(node, RowSum) else "max"
                key = (kind, node.summand)
                if key not in keys:
                    keys[key] = sp.Symbol(f"_r{len(keys)}", real=True)
                    reductions.append(Reduction(keys[key], kind, node.summand))
                return keys[key]
            return node

        G = _rebuild(expr, fn)
        if not norms:
            return G, reductions
        sums = {r.symbol for r in reductions if r.kind == "sum"}
        norms: dict[sp.Symbol, sp.Symbol] = {}

        def norm(node):
            if isinstance(node, sp.Pow) and node.base in sums and node.exp.is_Rational and not node.exp.is_Integer:
                if node.base not in norms:
                    norms[node.base] = sp.Symbol(f"_d{len(norms)}", nonnegative=True)
                    reductions.append(Reduction(norms[node.base], "sqrt", node.base))
                return norms[node.base] ** (2 * node.exp)
            return node

        G = _rebuild(G, norm)
        for i, r in enumerate(reductions):
            if r.kind in ("sum", "max"):
                reductions[i] = Reduction(r.symbol, r.kind, _rebuild(r.expr, norm), r.of)
        return G, reductions

    # the kernels ------------------------------------------------------------------
    @cached_property
    @_guarded('deriving the gradient')
    def grads(self) -> tuple[sp.Basic, ...]:
        return tuple(self.calculus.total(self.G, x, explicit=False) for x in self.preds)

    @cached_property
    @_guarded('deriving the Hessian')
    def _second(self):
        """E[(p, q)], A[(p, r)], B[(q, r)] of the Hessian's diagonal-plus-low-rank form."""
        c = self.calculus
        E, A, B, ranks = {}, {}, {}, {}
        for p, (x, g) in enumerate(zip(self.preds, self.grads)):
            for q, xq in enumerate(self.preds):
                E[(p, q)] = _restabilize(derivative(g, xq))
            rs = c.differentiable(g)
            ranks[p] = rs
            for r in rs:
                A[(p, r)] = _restabilize(derivative(g, r))
        rank = sorted({r for rs in ranks.values() for r in rs}, key=list(c.reductions).index)
        for q, xq in enumerate(self.preds):
            for r in rank:
                B[(q, r)] = c.u(r, xq)
        return E, A, B, rank

    @cached_property
    @_guarded('deriving the Hessian diagonal')
    def hessian_diags(self) -> tuple[sp.Basic, ...]:
        E, A, B, rank = self._second
        out = []
        for p in range(len(self.preds)):
            h = E[(p, p)] + sp.Add(*(A[(p, r)] * B[(p, r)] for r in rank if (p, r) in A))
            out.append(_restabilize(h))
        return tuple(out)

    @cached_property
    @_guarded('deriving the Hessian-vector product')
    def hvps(self) -> tuple[sp.Basic, ...]:
        E, A, B, rank = self._second
        c = self.calculus
        dots = {r: c.tangent(r, self.tangents) for r in rank}
        out = []
        for p in range(len(self.preds)):
            h = sp.Add(*(E[(p, q)] * self.tangents[xq] for q, xq in enumerate(self.preds)))
            h += sp.Add(*(A[(p, r)] * dots[r] for r in rank if (p, r) in A))
            out.append(_restabilize(h))
        return tuple(out)

    def kernel(self, name: str) -> RowKernelExprs:
        names = [x.name for x in self.preds]
        loss = (("loss", self.G),)
        grads = tuple((f"d_{n}", g) for n, g in zip(names, self.grads))
        if name == "value":
            return RowKernelExprs(loss, ())
        if name == "grad":
            return RowKernelExprs((), grads)
        if name == "value_and_grad":
            return RowKernelExprs(loss, grads)
        diags = tuple((f"h_{n}", h) for n, h in zip(names, self.hessian_diags)) if name.endswith("hessian_diag") else ()
        if name == "hessian_diag":
            return RowKernelExprs((), diags)
        if name == "grad_hessian_diag":
            return RowKernelExprs((), grads + diags)
        if name == "hvp":
            return RowKernelExprs((), tuple((f"hv_{n}", h) for n, h in zip(names, self.hvps)))
        if name == "hessian":
            E, A, B, rank = self._second
            P = len(names)
            cls = [(f"e_{names[p]}_{names[q]}", E[(p, q)]) for p in range(P) for q in range(P)]
            cls += [(f"a_{names[p]}_{j}", A.get((p, r), sp.S.Zero)) for p in range(P) for j, r in enumerate(rank)]
            cls += [(f"b_{names[q]}_{j}", B[(q, r)]) for q in range(P) for j, r in enumerate(rank)]
            return RowKernelExprs((), tuple(cls))
        raise DerivationError(f"unknown row kernel {name!r}")

    @cached_property
    def rank(self) -> int:
        """Number of low-rank terms in the per-row Hessian (diagonal + rank)."""
        return len(self._second[3])

    # presentation -------------------------------------------------------------------
    @cached_property
    @_guarded('preparing the reference form')
    def naive_calculus(self) -> tuple[sp.Basic, RowCalculus]:
        """The unrewritten loss (no shift, no stability rules) as G and reductions."""
        G, reductions = self._extract(self._prepared, {}, norms=False)
        return G, RowCalculus(reductions, self.preds)

    def _latex_of(self, expr: sp.Basic, calc: RowCalculus) -> str:
        j = sp.Symbol("j", integer=True)
        bases = self.spec.row.symbols["bases"]
        k = self.index
        to_k = {self.spec.symbols[n]: b[k] for n, b in bases.items()}
        to_j = {self.spec.symbols[n]: b[j] for n, b in bases.items()}
        back = {}
        for s in calc.reductions:  # later reductions may use earlier ones
            red = calc.reductions[s]
            body = red.expr.xreplace(back).xreplace(to_k)
            back[s] = RowSum(body, k) if red.kind == "sum" else RowMax(body, k)
        for m, sel in calc.sel.items():
            back[sel] = sp.Symbol(r"[j = \arg\max]")
        return sp.latex(expr.xreplace(to_j).xreplace(back))

    @cached_property
    @_guarded('printing LaTeX')
    def latex(self) -> dict[str, str]:
        G, calc = self.naive_calculus
        out = {"loss": sp.latex(self.spec.loss)}
        for x in self.preds:
            out[f"grad_{x.name}"] = self._latex_of(calc.total(G, x, explicit=False), calc)
        return out

    @cached_property
    def latex_labels(self) -> dict[str, str]:
        out = {"loss": "L"}
        for x in self.preds:
            out[f"grad_{x.name}"] = rf"\frac{{\partial L}}{{\partial {{{sp.latex(x)}}}_{{j}}}}"
        return out


def describe(spec: LossSpec) -> list[str]:
    """What ``symloss show`` prints for a row loss."""
    from .rewrites import RULES as _R, POST_RULES as _P

    d = RowDerivation(spec)
    notes = {r.name: r.description for r in _R + _P}
    notes["logsumexp_shift"] = "sum_k e^(a_k) b_k -> e^m sum_k e^(a_k - m) b_k with m = max_k a_k: no overflow"
    out = [f"{spec.name}: {spec.title} [row]"]
    if spec.description:
        out.append(f"  {spec.description}")
    out.append("inputs:         " + ", ".join(
        f"{i.name} ({i.role}, {i.shape}, {i.domain}{', or class indices' if i.indices else ''}"
        f"{f', default {i.default:g}' if i.default is not None else ''})" for i in spec.inputs))
    if spec.params:
        out.append("params:         " + ", ".join(f"{p.name} = {p.default:g}" for p in spec.params))
    out.append(f"loss:           {sp.sstr(spec.loss)}")
    out.append("per row:        L = " + sp.sstr(d.G))
    for r in d.calculus.reductions.values():
        what = {"sum": "sum_k", "max": "max_k", "shift": "max_k (shift)", "sqrt": "sqrt of", "pick": "at argmax"}
        out.append(f"  {r.symbol} = {what.get(r.kind, r.kind)} {sp.sstr(r.expr)}")
    for x, g in zip(d.preds, d.grads):
        out.append(f"d/d{x.name}_j:".ljust(16) + sp.sstr(g))
    out.append(f"hessian:        diagonal + rank {d.rank} per row (hessian_diag and hvp in O(K))")
    out.append("rewrites:       " + ("; ".join(f"{r} ({notes.get(r, r)})" for r in d.rewrites) or "none"))
    out.append("latex:")
    for key, tex in d.latex.items():
        out.append(f"  {d.latex_labels[key]} = {tex}")
    return out
