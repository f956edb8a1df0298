"""From a LossSpec to loss, gradient and Hessian expressions, stable and naive.

Every stage runs under :func:`symloss.limits.time_limit`, and every
derivative is bounded by :mod:`symloss.limits` twice: its size is estimated
before SymPy takes it (a Hessian can be a hundred times its loss), and the
result's size and depth are checked before the rewrites walk it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from .. import limits
from ..errors import DerivationError
from ..spec.header import full_spec
from ..spec.model import LossSpec
from . import nonsmooth
from .rewrites import POLICY_RULES, finalize, finish, stabilize


def policy(expr: sp.Basic) -> sp.Basic:
    """The a.e. conventions both derivations share (not stability rewrites)."""
    return stabilize(expr, POLICY_RULES)[0]


@dataclass(frozen=True)
class Derivatives:
    loss: sp.Basic
    grads: tuple[sp.Basic, ...]  # one per prediction input, declared order
    hessian: dict[tuple[int, int], sp.Basic]  # (i, j) with i <= j over predictions
    params: tuple[sp.Basic, ...] = ()  # d loss / d param, one per differentiable parameter


def spec_error(spec: LossSpec, field: str = "loss"):
    """Errors past parsing name the spec's file and field, as a SpecError does."""
    return lambda problem: DerivationError(f"{spec.source}: field '{field}': {problem}")


def bounded_derivative(expr: sp.Basic, x: sp.Symbol, fail, what: str, post=lambda e: e) -> sp.Basic:
    """``post(d expr / d x)``, refused when too large (estimated before, measured after) or too slow."""
    limits.check_time()
    limits.check_derivative(expr, x, fail, what)
    out = nonsmooth.derivative(expr, x)
    limits.check_expr(out, fail, what)
    limits.check_time()
    out = post(out)
    limits.check_expr(out, fail, what)
    return out


def _derive(loss: sp.Basic, wrt: tuple[sp.Symbol, ...], post=lambda e: e, fail=None) -> Derivatives:
    fail = fail or (lambda problem: DerivationError(problem))
    grads = tuple(bounded_derivative(loss, x, fail, f"the derivative in {x}", post) for x in wrt)
    hessian = {
        (i, j): bounded_derivative(grads[i], wrt[j], fail, f"the Hessian entry in {wrt[i]}, {wrt[j]}", post)
        for i in range(len(wrt))
        for j in range(i, len(wrt))
    }
    return Derivatives(loss, grads, hessian)


def without_branches_on(expr: sp.Basic, p: sp.Symbol) -> sp.Basic:
    """``expr`` without its ``Piecewise`` branches for exact values of ``p``
    (``alpha == 2``): such a branch is a limit of the others in ``p``, and its
    own derivative in ``p`` (often 0) is not the derivative of the loss."""

    def keep(e):
        pieces = [(v, c) for v, c in e.args if not (isinstance(c, sp.Eq) and c.has(p))]
        return sp.Piecewise(*pieces) if len(pieces) != len(e.args) else e

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), keep)


class Derivation:
    """Everything the backends and the checker need about one loss."""

    def __init__(self, spec: LossSpec):
        spec = self.spec = full_spec(spec)  # a catalog header parses here, on first derivation
        self.wrt = tuple(spec.symbols[i.name] for i in spec.predictions)
        self.param_wrt = tuple(spec.symbols[p.name] for p in spec.differentiable_params)
        self._fail = spec_error(spec)
        with self._guard("preparing the loss"):
            prepared = nonsmooth.prepare(spec.loss)
            self._prepared = prepared
            self.stable_loss, self._fired = stabilize(prepared)
            limits.check_expr(self.stable_loss, self._fail, "the rewritten loss")

    def _guard(self, stage: str):
        return limits.time_limit(stage, self._fail)

    @cached_property
    def stable(self) -> Derivatives:
        """What the kernels compute: rewritten for stability, then differentiated."""
        with self._guard("deriving the gradient and Hessian"):
            return self._stable()

    def _stable(self) -> Derivatives:
        fired = []
        data = frozenset(self.spec.symbols[i.name] for i in self.spec.inputs)

        def post(expr):
            expr, names = finish(expr, data, frozenset(self.wrt))
            fired.extend(n for n in names if n not in fired)
            return expr

        def last(expr):
            expr, names = finalize(expr)
            fired.extend(n for n in names if n not in fired)
            return expr

        d = _derive(self.stable_loss, self.wrt, post, self._fail)
        d = Derivatives(
            last(post(d.loss)),
            tuple(last(g) for g in d.grads),
            {k: last(h) for k, h in d.hessian.items()},
            tuple(last(post(e)) for e in self._param_grads()),
        )
        self._fired.extend(n for n in fired if n not in self._fired)
        return d

    @property
    def rewrites(self) -> list[str]:
        """Names of the stability rewrites that fired, before and after differentiation."""
        self.stable  # noqa: B018 (the post pass records its rules)
        return list(self._fired)

    def _param_grads(self) -> list[sp.Basic]:
        """Stable d loss / d param: the spec's closed form where it gives one, else derived."""
        given = self.spec.param_derivatives
        out = []
        for p in self.param_wrt:
            limits.check_time()
            if p.name in given:
                expr, fired = stabilize(nonsmooth.prepare(given[p.name]))
                self._fired.extend(n for n in fired if n not in self._fired)
                limits.check_expr(expr, spec_error(self.spec, f"derivatives.{p.name}"), f"the derivative in {p}")
                out.append(expr)
            else:
                out.append(bounded_derivative(without_branches_on(self.stable_loss, p), p, self._fail,
                                              f"the derivative in {p}"))
        return out

    @cached_property
    def naive(self) -> Derivatives:
        """The textbook form, for high-precision reference evaluation.  Its
        parameter derivatives leave out branches at exact parameter values,
        where the reference takes the limit (check/grid.py)."""
        with self._guard("deriving the reference gradient and Hessian"):
            d = _derive(self._prepared, self.wrt, policy, self._fail)
            params = tuple(bounded_derivative(without_branches_on(self._prepared, p), p, self._fail,
                                              f"the derivative in {p}", policy) for p in self.param_wrt)
            return Derivatives(d.loss, d.grads, d.hessian, params)

    @cached_property
    def latex(self) -> dict[str, str]:
        with self._guard("printing LaTeX"):
            return self._latex()

    def _latex(self) -> dict[str, str]:
        names = [i.name for i in self.spec.predictions]
        syms = [sp.latex(self.spec.symbols[n]) for n in names]
        out = {"loss": sp.latex(self.spec.loss)}
        for k, s in enumerate(syms):
            out[f"grad_{names[k]}"] = sp.latex(self.stable.grads[k])
        for (i, j), h in self.stable.hessian.items():
            out[f"hessian_{names[i]}_{names[j]}"] = sp.latex(h)
        for p, e in zip(self.param_wrt, self.stable.params):
            out[f"param_{p.name}"] = sp.latex(e)
        return out

    @cached_property
    def latex_labels(self) -> dict[str, str]:
        """Left-hand sides for the LaTeX of :attr:`latex`."""
        names = [i.name for i in self.spec.predictions]
        syms = {n: sp.latex(self.spec.symbols[n]) for n in names}
        out = {"loss": "L"}
        for n in names:
            out[f"grad_{n}"] = rf"\frac{{\partial L}}{{\partial {syms[n]}}}"
        for i, a in enumerate(names):
            for b in names[i:]:
                den = rf"\partial {syms[a]}^{{2}}" if a == b else rf"\partial {syms[a]}\,\partial {syms[b]}"
                out[f"hessian_{a}_{b}"] = rf"\frac{{\partial^{{2}} L}}{{{den}}}"
        for p in self.param_wrt:
            out[f"param_{p.name}"] = rf"\frac{{\partial L}}{{\partial {sp.latex(p)}}}"
        return out
