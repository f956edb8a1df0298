"""The IR of a row kernel: per-row steps and loops over the classes.

A row kernel runs, for each row, a fixed sequence of *steps*:

* ``max``   a loop over classes tracking the maximum of one or more
            per-class expressions (softmax shifts, and ``Max(..., k)`` with
            its argmax);
* ``sum``   a loop over classes accumulating one or more sums;
* ``pick``  one evaluation at the argmax class of a ``max`` step;
* ``row``   per-row arithmetic on what is known so far (including every
            per-row subexpression of the next loop, hoisted out of it);
* ``out``   the final loop, writing the per-class outputs.

Reductions are scheduled into the fewest alternating max/sum loops their
dependencies allow (softmax cross-entropy: one max loop, one sum loop, the
output loop).  Each step carries one :class:`RowFunction`: its argument names
and CSE'd assignments, printed as a small ``njit`` function by the backend.
Templates only loop over this.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from ..derive.row import KERNELS, RowDerivation
from ..errors import DerivationError
from ..ir.nan import guard_branches, keepnan
from .kernels import Assignment, check_printable


@dataclass(frozen=True)
class RowFunction:
    name: str
    args: tuple[str, ...]  # symbol names, in a fixed order; the backend appends T
    temporaries: tuple[Assignment, ...]
    outputs: tuple[Assignment, ...]


@dataclass(frozen=True)
class Step:
    kind: str  # "row" | "max" | "sum" | "pick" | "out"
    fn: RowFunction
    targets: tuple[str, ...]  # variables assigned: reductions, row temporaries, or output names
    argmax: tuple[str, ...] = ()  # max: per target, the argmax variable ("" when not tracked)
    at: str = ""  # pick: the argmax variable whose class is read
    stash: bool = False  # sum: the function's last output is stored per class for the out loop


STASH = "_st"  # the class symbol of a stashed value (read back from the first output buffer)
STASH_KERNELS = ("grad", "value_and_grad", "hessian_diag", "grad_hessian_diag", "hvp")
VALUE_KERNELS = ("value", "value_and_grad")  # the kernels whose sums add up the loss itself


@dataclass(frozen=True)
class RowKernelIR:
    name: str
    steps: tuple[Step, ...]
    row_outputs: tuple[str, ...]  # per-row results (the loss), assigned by the last row step
    class_outputs: tuple[str, ...]  # per-class results, written by the out step


@dataclass(frozen=True)
class RowIR:
    name: str
    inputs: tuple[str, ...]  # vector and scalar inputs, declared order (positional arrays)
    class_inputs: tuple[str, ...]  # class inputs (keyword arrays of shape (K,))
    index_input: str | None  # the vector target that may be given as class indices
    predictions: tuple[str, ...]
    params: tuple[str, ...]
    size: str  # the class-count symbol
    rank: int  # low-rank terms of the per-row Hessian
    kernels: dict[str, RowKernelIR]
    sel: dict[str, str]  # "_selN" symbol -> argmax variable of its max reduction


def _cse(name: str, args: tuple[str, ...], outputs: list[tuple[str, sp.Basic]], counter: list[int]) -> RowFunction:
    exprs = [e for _, e in outputs]
    start = counter[0]
    symbols = (sp.Symbol(f"_t{start + n}") for n in range(10**6))
    replacements, reduced = sp.cse(exprs, symbols=symbols, order="canonical")
    counter[0] += len(replacements)
    temps = tuple(Assignment(str(s), e) for s, e in replacements)
    outs = tuple(Assignment(n, e) for (n, _), e in zip(outputs, reduced))
    return RowFunction(name, args, temps, outs)


class _Builder:
    def __init__(self, d: RowDerivation, kernel: str, fold: bool = False):
        self.d = d
        self.kernel = kernel
        self.fold = fold
        calc = d.calculus
        self.reductions = calc.reductions
        self.sel_of = {s: m for m, s in calc.sel.items()}  # sel symbol -> max reduction
        self.class_syms = set(d.class_syms) | set(d.tangents.values()) | set(self.sel_of) | {sp.Symbol(STASH)}
        self.steps: list[Step] = []
        self.hoisted: list[tuple[sp.Symbol, sp.Basic]] = []  # pending row temporaries
        self.n_hoist = 0
        self.counter = [0]
        inputs = {d.spec.symbols[i.name] for i in d.spec.inputs if i.shape == "scalar"}
        self.data = set(d.class_syms) | set(d.tangents.values()) | inputs | set(self.reductions)

    # naming and ordering ---------------------------------------------------------
    def _order(self, syms) -> tuple[str, ...]:
        return tuple(sorted((s.name for s in syms), key=_natural))

    def argmax_var(self, m: sp.Symbol) -> str:
        return f"_a{m.name[2:]}"

    def deps(self, sym: sp.Symbol) -> set[sp.Symbol]:
        red = self.reductions[sym]
        out = {s for s in red.expr.free_symbols if s in self.reductions}
        out |= {self.sel_of[s] for s in red.expr.free_symbols if s in self.sel_of}
        if red.of is not None:
            out.add(red.of)
        return out

    def closure(self, exprs) -> list[sp.Symbol]:
        need: set[sp.Symbol] = set()
        stack = [s for e in exprs for s in e.free_symbols]
        while stack:
            s = stack.pop()
            if s in self.sel_of:
                s = self.sel_of[s]
            if s in self.reductions and s not in need:
                need.add(s)
                stack.extend(self.deps(s))
        order = list(self.reductions)
        return sorted(need, key=order.index)

    # NaN and hoisting -------------------------------------------------------------
    def guard(self, expr: sp.Basic, output: bool = True) -> sp.Basic:
        expr = guard_branches(expr, self.data & expr.free_symbols)
        preds = [s for s in self.d.preds]
        if output and not (expr.free_symbols & (set(preds) | set(self.reductions))):
            expr = keepnan(expr, *preds)  # a constant output is still NaN where its row is
        return expr

    def hoist(self, expr: sp.Basic) -> sp.Basic:
        """Replace maximal per-row subtrees of a per-class expression by row temporaries."""
        cache = {e: s for s, e in self.hoisted}

        def walk(node):
            if isinstance(node, ExprCondPair):  # a Piecewise's (value, condition): not a value to hoist
                return node.func(*(walk(a) for a in node.args))
            if not (node.free_symbols & self.class_syms):
                if node.is_Atom or not node.free_symbols or isinstance(node, sp.Rel) or node.is_Boolean:
                    return node
                if node not in cache:
                    sym = sp.Symbol(f"_h{self.n_hoist}")
                    self.n_hoist += 1
                    self.hoisted.append((sym, node))
                    cache[node] = sym
                return cache[node]
            if not node.args:
                return node
            args = tuple(walk(a) for a in node.args)
            return node.func(*args) if args != node.args else node

        return walk(expr)

    def flush_row(self, extra: list[tuple[str, sp.Basic]] = ()) -> None:
        """A row step computing the pending hoisted temporaries (and ``extra`` outputs)."""
        pending = list(self.hoisted) + [(sp.Symbol(n), e) for n, e in extra]
        self.hoisted = []
        if not pending:
            return
        # a later output may use an earlier one (a norm in a hoisted term): inline it, CSE shares it
        known: dict[sp.Symbol, sp.Basic] = {}
        outputs = []
        for sym, e in pending:
            e = e.xreplace(known)
            known[sym] = e
            outputs.append((sym.name, e))
        args = self._order(set().union(*(e.free_symbols for _, e in outputs)))
        fn = _cse(f"{self.kernel}_s{len(self.steps)}", args, outputs, self.counter)
        self.steps.append(Step("row", fn, tuple(n for n, _ in outputs)))

    def masked(self, r: sp.Symbol, summand: sp.Basic) -> sp.Basic:
        """``_weightless_terms`` of sum ``r``, knowing which predictions the kernel's other sums read."""
        preds = set(self.d.preds)
        covered = set().union(*(_unmasked_preds(red.expr, preds, self.class_syms)
                                for q, red in self.reductions.items()
                                if q != r and red.kind == "sum" and q in self.sums))
        return _weightless_terms(summand, preds, self.class_syms, covered)

    def stash_candidate(self, cls_out, need) -> sp.Basic | None:
        """An exponential both a sum loop and the out loop compute: the sum loop stores it in
        the output buffer (overwritten later anyway) and the out loop reads it back, so the
        softmax's exp is evaluated once per class, not twice."""
        if self.kernel not in STASH_KERNELS:
            return None
        wanted = {e for _, x in cls_out for e in x.atoms(sp.exp) if e.free_symbols & self.class_syms}
        summed = {e for r in need if self.reductions[r].kind == "sum"
                  for e in self.reductions[r].expr.atoms(sp.exp)}
        found = sorted(wanted & summed, key=sp.default_sort_key)
        return found[0] if found else None

    def loop(self, kind: str, targets: list[tuple[str, sp.Basic]], **extra) -> None:
        exprs = [(n, self.hoist(e)) for n, e in targets]
        self.flush_row()
        args = self._order(set().union(*(e.free_symbols for _, e in exprs)))
        fn = _cse(f"{self.kernel}_s{len(self.steps)}", args, exprs, self.counter)
        names = tuple(n for n, _ in targets)
        self.steps.append(Step(kind, fn, names[:-1] if extra.get("stash") else names, **extra))

    def _fold_linear(self, row_out, need):
        """For array backends: the sums a per-row result is linear in (with nothing beside
        them), folded into one sum taken after the others.  Softmax cross-entropy's
        ``-r0 + r2 * (m + log r1)`` becomes ``sum_k t_k * (m + log r1 - z_k)``, the
        log-softmax form: XLA's CPU backend runs
        that as fast as jax.nn.log_softmax, and the three independent sums of the same row
        about six times slower.  (A compiled loop prefers the three sums: one pass.)"""
        if len(row_out) != 1:
            return row_out, need
        name, F = row_out[0]
        used = set().union(*(self.deps(r) for r in need))
        coef = {r: sp.diff(F, r) for r in need if self.reductions[r].kind == "sum" and r not in used}
        linear = [r for r, c in coef.items() if r not in c.free_symbols]  # F is affine in r
        if len(linear) < 2:  # nothing to merge
            return row_out, need
        if any(coef[r].free_symbols & set(linear) for r in linear):
            return row_out, need
        rest = F.xreplace({r: 0 for r in linear})
        if rest != 0:
            # a term beside the sum (poly1's epsilon) would be added to per-class terms that cancel
            # (y (lse - z) at huge logits) and be lost: keep the separate sums there
            return row_out, need
        sym = sp.Symbol("_rf")
        summand = sp.Add(*(coef[r] * self.reductions[r].expr for r in linear))
        self.reductions[sym] = type(self.reductions[linear[0]])(sym, "sum", summand)
        need = [r for r in need if r not in linear] + [sym]
        return [(name, rest + sym)], self.closure([rest + sym])

    # scheduling -------------------------------------------------------------------
    def build(self) -> RowKernelIR:
        exprs = self.d.kernel(self.kernel)
        # a copy (after the kernel's derivation added its own reductions): _fold_linear adds one
        self.reductions = dict(self.d.calculus.reductions)
        # outputs are "_"-prefixed, like every kernel-internal name
        row_out = [(f"_{n}", self.guard(e)) for n, e in exprs.row]
        cls_out = [(f"_{n}", self.guard(e)) for n, e in exprs.cls]
        need = self.closure([e for _, e in row_out + cls_out])
        if self.fold and row_out and not cls_out:
            row_out, need = self._fold_linear(row_out, need)
        self.sums = set(need)  # the reductions this kernel computes
        stash = self.stash_candidate(cls_out, need)
        done: set[sp.Symbol] = set()
        while need:
            progressed = False
            for kinds in (("max", "shift"), ("pick", "sqrt"), ("sum",), ("pick", "sqrt")):
                ready = [r for r in need if self.reductions[r].kind in kinds and self.deps(r) <= done]
                if not ready:
                    continue
                progressed = True
                if kinds == ("pick", "sqrt"):
                    for r in [r for r in ready if self.reductions[r].kind == "sqrt"]:  # a row value
                        self.hoisted.append((r, sp.sqrt(self.reductions[r].expr)))
                    ready_picks = [r for r in ready if self.reductions[r].kind == "pick"]
                    for r in ready_picks:  # one lookup each
                        red = self.reductions[r]
                        self.loop("pick", [(r.name, self.guard(red.expr, False))], at=self.argmax_var(red.of))
                else:
                    kind = "max" if "max" in kinds else "sum"
                    targets = [(r.name, self.guard(self.reductions[r].expr, False)) for r in ready]
                    if kind == "sum" and self.kernel in VALUE_KERNELS:
                        targets = [(n, self.masked(sp.Symbol(n), e)) for n, e in targets]
                    argmax = tuple(self.argmax_var(r) if self.reductions[r].kind == "max" else "" for r in ready)
                    extra = {"argmax": argmax} if kind == "max" else {}
                    if kind == "sum" and stash is not None and any(e.has(stash) for _, e in targets):
                        self.loop(kind, targets + [(STASH, stash)], stash=True)
                        cls_out = [(n, _read_stash(e, stash)) for n, e in cls_out]
                        stash = None
                    else:
                        self.loop(kind, targets, **extra)
                done |= set(ready)
                need = [r for r in need if r not in done]
            if not progressed:
                raise DerivationError(f"{self.d.spec.name}: reductions depend on each other in a cycle")
        if cls_out:
            self.loop("out", cls_out)  # hoists into a row step before it
        if row_out:
            self.flush_row(row_out)
        return RowKernelIR(self.kernel, tuple(self.steps), tuple(n for n, _ in row_out),
                           tuple(n for n, _ in cls_out))


def _masked(t: sp.Basic, preds: set[sp.Symbol], class_syms: set[sp.Symbol]) -> sp.Basic | None:
    """The per-class weight ``a`` of a term ``a * f(x)`` (a target, a class weight: per class and
    free of the predictions), or None for a term without one."""
    if not isinstance(t, sp.Mul) or not t.free_symbols & preds:
        return None
    a = sp.Mul(*(f for f in t.args if not f.free_symbols & preds))
    return a if a.free_symbols & class_syms else None


def _unmasked_preds(summand: sp.Basic, preds: set[sp.Symbol], class_syms: set[sp.Symbol]) -> set[sp.Symbol]:
    """The predictions a summand reads outside weighted terms: a NaN in them reaches the row there."""
    return {x for t in sp.Add.make_args(summand) if _masked(t, preds, class_syms) is None
            for x in t.free_symbols & preds}


def _weightless_terms(summand: sp.Basic, preds: set[sp.Symbol], class_syms: set[sp.Symbol],
                      covered: set[sp.Symbol] = frozenset()) -> sp.Basic:
    """Each term ``a * f(x)`` of a loss's summand with a per-class weight ``a`` written ``0 if a == 0
    else a * f(x)``: a class the target gives no weight adds nothing, also where f(x) is infinite.
    So a logit of -inf masks its class, as torch's cross_entropy and nll_loss read one (0 * -inf
    would make the row NaN).  A NaN prediction still makes the row NaN: through ``covered``
    predictions another sum of the row reads anyway (softmax's sum of exponentials), else
    through a keepnan on the 0 (nll, whose only sum is this one)."""
    def term(t: sp.Basic) -> sp.Basic:
        a = _masked(t, preds, class_syms)
        if a is None:
            return t
        probes = sorted(t.free_symbols & preds - covered, key=sp.default_sort_key)
        return sp.Piecewise((keepnan(sp.S.Zero, *probes) if probes else sp.S.Zero, sp.Eq(a, 0)), (t, True))

    return sp.Add(*(term(t) for t in sp.Add.make_args(summand)))


def _read_stash(expr: sp.Basic, stash: sp.exp) -> sp.Basic:
    """``expr`` with the stashed ``exp(a)`` read back, and ``exp(n*a)`` for n = 2..4 as its
    power: SymPy writes the softmax Hessian's p_k**2 as ``exp(2*z - 2*m)``, a second exp
    per class where one multiply does (and over/underflows only where exp(n*a) does)."""
    st = sp.Symbol(STASH)
    a = stash.args[0]
    sub = {stash: st}
    for e in expr.atoms(sp.exp):
        n = sp.cancel(e.args[0] / a)
        if n.is_Integer and 2 <= n <= 4:
            sub[e] = st**n
    return expr.xreplace(sub)


def _natural(name: str):
    """Sort _t10 after _t9, inputs (no underscore) first."""
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (name.startswith("_"), head, int(tail) if tail else -1)


def build_row_ir(d: RowDerivation, kernels=KERNELS, fold_linear_sums: bool = False) -> RowIR:
    """``fold_linear_sums``: see ``_Builder._fold_linear`` (the per-row-only kernels of array
    backends)."""
    spec = d.spec
    index_input = next((i.name for i in spec.inputs if i.indices), None)
    built = {k: _Builder(d, k, fold_linear_sums).build() for k in kernels}
    check_printable(spec, {k: tuple(a for st in kern.steps for a in (*st.fn.temporaries, *st.fn.outputs))
                           for k, kern in built.items()})
    sel = {s.name: f"_a{m.name[2:]}" for m, s in d.calculus.sel.items()}
    return RowIR(
        name=spec.name,
        inputs=tuple(i.name for i in spec.inputs if i.shape in ("vector", "scalar")),
        class_inputs=tuple(i.name for i in spec.inputs if i.shape == "class"),
        index_input=index_input,
        predictions=tuple(i.name for i in spec.predictions),
        params=tuple(p.name for p in spec.params),
        size=spec.row.size,
        rank=d.rank,
        kernels=built,
        sel=sel,
    )
