"""Stability rewrites: replace fragile closed forms with exact primitives.

Each rule is a named SymPy rewrite applied bottom-up; the derivation records
which ones fired so ``symloss show`` can report them.  The rewritten
expression is mathematically equal to the input; the tests check that
against the unrewritten form in high precision.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from . import primitives as P


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    apply: Callable[[sp.Basic], sp.Basic]  # returns a rewritten node or None


def _one_plus(arg: sp.Basic) -> sp.Basic | None:
    """If ``arg`` is ``1 + u``, return u."""
    if isinstance(arg, sp.Add) and sp.S.One in arg.args:
        return arg - 1
    return None


def _softplus(node):
    if isinstance(node, sp.log):
        u = _one_plus(node.args[0])
        if isinstance(u, sp.exp):
            return P.softplus(u.args[0])
    return None


def _log_sigmoid(node):
    # log(1/(1 + e^{-x})) = -softplus(-x)
    if isinstance(node, sp.log) and isinstance(node.args[0], sp.Pow) and node.args[0].exp == -1:
        u = _one_plus(node.args[0].base)
        if isinstance(u, sp.exp):
            return -P.softplus(u.args[0])
    return None


def _sigmoid(node):
    if isinstance(node, sp.Pow) and node.exp == -1:
        u = _one_plus(node.base)
        if isinstance(u, sp.exp):
            return P.sigmoid(-u.args[0])
    return None


def _logcosh(node):
    if isinstance(node, sp.log) and isinstance(node.args[0], sp.cosh):
        return P.logcosh(node.args[0].args[0])
    return None


def _log1p(node):
    if isinstance(node, sp.log):
        u = _one_plus(node.args[0])
        if u is not None:
            return P.log1p(u)
    return None


def _expm1(node):
    if isinstance(node, sp.Add) and sp.S.NegativeOne in node.args:
        rest = [a for a in node.args if a is not sp.S.NegativeOne]
        exps = [a for a in rest if isinstance(a, sp.exp)]
        if exps:
            e = exps[0]
            others = [a for a in rest if a is not e]
            return P.expm1(e.args[0]) + sp.Add(*others)
    return None


def _xlogy(node):
    # c * log(u) -> xlogy(c, u) and c * log1p(u) -> xlog1py(c, u): 0 log 0 = 0
    if not isinstance(node, sp.Mul):
        return None
    logs = [a for a in node.args if isinstance(a, (sp.log, P.log1p))]
    if len(logs) != 1:
        return None
    coeff = sp.Mul(*[a for a in node.args if a is not logs[0]])
    number, factor = coeff.as_coeff_Mul()
    if not factor.free_symbols:
        return None
    fn = P.xlogy if isinstance(logs[0], sp.log) else P.xlog1py
    return number * fn(factor, logs[0].args[0])


def _tanh(node):
    if isinstance(node, sp.tanh):
        return P.Tanh(node.args[0])
    return None


RULES: tuple[Rule, ...] = (
    Rule("log_sigmoid", "log(1/(1+e^-x)) -> -softplus(-x)", _log_sigmoid),
    Rule("softplus", "log(1+e^x) -> softplus(x), thresholded so e^x never overflows", _softplus),
    Rule("sigmoid", "1/(1+e^-x) -> sigmoid(x), exp only of non-positive arguments", _sigmoid),
    Rule("logcosh", "log(cosh(x)) -> logcosh(x), exact near 0 and without overflow for large |x|", _logcosh),
    Rule("log1p", "log(1+u) -> log1p(u)", _log1p),
    Rule("expm1", "e^x - 1 -> expm1(x)", _expm1),
    Rule("xlogy", "c*log(u) -> xlogy(c, u), with 0*log(0) = 0", _xlogy),
    Rule("tanh", "tanh'(x) = sech^2(x), not 1 - tanh^2 which cancels for large |x|", _tanh),
)


def _rewrite_once(expr: sp.Basic, rule: Rule, fired: list[str]) -> sp.Basic:
    if expr.args:
        new_args = tuple(_rewrite_once(a, rule, fired) for a in expr.args)
        if new_args != expr.args:
            expr = expr.func(*new_args)
    out = rule.apply(expr)
    if out is not None:
        if rule.name not in fired:
            fired.append(rule.name)
        return out
    return expr


def stabilize(expr: sp.Basic) -> tuple[sp.Basic, list[str]]:
    """Apply every rule in order; returns the new expression and the names that fired."""
    fired: list[str] = []
    for rule in RULES:
        expr = _rewrite_once(expr, rule, fired)
    return expr, fired


def describe(name: str) -> str:
    return next(r.description for r in RULES if r.name == name)
