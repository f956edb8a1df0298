"""Long formulas as a short one plus named sub-expressions ("where t_0 = ..."), so each line fits a page.

The names come from the same common-subexpression elimination the kernels
use (``sympy.cse`` with ``t0, t1, ...``, canonical order): a repeated
sub-expression is named once.  Names for tiny pieces (``1 - y``) are put
back, since they only make the reader look things up.  A piece still wider
than the limit gets its widest argument named, bottom-up, until every line
fits.  Width is the LaTeX length, except that a Piecewise counts as its
widest branch (its branches stack vertically on the page).

In row formulas a sub-expression that uses the class index outside a
reduction (``z_k`` inside ``sum_k``) is never named: the name would lose the
index it depends on.
"""
from __future__ import annotations

import itertools

import sympy as sp

from ..spec.rowexpr import RowReduction

LIMIT = 220  # LaTeX characters of a right-hand side: about one page width once typeset
MIN_NAMED = 30  # shorter pieces are written out where they are used


def width(e: sp.Basic) -> int:
    """The LaTeX length of e's widest line: a Piecewise is as wide as its widest branch."""
    pieces = [p for p in sp.preorder_traversal(e) if isinstance(p, sp.Piecewise)]
    if not pieces:
        return len(sp.latex(e))
    outer = pieces[0]  # preorder: the first is outermost
    inner = max(width(v) + (0 if c is sp.true else width(c) + 12) for v, c in outer.args)
    if outer == e:
        return inner
    return width(e.xreplace({outer: sp.Symbol("w" * inner)}))


def _free_index(e: sp.Basic, index: sp.Symbol | None) -> bool:
    if index is None:
        return False
    reds = [n for n in sp.preorder_traversal(e) if isinstance(n, RowReduction)]
    return e.xreplace({r: sp.Dummy() for r in reds}).has(index) if reds else e.has(index)


class _Namer:
    def __init__(self, limit: int, index: sp.Symbol | None):
        self.limit, self.index = limit, index
        self.parts: list[tuple[sp.Symbol, sp.Basic]] = []
        self.named: dict[sp.Basic, sp.Symbol] = {}
        self.fresh = (sp.Dummy(f"n{k}") for k in itertools.count())

    def name(self, e: sp.Basic) -> sp.Symbol:
        if e not in self.named:
            s = next(self.fresh)
            self.named[e] = s
            self.parts.append((s, e))
        return self.named[e]

    def fit(self, e: sp.Basic) -> sp.Basic:
        """e with sub-expressions named until its width is at most the limit (bottom-up)."""
        if e.is_Atom or not e.args:
            return e
        args = tuple(self.fit(a) for a in e.args)
        out = e.func(*args) if args != e.args else e
        while width(out) > self.limit:
            cands = [a for a in out.args if isinstance(a, sp.Expr) and not a.is_Atom and a.args
                     and not _free_index(a, self.index) and width(a) >= MIN_NAMED // 2]
            if not cands:
                break
            big = max(cands, key=lambda a: (width(a), sp.default_sort_key(a)))
            out = out.xreplace({big: self.name(big)})
        return out


def split(expr: sp.Basic, limit: int = LIMIT, index: sp.Symbol | None = None
          ) -> tuple[sp.Basic, list[tuple[sp.Symbol, sp.Basic]]]:
    """(short form of expr, [(t_i, definition), ...] in dependency order); no parts when expr fits."""
    if width(expr) <= limit:
        return expr, []
    taken = {s.name for s in expr.free_symbols}
    names = sp.numbered_symbols("t", exclude=[sp.Symbol(n) for n in taken])
    # reductions (sum_k ...) as opaque atoms for CSE, so a repeated sum is named once and nothing inside one is
    mask = {r: sp.Dummy(f"r{k}") for k, r in enumerate(
        n for n in sp.preorder_traversal(expr) if isinstance(n, RowReduction))}
    unmask = {v: k for k, v in mask.items()}
    reps, [reduced] = sp.cse([expr.xreplace(mask)], symbols=names, order="canonical",
                             ignore=(index,) if index is not None else ())
    reps = [(s, e.xreplace(unmask)) for s, e in reps]
    reduced = reduced.xreplace(unmask)
    small: dict = {}
    kept = []
    for s, e in reps:
        e = e.xreplace(small)
        if width(e) < MIN_NAMED:
            small[s] = e
        else:
            kept.append((s, e))
    reduced = reduced.xreplace(small)
    namer = _Namer(limit, index)
    for s, e in kept:
        namer.parts.append((s, namer.fit(e)))
    main = namer.fit(reduced)
    # a piece named in one place is written by its name everywhere after its definition
    parts = namer.parts
    for i, (s, e) in enumerate(parts):
        parts[i + 1:] = [(s2, e2.xreplace({e: s})) for s2, e2 in parts[i + 1:]]
        main = main.xreplace({e: s})
    # number the names in the order they are defined: t_0 is read first
    final = {old: sp.Symbol(f"t{k}") for k, (old, _) in enumerate(namer.parts)}
    clash = {s.name for s in final.values()} & taken
    if clash:  # the loss itself uses t0, t1...: name the parts u0, u1... instead
        final = {old: sp.Symbol(f"u_{k}") for k, (old, _) in enumerate(namer.parts)}
    parts = [(final[s], e.xreplace(final)) for s, e in namer.parts]
    return main.xreplace(final), parts
