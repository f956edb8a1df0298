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
from .collect import collect_terms, linear_atoms


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
    # (1 + e^-x)^-g = sigmoid(x)^g: SymPy merges sigmoid(x)**gamma into the left form
    if isinstance(node, sp.Pow) and node.exp.could_extract_minus_sign():
        u = _one_plus(node.base)
        if isinstance(u, sp.exp):
            return P.sigmoid(-u.args[0]) ** (-node.exp)
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


def _boxcox1p(node):
    # powm1(u, p) * k / q with p / q a number -> (p / q) k boxcox1p(u, p): Barron's
    # |alpha - 2| / alpha * powm1(u, alpha / 2), where powm1 underflows before the division
    if not isinstance(node, sp.Mul):
        return None
    powers = [f for f in node.args if isinstance(f, P.powm1)]
    if len(powers) != 1:
        return None
    u, p = powers[0].args
    for f in node.args:
        if isinstance(f, sp.Pow) and f.exp == -1 and (p / f.base).is_Number and p / f.base != 0:
            rest = node / (powers[0] * f)
            return (p / f.base) * rest * P.boxcox1p(u, p)
    return None


def _xmlog1p(node):
    term, rest = _split_add(node, lambda t: isinstance(t, sp.Mul) and t.args[0] == -1 and len(t.args) == 2
                            and isinstance(t.args[1], P.log1p))
    if term is None:
        return None
    u = term.args[1].args[0]
    if sp.expand(rest - u) == 0:
        return P.xmlog1p(u)
    return None


def _cancel_constant(data: frozenset):
    """c + b*(1 - u)**n with the constant cancelling in the expansion (Tukey's
    1 - (1 - x)^3): expand so small u keeps its digits, residuals kept whole."""

    def apply(node):
        if not isinstance(node, sp.Add):
            return None
        const, rest = node.as_coeff_Add()
        if const == 0 or not any(isinstance(p, sp.Pow) and p.exp.is_Integer and p.exp > 1
                                 and isinstance(p.base, sp.Add)
                                 for p in sp.Add.make_args(rest) for p in sp.Mul.make_args(p)):
            return None
        atomized, back = linear_atoms(node, data)
        expanded = sp.expand(atomized)
        if expanded.as_coeff_Add()[0] != 0:
            return None
        return sp.factor_terms(expanded).xreplace(back)

    return apply


def _pow_quotient(node):
    # x * b**g / b**k -> powdiv(x, b, g, k): the derivative of b**g comes out as
    # g*b**g*b'/b, which is 0/0 where b underflows to 0 or where g = 0 (focal loss
    # at extreme logits, or with gamma = 0; the limit there is 0), and 0 instead of
    # b**(g - 1) where b**g underflows but b does not (yhat**1.3 at yhat = 1e-300)
    if not isinstance(node, sp.Mul):
        return None
    factors = list(node.args)

    def symbolic_power(g, base):
        return isinstance(g, sp.Pow) and g.base == base and not g.exp.is_Number

    def has_power_of(term, base):
        return any(symbolic_power(g, base)
                   or (isinstance(g, P.powdiv) and g.args[1] == base)
                   or (isinstance(g, P.xdivy) and has_power_of(g.args[0], base))
                   for g in sp.Mul.make_args(term))

    for i, f in enumerate(factors):
        if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0:
            rest = [h for k, h in enumerate(factors) if k != i]
            k = -f.exp
            # powdiv(x, b, g, j) * c / b**k -> powdiv(x * c, b, g, j + k)
            for j, h in enumerate(rest):
                if (isinstance(h, P.powdiv) and h.args[1] == f.base) or symbolic_power(h, f.base):
                    c = sp.Mul(*[u for m, u in enumerate(rest) if m != j])
                    c = _pow_quotient(c) or c  # a quotient of another base inside
                    if isinstance(h, P.powdiv):
                        return P.powdiv(h.args[0] * c, f.base, h.args[2], h.args[3] + k)
                    return P.powdiv(c, f.base, h.exp, k)
            quotients = [h for h in rest if isinstance(h, P.xdivy)]
            if quotients:  # xdivy(x, d) * c / b**k -> xdivy(x * c, d * b**k)
                q = quotients[0]
                c = sp.Mul(*[h for h in rest if h is not q])
                return P.xdivy(q.args[0] * c, q.args[1] * f.base**k)
            if has_power_of(sp.Mul(*rest), f.base):
                return P.xdivy(sp.Mul(*rest), f.base**k)
            # (A + B) / b with b**g inside every term: divide term by term
            for j, g in enumerate(rest):
                if isinstance(g, sp.Add) and all(has_power_of(t, f.base) for t in g.args):
                    others = sp.Mul(*[h for k, h in enumerate(rest) if k != j])
                    return sp.Add(*[_pow_quotient(t * others * f) or t * others * f for t in g.args])
    return None


def _expm1_shift(node):
    # k*exp(u) + R -> (k + R) + k*expm1(u): exact where u ~ 0 and k ~ -R
    # (the Poisson/gamma/Tweedie gradients 1 - y*exp(-z) at z ~ 0, y = 1)
    if not isinstance(node, sp.Add):
        return None
    # Only where every |u| < 1/2: far from 0, e^u is not near 1 and the
    # shift would add the rounding of (k + R) for nothing (Poisson at z << 0).
    exps = [t for t in node.args if any(isinstance(f, sp.exp) for f in sp.Mul.make_args(t))]
    rest = [t for t in node.args if t not in exps]
    arguments = {next(f for f in sp.Mul.make_args(t) if isinstance(f, sp.exp)) for t in exps}
    if not exps or (not rest and len(arguments) < 2):
        return None
    constant, shifted, near = sp.Add(*rest), [], []
    for term in exps:
        e = next(f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp))
        k = term / e
        if k.has(sp.exp):
            return None
        constant += k
        shifted.append(k * P.expm1(e.args[0]))
        near.append(sp.Abs(e.args[0]) < sp.S.Half)
    exact = P.grouped(constant) + sp.Add(*shifted) if constant != 0 else sp.Add(*shifted)
    return sp.Piecewise((exact, sp.And(*near)), (node, True))


def _pow1p(node):
    # only symbolic exponents: a fixed one (a square root, a cube) is as exact as pow
    if isinstance(node, sp.Pow) and node.exp.free_symbols and not node.exp.is_integer:
        u = _one_plus(node.base)
        if u is not None:
            return sp.exp(node.exp * P.log1p(u))
    # powdiv's own pow(1 + u, g - k) would lose the same; at u = -1 powdiv keeps its convention
    if isinstance(node, P.powdiv) and node.args[2].free_symbols and not node.args[2].is_integer:
        x, b, g, k = node.args
        u = _one_plus(b)
        if u is not None:
            return sp.Piecewise((x * sp.exp((g - k) * P.log1p(u)), sp.Ne(u, -1)), (node, True))
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
    Rule("boxcox1p", "((1+u)^a - 1)/a -> boxcox1p(u, a), log1p(u) at a = 0, no underflow before the division",
         _boxcox1p),
    Rule("xmlog1p", "u - log(1+u) -> a series near 0, where the difference cancels", _xmlog1p),
)
def post_rules(data: frozenset = frozenset(), predictions: frozenset = frozenset()) -> tuple[Rule, ...]:
    """Applied to every final expression (loss, gradient, Hessian) after differentiation:
    algebraic forms whose derivatives would be worse than those of the original.
    ``data`` are the input symbols and ``predictions`` those we differentiate by;
    without them expand_cancel cannot keep residuals whole and collect_terms does
    nothing."""
    return (
        Rule("expand_cancel", "c - c(1-u)^n -> its expansion, exact for small u", _cancel_constant(data)),
        Rule("sign_squared", "sign(u)^2 -> 1", _sign_squared),
        Rule("collect_terms", "A B^g + C B^(g-1) -> B^(g-1) (A B + C) with like powers of the data merged "
             "symbolically", collect_terms(data, predictions)),
        Rule("pow_quotient", "x b^g / b -> powdiv(x, b, g, 1) = x b^(g-1), also where b^g underflows; "
             "0, not 0/0, where x = 0", _pow_quotient),
        Rule("expm1_shift", "k e^u + R -> (k + R) + k expm1(u), exact near u = 0", _expm1_shift),
    )


# On the kernels' final expressions only: differentiated again, or seen by the
# rules above, these forms would hide the powers of (1 + u) that collect_terms merges.
FINAL_RULES: tuple[Rule, ...] = (
    Rule("pow1p", "(1+u)^p -> exp(p*log1p(u)) for a parameter p: 1 + u rounds, and a large |p| "
         "multiplies that error (Barron's gradient at alpha = -1e6)", _pow1p),
)


POST_RULES: tuple[Rule, ...] = post_rules()
POLICY_RULES: tuple[Rule, ...] = tuple(r for r in POST_RULES if r.name == "sign_squared")


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


def finish(expr: sp.Basic, data: frozenset = frozenset(), predictions: frozenset = frozenset()
           ) -> tuple[sp.Basic, list[str]]:
    """The post-differentiation pass: pre rules again (derivatives can reintroduce
    their patterns), post rules, then a common denominator where that is shorter
    (d/dr r/sqrt(1+r^2) = 1/(1+r^2)^(3/2), not a difference of two near-equal terms).
    ``data`` are the input symbols (not parameters) and ``predictions`` those of
    them we differentiate by, for the rule that collects in them."""
    expr, fired = stabilize(expr, RULES + post_rules(data, predictions))
    # signsimp makes (y - yhat) and (yhat - y) one form, so r^2 - r^2 cancels
    # symbolically instead of in floating point (pseudo-Huber's Hessian)
    combined = sp.together(sp.signsimp(expr))
    if sp.count_ops(combined) < sp.count_ops(expr):
        expr = combined
    return expr, fired


def finalize(expr: sp.Basic) -> tuple[sp.Basic, list[str]]:
    """The last pass, on what the kernels compute (after every derivative is taken)."""
    return stabilize(expr, FINAL_RULES)


def describe(name: str) -> str:
    return next(r.description for r in RULES + POST_RULES + FINAL_RULES if r.name == name)
