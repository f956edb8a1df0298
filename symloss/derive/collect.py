"""Collecting like terms in the data: the rule ``collect_terms`` and its helpers.

Derivatives of powers of the data come out as sums whose terms cancel in
floating point ((alpha - 2) r^2 + r^2 in Barron's Hessian).  Here they are put
over one denominator and collected symbolically, with every linear form in the
inputs (a residual yhat - y) held as one symbol so it is never expanded.
"""
from __future__ import annotations

import sympy as sp

from . import primitives as P


def linear_atoms(expr: sp.Basic, data: frozenset) -> tuple[sp.Basic, dict]:
    """Replace each linear form in the data (yhat - y, 2*y - 2*yhat) by a multiple
    of one dummy per direction, so expanding a polynomial never expands a
    residual into y**2 - 2*y*yhat + yhat**2 (which cancels in floating point)."""
    atoms: dict = {}

    def visit(node):
        if isinstance(node, sp.Add) and node.free_symbols & data:
            if all(t.as_independent(*data)[1] in data for t in node.args):
                content, form = node.primitive()
                if form.could_extract_minus_sign():
                    content, form = -content, -form
                if form not in atoms:
                    atoms[form] = sp.Dummy(f"u{len(atoms)}", real=True)
                return content * atoms[form]
        if node in data:  # a lone input is a form of its own
            if node not in atoms:
                atoms[node] = sp.Dummy(f"u{len(atoms)}", real=True)
            return atoms[node]
        if node.args:
            return node.func(*(visit(a) for a in node.args))
        return node

    return visit(expr), {d: form for form, d in atoms.items()}


def _whole(x: sp.Basic) -> bool:
    return bool(x.is_Integer or (x.is_Float and float(x).is_integer()))


def _common_powers(terms, data: frozenset) -> list[sp.Basic]:
    """Candidates B^g to factor out of every term (g not an integer, B with data in it),
    up to integer powers of B: B^(a/2) and B^(a/2 - 2) share B^(a/2 - 2), B^(a/2 - 1)
    and B^(a/2), each leaving a rational remainder in B."""
    exps, symbolic = [], set()
    for term in terms:
        found = {}
        for f in sp.Mul.make_args(term):
            base, e = f.as_base_exp()
            if base.free_symbols & data:
                found[base] = found.get(base, 0) + e
                if not e.is_Integer:  # B^g, B^(1/4), B^0.25
                    symbolic.add(base)
        exps.append({b: e for b, e in found.items() if b in symbolic})
    fixed, choices = sp.S.One, []
    for base in sorted(set.intersection(*(set(e) for e in exps)), key=sp.default_sort_key):
        options = [e[base] for e in exps]
        low = next((g for g in options if all(_whole(h - g) and h - g >= 0 for h in options)), None)
        if low is None:
            continue
        span = int(max(h - low for h in options))
        if not choices and span:
            choices = [base**(low + k) for k in range(span + 1)]
        else:
            fixed *= base**low
    return [fixed * c for c in choices] or [fixed]


def _terms_sharing_a_power(terms, data: frozenset) -> list:
    """The terms holding a power B^g (g not an integer, B with data in it) that at
    least one other term holds too, for the first such B."""
    holders: dict = {}
    for term in terms:
        for f in sp.Mul.make_args(term):
            base, e = f.as_base_exp()
            if not e.is_Integer and base.free_symbols & data:
                holders.setdefault(base, []).append(term)
    for base in sorted(holders, key=sp.default_sort_key):
        if len(set(holders[base])) >= 2:
            return list(dict.fromkeys(holders[base]))
    return []


def _coefficient(c: sp.Basic) -> sp.Basic:
    """A collected coefficient with its common factor out, 0.3 (1 - y), the sum
    grouped so SymPy does not distribute the number back into 0.3 - 0.3 y."""
    c = sp.factor_terms(c)
    number, rest = c.as_coeff_Mul()
    return number * P.grouped(rest) if number not in (1, -1) and isinstance(rest, sp.Add) else c


def _degree_gap(ratio: sp.Basic, dummies) -> int:
    """|deg numerator - deg denominator| in the residuals: 0 when they grow alike."""
    if not dummies:
        return 0
    num, den = sp.fraction(ratio)
    deg = [sp.Poly(x, *dummies).total_degree() if x.is_polynomial(*dummies) else 0 for x in (num, den)]
    return abs(deg[0] - deg[1])


def _data_free(ratio: sp.Basic, data: frozenset) -> sp.Basic:
    """The factors of a ratio's numerator and denominator that hold no data symbol."""
    num, den = sp.fraction(ratio)
    free = lambda e: sp.Mul(*(f for f in sp.Mul.make_args(e) if not f.free_symbols & data))  # noqa: E731
    return free(num) / free(den)


def collect_terms(data: frozenset, predictions: frozenset):
    """A B^g + C B^(g-1) -> B^(g-1) (A B + C) over one denominator, its numerator
    collected by powers of the data: the chain rule's (alpha-2)r^2 + r^2 becomes
    (alpha-1)r^2 before any rounding (Barron's Hessian at large |r|)."""

    def combine(work, factor):
        """(factor, the rest over one denominator with collected numerator, whether
        like terms merged, the rest with residuals as dummies, the dummies)."""
        rest = sp.Add(*(sp.powsimp(t / factor, combine="exp") for t in work.args))
        rest = rest.replace(lambda e: isinstance(e, sp.Pow) and e.exp.is_Float and _whole(e.exp),
                            lambda e: e.base ** int(e.exp))  # B^0.25 / B^-0.75 = B
        rest, back = linear_atoms(rest, data)
        # collect by the forms that hold a prediction; the targets' forms are
        # coefficients (expanding (1 - y)(...) would lose 1 - y's digits near y = 1)
        dummies = sorted((d for d, form in back.items() if form.free_symbols & predictions), key=sp.default_sort_key)
        num, den = sp.fraction(sp.together(rest))
        merged = False
        factors = []
        for f in sp.Mul.make_args(num):
            if isinstance(f, sp.Add) and dummies and f.is_polynomial(*dummies):
                poly = sp.Poly(sp.expand(f), *dummies)
                # like terms met: more monomials term by term than in the sum
                merged |= len(poly.terms()) < sum(len(sp.Add.make_args(sp.expand(t))) for t in f.args)
                f = sp.Add(*(_coefficient(c) * sp.Mul(*(d**k for d, k in zip(dummies, m)))
                             for m, c in poly.terms()))
            factors.append(f)
        return factor, sp.Mul(*factors) / den, merged, rest, back, dummies

    def apply(node):
        if not isinstance(node, sp.Add) or not data:
            return None
        # terms with a power of the same B collect among themselves; the others stay
        group = _terms_sharing_a_power(node.args, data)
        if group and len(group) < len(node.args):
            collected = apply(sp.Add(*group))
            if collected is None:
                return None
            return collected + sp.Add(*(t for t in node.args if t not in group))
        # x/y guarded at y = 0 is a plain quotient where y cannot be 0 (and x b^g / b^k
        # one where b cannot be; the collection merges the powers); grouped is an
        # inner collection, merged again here
        work = node.replace(lambda e: isinstance(e, P.xdivy) and e.args[1].is_positive,
                            lambda e: e.args[0] / e.args[1])
        work = work.replace(lambda e: isinstance(e, P.powdiv) and e.args[1].is_positive,
                            lambda e: e.args[0] * e.args[1] ** e.args[2] / e.args[1] ** e.args[3])
        work = work.replace(P.grouped, lambda e: e)
        if not isinstance(work, sp.Add):
            return None
        options = [combine(work, f) for f in _common_powers(work.args, data)]
        # B^g times a ratio whose numerator and denominator grow alike: neither the
        # ratio's parts nor B^g alone overflow or underflow where the result does not
        factor, ratio, merged, rest, back, dummies = min(options, key=lambda o: _degree_gap(o[1], o[5]))
        ratio = ratio.xreplace(back)
        if factor != 1 and sp.fraction(ratio)[1].free_symbols & data:
            # constants (1/c^2) stay outside: inside they would multiply the numerator
            # before the division, where (alpha - 1) r^2 / c^2 overflows float32
            free = _data_free(ratio, data)
            out = factor * free * P.grouped(ratio / free)
        else:
            out = factor * ratio
        # Only a rational function of the inputs goes over one denominator (over
        # transcendental parts it can divide by a factor that underflows: focal
        # loss's sigmoid at z = -700), and only where like terms merged or the
        # result is shorter (4c^2 - 2r^2 over (r^2 + 2c^2)^2).
        rational = not (rest.free_symbols & data) and rest.is_rational_function(*back)
        if not rational or not (merged or sp.count_ops(out) < sp.count_ops(node)):
            return None
        return out

    return apply
