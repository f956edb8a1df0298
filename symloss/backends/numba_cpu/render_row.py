"""The CPU backend for row losses: print the row IR and fill templates/cpu/row_module.py.j2.

Every step of a row kernel becomes a small ``njit`` function of scalars
(compiled without fast-math, so no rewrite can undo a stable formula); the
template's loops call them, load the per-class arguments and accumulate.
Transcendental functions print as the math library's branch-free ``fexp``,
``flog``... so the class loops vectorise.

Names inside generated kernels start with ``_`` (spec names cannot), so they
never clash with inputs or parameters: ``_i`` row, ``_k`` class, ``_n`` rows,
``_nk`` classes, ``_rN`` reductions, ``_mN`` softmax shifts, ``_aN`` argmaxes,
``_hN`` hoisted per-row values, ``_tN`` common subexpressions.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ... import mathlib
from ...derive.row import KERNELS, RowDerivation
from ...ir.row import STASH, RowIR, RowKernelIR, Step, build_row_ir
from ...render.environment import environment
from ...render.escape import code
from .render import ScalarFunction
from .printer import NumbaPrinter, VectorPrinter

TEMPLATE = "cpu/row_module.py.j2"


@dataclass(frozen=True)
class PrintedStep:
    kind: str
    fn: str  # function name
    targets: str  # "a, b" on the left of the call
    row_args: str  # call arguments when evaluated once per row
    class_args: dict  # variant -> call arguments inside the class loop (index _k)
    pick_args: dict  # variant -> call arguments at the argmax class
    inits: tuple[str, ...]  # lines before a loop
    updates: tuple[str, ...]  # lines inside a loop after the call
    locals: str  # "_x0, _x1" the call's results inside a loop
    lanes: tuple = ()  # max steps without argmax: per lane (variant -> call args, updates); see LANES
    lane_inits: tuple[str, ...] = ()
    lane_combine: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrintedKernel:
    name: str
    steps: tuple[PrintedStep, ...]
    row_outputs: tuple[str, ...]
    class_outputs: tuple[str, ...]
    extra_args: str  # kernel-specific array arguments (tangents), with trailing ", "
    out_args: str  # output buffers, with trailing ", " (possibly empty)
    stores: tuple[str, ...]  # inside the out loop: writes of the class outputs
    zero_stores: tuple[str, ...]  # for an ignored row: zero every output of the row
    returns_total: bool


def _function(fn, printer: NumbaPrinter) -> ScalarFunction:
    lines = tuple(f"{a.name} = {printer.doprint(a.expr)}" for a in fn.temporaries + fn.outputs)
    return ScalarFunction(fn.name, ", ".join(fn.args + ("T",)), lines, ", ".join(a.name for a in fn.outputs))


class _Names:
    """How each symbol name is read inside a kernel, per variant ("" arrays, "_idx" class indices)."""

    def __init__(self, ir: RowIR, d: RowDerivation):
        spec = d.spec
        self.ir = ir
        self.vector = {i.name for i in spec.inputs if i.shape == "vector"}
        self.scalar = {i.name for i in spec.inputs if i.shape == "scalar"}
        self.cls = {i.name: i.default for i in spec.inputs if i.shape == "class"}
        self.tangents = {f"_v_{p}" for p in ir.predictions}
        self.sel = ir.sel
        self.stash_buffer = ""  # the kernel's first per-class output buffer (set per kernel)
        self.lanes = True  # a max over the classes of one row runs in LANES lanes

    def cell(self, name: str) -> str:
        """Where a per-row value (a reduction, a hoisted value, an argmax) lives."""
        return name

    def stash(self, value: str) -> str:
        """The line keeping a stashed per-class value for the out loop."""
        return f"{self.stash_buffer}[_i, _k] = {value}"

    def at(self, name: str, variant: str, k: str) -> str:
        """The code for ``name`` at class ``k`` of row ``_i``."""
        if name == STASH:
            return f"{self.stash_buffer}[_i, {k}]"
        if variant == "_idx" and name == self.ir.index_input:
            return f"(T(1) if {k} == _ti else T(0))"
        if name in self.vector or name in self.tangents:
            return f"{name}[_i, {k}]"
        if name in self.cls:
            return f"({name}[{k}] if {name} is not None else T({float(self.cls[name])!r}))"
        if name in self.sel:
            return f"(T(1) if {k} == {self.sel[name]} else T(0))"
        return self.row(name)

    def row(self, name: str) -> str:
        if name in self.scalar:
            return f"{name}[_i]"
        return name


# A maximum over classes does not vectorise as one running max (LLVM needs
# fast-math to reorder a max reduction); LANES independent running maxima over
# consecutive classes do, and are merged after the loop.
LANES = 16


def _lanes(st: Step, names: _Names, variants, locals_):
    """Unrolled lane code for a max step that tracks no argmax (softmax shifts)."""
    if st.kind != "max" or any(st.argmax):
        return (), (), ()
    lanes, inits, combine = [], [], []
    for lane in range(LANES):
        k = f"_k0 + {lane}" if lane else "_k0"
        args = {v: ", ".join([names.at(a, v, k) for a in st.fn.args] + ["T"]) for v in variants}
        outs = [f"_x{n}_{lane}" for n in range(len(st.targets))]
        ups = tuple(f"{t}_{lane} = {x} if {x} > {t}_{lane} else {t}_{lane}" for t, x in zip(st.targets, outs))
        lanes.append((args, ", ".join(outs), ups))
        inits += [f"{t}_{lane} = -T(math.inf)" for t in st.targets]
    for t in st.targets:
        combine.append(f"{t} = {t}_0")
        combine += [f"{t} = {t}_{lane} if {t}_{lane} > {t} else {t}" for lane in range(1, LANES)]
    return tuple(lanes), tuple(inits), tuple(combine)


def _step(st: Step, names: _Names, variants) -> PrintedStep:
    args, cell = st.fn.args, names.cell
    class_args = {v: ", ".join([names.at(a, v, "_k") for a in args] + ["T"]) for v in variants}
    pick_args = ({v: ", ".join([names.at(a, v, cell(st.at)) for a in args] + ["T"]) for v in variants}
                 if st.at else {})
    row_args = ", ".join([names.row(a) for a in args] + ["T"])
    locals_ = [f"_x{n}" for n in range(len(st.targets) + st.stash)]
    inits, updates = [], []
    if st.stash:  # kept for the out loop
        updates.append(names.stash(locals_[-1]))
    if st.kind == "max":
        for t, x, am in zip(map(cell, st.targets), locals_, st.argmax):
            inits.append(f"{t} = -T(math.inf)")
            if am:
                # NaN-propagating argmax: a NaN class wins and stays
                inits.append(f"{cell(am)} = 0")
                updates += [f"if {x} > {t} or ({x} != {x} and {t} == {t}):", f"    {t} = {x}", f"    {cell(am)} = _k"]
            else:
                # the softmax shift may skip NaN: it then flows through the sums
                updates.append(f"{t} = {x} if {x} > {t} else {t}")
    elif st.kind == "sum":
        for t, x in zip(map(cell, st.targets), locals_):
            inits.append(f"{t} = T(0)")
            updates.append(f"{t} += {x}")
    lanes, lane_inits, lane_combine = _lanes(st, names, variants, locals_) if names.lanes else ((), (), ())
    targets = st.targets if st.kind == "out" else tuple(map(cell, st.targets))  # out: per-class locals
    return PrintedStep(st.kind, st.fn.name, ", ".join(targets), row_args, class_args, pick_args,
                       tuple(inits), tuple(updates), ", ".join(locals_), lanes, lane_inits, lane_combine)


# Class-major kernels: (K, N) arrays, as LightGBM keeps multi-class scores and reads its
# gradients back (F-ordered (N, K)).  They run the same steps over a block of rows at a
# time, the loops over the block innermost: each per-row value lives in a block array,
# and the rows of a block vectorise across (at K = 10 the class loops are too short to).
# Copying LightGBM's layout to and from rows cost as much as the row kernel itself.
CLASS_MAJOR = ("grad_hessian_diag",)  # the boosting libraries' call
CM_BLOCK = 64  # rows per block: K x 64 stashed values stay in L1
CM_CHUNK = 4096  # rows per parallel task (each allocates its block arrays once)


class _ClassMajorNames(_Names):
    def __init__(self, ir: RowIR, d: RowDerivation, kernel: RowKernelIR):
        super().__init__(ir, d)
        self.lanes = False
        self.floats = tuple(dict.fromkeys(t for st in kernel.steps if st.kind != "out" for t in st.targets))
        self.ints = tuple(dict.fromkeys(a for st in kernel.steps for a in st.argmax if a))
        self.stashes = any(st.stash for st in kernel.steps)

    def cell(self, name: str) -> str:
        return f"{name}[_b]"

    def stash(self, value: str) -> str:
        return f"_stb[_k, _b] = {value}"

    def at(self, name: str, variant: str, k: str) -> str:
        if name == STASH:
            return f"_stb[{k}, _b]"
        if variant == "_idx" and name == self.ir.index_input:
            return f"(T(1) if {k} == _ti_arr[_i] else T(0))"
        if name in self.vector or name in self.tangents:
            return f"{name}[{k}, _i]"
        if name in self.sel:
            return f"(T(1) if {k} == {self.sel[name]}[_b] else T(0))"
        return super().at(name, variant, k)

    def row(self, name: str) -> str:
        if name in self.floats or name in self.ints:
            return f"{name}[_b]"
        return super().row(name)

    def blocks(self) -> tuple[str, ...]:
        lines = [f"{t} = np.empty(_CM_BLOCK, T)" for t in self.floats]
        lines += [f"{a} = np.empty(_CM_BLOCK, np.int64)" for a in self.ints]
        if self.stashes:
            lines.append("_stb = np.empty((_nk, _CM_BLOCK), T)")
        return tuple(lines)


@dataclass(frozen=True)
class PrintedClassMajor:
    name: str
    steps: tuple[PrintedStep, ...]
    blocks: tuple[str, ...]  # the per-row block arrays
    out_args: str
    stores: dict  # variant -> lines inside the out loop


def _class_major(kname: str, ir: RowIR, d: RowDerivation, variants) -> PrintedClassMajor:
    """grad_hessian_diag over class-major arrays; the Hessian floored at ``_floor`` times the row's
    weight in the same pass (the boosting "clip" policy: LightGBM gets float32 outputs)."""
    k = ir.kernels[kname]
    names = _ClassMajorNames(ir, d, k)
    gs, hs = [f"_G_{p}" for p in ir.predictions], [f"_HD_{p}" for p in ir.predictions]
    stores = {}
    for v in variants:
        # no floor (-inf) stays none whatever the weight's sign (-inf * -w is +inf)
        lines = ["_hf = _floor if _sw is None or _floor == -T(math.inf) else _floor * _sw[_i]"]
        for g, h, p in zip(gs, hs, ir.predictions):
            if v == "_idx":  # an ignored row: zero gradient, Hessian at the floor
                lines += [f"{g}[_k, _i] = T(0) if _ti_arr[_i] == _ignore else _s * _d_{p}",
                          f"_hv = T(0) if _ti_arr[_i] == _ignore else _s * _h_{p}"]
            else:
                lines += [f"{g}[_k, _i] = _s * _d_{p}", f"_hv = _s * _h_{p}"]
            lines.append(f"{h}[_k, _i] = _hf if _hv < _hf else _hv")  # NaN stays NaN
        stores[v] = tuple(lines)
    return PrintedClassMajor(kname, tuple(_step(st, names, variants) for st in k.steps), names.blocks(),
                             "".join(f"{o}, " for o in gs + hs), stores)


def _outputs(kernel: str, ir: RowIR):
    """(extra array args, output args, stores in the out loop, zero stores, returns total)."""
    preds = ir.predictions
    P = len(preds)
    if kernel == "value":
        return "", "_out, ", (), (), True
    if kernel in ("grad", "value_and_grad"):
        outs = [f"_G_{p}" for p in preds]
        stores = tuple(f"{o}[_i, _k] = _s * _d_{p}" for o, p in zip(outs, preds))
        zero = tuple(f"{o}[_i, :] = T(0)" for o in outs)
        lead = "_out, " if kernel == "value_and_grad" else ""
        return "", lead + "".join(f"{o}, " for o in outs), stores, zero, kernel == "value_and_grad"
    if kernel == "hessian_diag":
        outs = [f"_HD_{p}" for p in preds]
        return ("", "".join(f"{o}, " for o in outs), tuple(f"{o}[_i, _k] = _s * _h_{p}" for o, p in zip(outs, preds)),
                tuple(f"{o}[_i, :] = T(0)" for o in outs), False)
    if kernel == "grad_hessian_diag":  # gradient buffers first: the stash lives in one of them
        gs, hs = [f"_G_{p}" for p in preds], [f"_HD_{p}" for p in preds]
        stores = tuple(f"{o}[_i, _k] = _s * _d_{p}" for o, p in zip(gs, preds))
        stores += tuple(f"{o}[_i, _k] = _s * _h_{p}" for o, p in zip(hs, preds))
        return "", "".join(f"{o}, " for o in gs + hs), stores, tuple(f"{o}[_i, :] = T(0)" for o in gs + hs), False
    if kernel == "hvp":
        outs = [f"_HV_{p}" for p in preds]
        return ("".join(f"_v_{p}, " for p in preds), "".join(f"{o}, " for o in outs),
                tuple(f"{o}[_i, _k] = _s * _hv_{p}" for o, p in zip(outs, preds)),
                tuple(f"{o}[_i, :] = T(0)" for o in outs), False)
    if kernel == "hessian":
        stores = []
        for p in range(P):
            for q in range(P):
                stores.append(f"_E[{p * P + q}, _k] = _e_{preds[p]}_{preds[q]}")
        for p in range(P):
            for r in range(ir.rank):
                stores.append(f"_A[{p * ir.rank + r}, _k] = _a_{preds[p]}_{r}")
                stores.append(f"_B[{p * ir.rank + r}, _k] = _b_{preds[p]}_{r}")
        return "", "_H, ", tuple(stores), ("_H[_i, :, :] = T(0)",), False
    raise ValueError(kernel)


def module_model(d: RowDerivation, ir: RowIR | None = None) -> dict:
    spec = d.spec
    ir = ir or build_row_ir(d)
    printer = VectorPrinter()  # the CPU printer: math library and vector helpers
    variants = ("", "_idx") if ir.index_input else ("",)
    names = _Names(ir, d)
    functions, kernels = [], []
    for kname in KERNELS:
        k: RowKernelIR = ir.kernels[kname]
        functions += [_function(st.fn, printer) for st in k.steps]
        extra, outs, stores, zero, total = _outputs(kname, ir)
        names.stash_buffer = next((o for o in outs.split(", ") if o and o not in ("_out", "_H")), "")
        kernels.append(PrintedKernel(kname, tuple(_step(st, names, variants) for st in k.steps), k.row_outputs,
                                     k.class_outputs, extra, outs, stores, zero, total))
    shape_of = ir.predictions[0]  # never given as class indices
    index_arrays = [(v, ", ".join(("_ti_arr" if (v == "_idx" and x == ir.index_input) else x) for x in ir.inputs))
                    for v in variants]
    # spec text, printed through |pydoc / |pycomment; the name and kind are validated
    # identifiers (the template's check refuses anything else); the rest is code symloss wrote
    return {
        "name": spec.name,
        "title": spec.title,
        "source": spec.source if spec.source.startswith("<") else f"specs/{spec.name}.toml",
        "formula": sp.sstr(spec.loss),
        "signature": ", ".join(ir.inputs + ir.class_inputs + ir.params),
        **code({
            "inputs_tuple": repr(ir.inputs),
            "class_inputs": repr({i.name: i.default for i in spec.inputs if i.shape == "class"}),
            "index_input": repr(ir.index_input),
            "predictions_tuple": repr(ir.predictions),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "rank": ir.rank,
            "helpers": [printer.helpers[h].strip() for h in sorted(printer.helpers)],
            "library": mathlib.source(sorted(printer.library)) if printer.library else "",
            "functions": functions,
            "kernels": kernels,
            "variants": [{"suffix": v, "arrays": a} for v, a in index_arrays],
            "class_args": "".join(f"{c}, " for c in ir.class_inputs),
            "param_args": "".join(f"{p}, " for p in ir.params),
            "shape_of": shape_of,
            "size": ir.size,
            "n_preds": len(ir.predictions),
            "index_name": ir.index_input or "",
            "lanes": LANES,
            "class_major": [_class_major(kname, ir, d, variants) for kname in CLASS_MAJOR],
            "cm_block": CM_BLOCK,
            "cm_chunk": CM_CHUNK,
        }),
    }


def render_row_module(d: RowDerivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(d))
