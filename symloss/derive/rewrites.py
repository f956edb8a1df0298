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
    if not factor.free_symbols or factor.is_zero is False:  # e.g. c**2 with c > 0 cannot be 0
        return None
    fn = P.xlogy if isinstance(logs[0], sp.log) else P.xlog1py
    return number * fn(factor, logs[0].args[0])


def _tanh(node):
    if isinstance(node, sp.tanh):
        return P.Tanh(node.args[0])
    return None


def _split_add(node, pick):
    """(picked term, the rest) for the first term of an Add satisfying ``pick``."""
    if not isinstance(node, sp.Add):
        return None, None
    for term in node.args:
        if pick(term):
            return term, node - term
    return None, None


def _logistic(node):
    # softplus(u) + k*u -> logistic(u, k): the two terms cancel for large |u| otherwise
    sp_term, rest = _split_add(node, lambda t: isinstance(t, P.softplus))
    if sp_term is None:
        return None
    u = sp_term.args[0]
    for term in sp.Add.make_args(rest):
        k = sp.cancel(term / u)
        if k.free_symbols & u.free_symbols or not k.is_polynomial(*k.free_symbols):
            continue
        return P.logistic(u, k) + (rest - term)
    return None


def _sqrt1pm1(node):
    if not (isinstance(node, sp.Add) and sp.S.NegativeOne in node.args):
        return None
    root, rest = _split_add(node, lambda t: isinstance(t, sp.Pow) and t.exp == sp.S.Half and _one_plus(t.base) is not None)
    if root is None:
        return None
    return P.sqrt1pm1(_one_plus(root.base)) + rest + 1


def _powm1(node):
    if not (isinstance(node, sp.Add) and sp.S.NegativeOne in node.args):
        return None
    power, rest = _split_add(
        node, lambda t: isinstance(t, sp.Pow) and not t.exp.is_Integer and _one_plus(t.base) is not None
    )
    if power is None:
        return None
    return P.powm1(_one_plus(power.base), power.exp) + rest + 1


def _xmlog1p(node):
    term, rest = _split_add(node, lambda t: isinstance(t, sp.Mul) and t.args[0] == -1 and len(t.args) == 2
                            and isinstance(t.args[1], P.log1p))
    if term is None:
        return None
    u = term.args[1].args[0]
    if sp.expand(rest - u) == 0:
        return P.xmlog1p(u)
    return None


def _cancel_constant(node):
    # c + b*(1 - u)**n with the constant cancelling in the expansion (Tukey's
    # 1 - (1 - x)^3): expand so small u keeps its digits
    if not isinstance(node, sp.Add):
        return None
    const, rest = node.as_coeff_Add()
    if const == 0 or not any(isinstance(p, sp.Pow) and p.exp.is_Integer and p.exp > 1 and isinstance(p.base, sp.Add)
                             for p in sp.Add.make_args(rest) for p in sp.Mul.make_args(p)):
        return None
    expanded = sp.expand(node)
    if expanded.as_coeff_Add()[0] != 0:
        return None
    return sp.factor_terms(expanded)


def _pow_quotient(node):
    # b**g / b -> b**(g - 1): the derivative of b**g comes out as g*b**g*b'/b,
    # which is 0/0 where b underflows to 0 (focal loss at extreme logits)
    if not isinstance(node, sp.Mul):
        return None
    factors = list(node.args)
    for i, f in enumerate(factors):
        if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0:
            for j, g in enumerate(factors):
                if j != i and isinstance(g, sp.Pow) and g.base == f.base and not g.exp.is_Number:
                    rest = [h for k, h in enumerate(factors) if k not in (i, j)]
                    return sp.Mul(*rest) * sp.Pow(g.base, g.exp + f.exp)
    return None


def _sign_squared(node):
    # sign(u)^2 comes from differentiating |u| twice; it is 1 except at u = 0,
    # where a function smooth through the kink (Fair, |u|^3) needs 1 as well
    if isinstance(node, sp.Pow) and isinstance(node.base, sp.sign) and node.exp.is_Integer and node.exp % 2 == 0:
        return sp.S.One
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
    Rule("logistic", "softplus(u) + k*u -> one function whose terms never cancel (BCE with logits at y = 1)", _logistic),
    Rule("sqrt1pm1", "sqrt(1+u) - 1 -> u/(sqrt(1+u) + 1)", _sqrt1pm1),
    Rule("powm1", "(1+u)^a - 1 -> expm1(a*log1p(u))", _powm1),
    Rule("xmlog1p", "u - log(1+u) -> a series near 0, where the difference cancels", _xmlog1p),
)
# Applied to every final expression (loss, gradient, Hessian) after differentiation:
# algebraic forms whose derivatives would be worse than those of the original.
POST_RULES: tuple[Rule, ...] = (
    Rule("expand_cancel", "c - c(1-u)^n -> its expansion, exact for small u", _cancel_constant),
    Rule("sign_squared", "sign(u)^2 -> 1", _sign_squared),
    Rule("pow_quotient", "b^g / b -> b^(g-1), finite where b underflows to 0", _pow_quotient),
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


def stabilize(expr: sp.Basic, rules: tuple[Rule, ...] = RULES) -> tuple[sp.Basic, list[str]]:
    """Apply every rule in order; returns the new expression and the names that fired."""
    fired: list[str] = []
    for rule in rules:
        expr = _rewrite_once(expr, rule, fired)
    return expr, fired


def finish(expr: sp.Basic) -> tuple[sp.Basic, list[str]]:
    """The post-differentiation pass: pre rules again (derivatives can reintroduce
    their patterns), post rules, then a common denominator where that is shorter
    (d/dr r/sqrt(1+r^2) = 1/(1+r^2)^(3/2), not a difference of two near-equal terms)."""
    expr, fired = stabilize(expr, RULES + POST_RULES)
    combined = sp.together(expr)
    if sp.count_ops(combined) < sp.count_ops(expr):
        expr = combined
    return expr, fired


def describe(name: str) -> str:
    return next(r.description for r in RULES + POST_RULES if r.name == name)
