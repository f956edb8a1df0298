"""The CUDA backend for row losses: print the row IR and fill templates/cuda/row_module.py.j2.

The steps of a row kernel (symloss/ir/row.py) become ``cuda.jit`` device
functions, printed by the Numba printer like the elementwise CUDA backend's
(libdevice's ``math.exp``/``math.log``, ``T``-typed constants).  The template
runs them over one row at a time with a *group* of threads: one warp per row
(small K) or one block per row (large K).  Thread ``t`` of a group owns the
classes ``t, t + width, t + 2 width, ...`` in every loop, so a thread only
ever reads back what it wrote itself, and a row's vector inputs can be kept in
(dynamic) shared memory after the first read without any synchronisation:
one read of the row from global memory, one write of its outputs.

Max and sum steps reduce across the group (warp shuffles on a GPU, a
shared-memory tree under numba's CUDA simulator, which has no shuffles).

**Online softmax.**  A ``max`` step followed by the ``row`` step that uses its
maximum and the ``sum`` step that uses those is fused into one loop when every
sum is either independent of the maximum m or scales as e^-m (d s / d m = -s,
checked symbolically here): each thread keeps its own running maximum and
rescales its e^-m sums by e^(m_old - m_new) whenever the maximum grows; the
group then takes the maximum M of the threads' maxima and adds the sums
rescaled by e^(m_t - M).  Softmax cross-entropy thus reads its logits once
for the max and the sums, not twice.

**Stash.**  The CPU IR keeps the softmax's exp of the sum loop in the output
buffer for the output loop (``_st``); here the output loop evaluates the sum
step's function again at its class (it inlines; the unused sums are dropped by
the compiler), so nothing is written twice.

Supported: IRs whose max steps track no argmax (no ``pick`` steps); the
kernels ``value``, ``grad``, ``value_and_grad``, ``hessian_diag`` and ``hvp``
(the full ``hessian`` stays on the CPU).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ...derive.row import RowDerivation
from ...errors import DerivationError
from ...ir.nan import keepnan
from ...ir.row import STASH, RowIR, RowKernelIR, Step, build_row_ir
from ...spec.model import LossSpec
from .primitives import DEVICE_HELPERS
from ...render.environment import environment
from ...render.escape import code
from ..numba_cpu.render import ScalarFunction
from ..numba_cpu.printer import NumbaPrinter

TEMPLATE = "cuda/row_module.py.j2"
KERNELS = ("value", "grad", "value_and_grad", "hessian_diag", "hvp")
# (name, group shape, row kept in shared memory)
LAYOUTS = (("warp", "warp", True), ("block", "block", True), ("stream", "block", False))


@dataclass
class GpuStep:
    kind: str  # "row" | "max" | "sum" | "fused" | "out"
    lines: tuple[str, ...] = ()  # row: the call
    loads: tuple[str, ...] = ()  # vector arrays (or tangents) this loop reads per class
    inits: tuple[str, ...] = ()  # before the class loop
    body: tuple[str, ...] = ()  # inside the class loop (k: the class, i: the slot in the chunk)
    after: tuple[str, ...] = ()  # after the class loop: group reductions, row values


@dataclass
class GpuKernel:
    name: str  # e.g. "value_and_grad_idx"
    kernel: str
    variant: str
    steps: list[GpuStep]
    args: str  # the full argument list (without the layout)
    cached: tuple[str, ...]  # vector arrays kept in shared memory, in slot order
    row_outputs: bool
    zero_stores: tuple[str, ...] = ()
    outs: tuple[str, ...] = field(default_factory=tuple)


def _step_ok(st: Step) -> bool:
    return st.kind != "pick" and not any(st.argmax)


def supports(spec: LossSpec, ir: RowIR | None = None) -> bool:
    """Row losses whose kernels need no argmax (every catalog softmax/sum-shaped loss)."""
    if spec.kind != "row":
        return False
    try:
        ir = ir or build_row_ir(RowDerivation(spec), KERNELS)
    except Exception:
        return False
    return all(_step_ok(st) for k in KERNELS for st in ir.kernels[k].steps)


def _full(fn) -> dict[str, sp.Basic]:
    """Each output of a step function as one expression of the function's arguments."""
    known: dict[sp.Symbol, sp.Basic] = {}
    for a in fn.temporaries:
        known[sp.Symbol(a.name)] = a.expr.xreplace(known)
    return {a.name: a.expr.xreplace(known) for a in fn.outputs}


def online_sums(steps: tuple[Step, ...], i: int) -> tuple[str, ...] | None:
    """For a max step at ``i`` followed by a row step and a sum step: per sum, "plain" (independent
    of the maximum) or "scaled" (proportional to e^-m); None when they cannot be fused."""
    if i + 2 >= len(steps):
        return None
    mx, row, sm = steps[i], steps[i + 1], steps[i + 2]
    if mx.kind != "max" or len(mx.targets) != 1 or any(mx.argmax) or row.kind != "row" or sm.kind != "sum":
        return None
    # symbols by name (the IR's symbols may carry assumptions)
    row_exprs = _full(row.fn)
    outs = _full(sm.fn)
    kinds = []
    for name in sm.fn.outputs[:len(sm.targets)]:
        e = outs[name.name]
        e = e.xreplace({s: row_exprs[s.name] for s in e.free_symbols if s.name in row_exprs})
        e = e.replace(lambda x: isinstance(x, keepnan), lambda x: x.args[0])  # equal to its value
        m = next((s for s in e.free_symbols if s.name == mx.targets[0]), None)
        if m is None:
            kinds.append("plain")
            continue
        d = sp.diff(e, m)
        if d == 0:
            kinds.append("plain")
        elif sp.simplify(d + e) == 0:
            kinds.append("scaled")
        else:
            return None
    return tuple(kinds)


class _Names:
    """How each symbol is read inside a class loop (``k`` the class, ``i`` its chunk slot) or per row."""

    def __init__(self, ir: RowIR, spec: LossSpec, variant: str):
        self.ir = ir
        self.variant = variant
        self.vector = [i.name for i in spec.inputs if i.shape == "vector"]
        self.scalar = {i.name for i in spec.inputs if i.shape == "scalar"}
        self.cls = {i.name: i.default for i in spec.inputs if i.shape == "class"}
        self.tangents = [f"_v_{p}" for p in ir.predictions]

    def is_array(self, name: str) -> bool:
        """Per-class values read from an (N, K) array."""
        if self.variant == "_idx" and name == self.ir.index_input:
            return False
        return name in self.vector or name in self.tangents

    def at(self, name: str) -> str:
        if self.variant == "_idx" and name == self.ir.index_input:
            return "(T(1) if _k == _tk else T(0))"
        if self.is_array(name):
            return f"{name}_[_i]"
        if name in self.cls:
            return f"({name}[_k] if has_{name} else T({float(self.cls[name])!r}))"
        return self.row(name)

    def row(self, name: str) -> str:
        if name in self.scalar:
            return f"{name}[_rc]"
        return name


def _call(fn, names: _Names, where: str) -> str:
    read = names.at if where == "class" else names.row
    return ", ".join([read(a) for a in fn.args] + ["T"])


def _loads(fns, names: _Names) -> tuple[str, ...]:
    used = {a for fn in fns for a in fn.args}
    return tuple(n for n in names.vector + names.tangents if n in used and names.is_array(n))


def _kernel(kname: str, k: RowKernelIR, ir: RowIR, spec: LossSpec, variant: str) -> GpuKernel:
    names = _Names(ir, spec, variant)
    preds = ir.predictions
    steps: list[GpuStep] = []
    stash_fn = next((st.fn for st in k.steps if st.stash), None)
    skip = 0
    for n, st in enumerate(k.steps):
        if skip:
            skip -= 1
            continue
        if st.kind == "row":
            steps.append(GpuStep("row", lines=(f"{', '.join(st.targets)}{',' if len(st.targets) == 1 else ''} = "
                                               f"{st.fn.name}({_call(st.fn, names, 'row')})",)))
            continue
        if st.kind == "max" and (kinds := online_sums(k.steps, n)) is not None:
            row, sm = k.steps[n + 1], k.steps[n + 2]
            m = st.targets[0]
            xs = [f"_x{j}" for j in range(len(sm.fn.outputs))]
            rt = ", ".join(row.targets) + ("," if len(row.targets) == 1 else "")
            inits = [f"{m} = -T(math.inf)", f"{rt} = {row.fn.name}({_call(row.fn, names, 'row')})"]
            inits += [f"{t} = T(0)" for t in sm.targets]
            body = [f"_y, = {st.fn.name}({_call(st.fn, names, 'class')})",
                    f"if _y > {m}:",
                    f"    _f = math.exp({m} - _y)"]
            body += [f"    {t} = {t} * _f" for t, kd in zip(sm.targets, kinds) if kd == "scaled"]
            body += [f"    {m} = _y", f"    {rt} = {row.fn.name}({_call(row.fn, names, 'row')})",
                     f"{', '.join(xs)}, = {sm.fn.name}({_call(sm.fn, names, 'class')})"]
            for t, x, kd in zip(sm.targets, xs, kinds):
                if kd == "scaled":  # a -inf class before any finite one adds nothing (e^(-inf - m) = 0)
                    body.append(f"if not (_y == -T(math.inf) and {m} == -T(math.inf)):")
                    body.append(f"    {t} += {x}")
                else:
                    body.append(f"{t} += {x}")
            after = [f"_mt = {m}", f"{m} = group_max({m}, T)",
                     f"_f = math.exp(_mt - {m}) if _mt > -T(math.inf) else T(0)"]
            for t, kd in zip(sm.targets, kinds):
                after.append(f"{t} = group_sum({t} * _f, T)" if kd == "scaled" else f"{t} = group_sum({t}, T)")
            after.append(f"{rt} = {row.fn.name}({_call(row.fn, names, 'row')})")
            steps.append(GpuStep("fused", loads=_loads([st.fn, sm.fn], names), inits=tuple(inits),
                                 body=tuple(body), after=tuple(after)))
            skip = 2
            continue
        if st.kind == "max":
            xs = [f"_x{j}" for j in range(len(st.targets))]
            inits = tuple(f"{t} = -T(math.inf)" for t in st.targets)
            body = [f"{', '.join(xs)}, = {st.fn.name}({_call(st.fn, names, 'class')})"]
            body += [f"{t} = {x} if {x} > {t} else {t}" for t, x in zip(st.targets, xs)]
            after = tuple(f"{t} = group_max({t}, T)" for t in st.targets)
            steps.append(GpuStep("max", loads=_loads([st.fn], names), inits=inits, body=tuple(body), after=after))
            continue
        if st.kind == "sum":
            xs = [f"_x{j}" for j in range(len(st.fn.outputs))]
            inits = tuple(f"{t} = T(0)" for t in st.targets)
            body = [f"{', '.join(xs)}, = {st.fn.name}({_call(st.fn, names, 'class')})"]
            body += [f"{t} += {x}" for t, x in zip(st.targets, xs)]
            after = tuple(f"{t} = group_sum({t}, T)" for t in st.targets)
            steps.append(GpuStep("sum", loads=_loads([st.fn], names), inits=inits, body=tuple(body), after=after))
            continue
        if st.kind == "out":
            body = []
            fns = [st.fn]
            if STASH in st.fn.args:
                if stash_fn is None:
                    raise DerivationError(f"{spec.name}.{kname}: a stashed value without its sum step")
                xs = [f"_z{j}" for j in range(len(stash_fn.outputs))]
                body.append(f"{', '.join(xs)}, = {stash_fn.name}({_call(stash_fn, names, 'class')})")
                body.append(f"{STASH} = {xs[-1]}")
                fns.append(stash_fn)
            outs = ", ".join(k.class_outputs) + ("," if len(k.class_outputs) == 1 else "")
            call_names = _Names(ir, spec, variant)
            args = ", ".join([(STASH if a == STASH else call_names.at(a)) for a in st.fn.args] + ["T"])
            body.append(f"{outs} = {st.fn.name}({args})")
            body += list(_stores(kname, preds))
            steps.append(GpuStep("out", loads=_loads(fns, names), body=tuple(body)))
            continue
        raise DerivationError(f"{spec.name}.{kname}: the CUDA row backend has no code for a '{st.kind}' step")
    cached = _loads([st.fn for st in k.steps] + ([stash_fn] if stash_fn else []), names)
    return GpuKernel(kname + variant, kname, variant, steps, "", cached, bool(k.row_outputs),
                     outs=_out_names(kname, preds))


def _out_names(kname: str, preds) -> tuple[str, ...]:
    prefix = {"grad": "_G", "value_and_grad": "_G", "hessian_diag": "_HD", "hvp": "_HV"}.get(kname)
    return tuple(f"{prefix}_{p}" for p in preds) if prefix else ()


def _stores(kname: str, preds) -> tuple[str, ...]:
    """Inside the output loop: write each per-class output (zero for an ignored row)."""
    local = {"grad": "_d", "value_and_grad": "_d", "hessian_diag": "_h", "hvp": "_hv"}[kname]
    return tuple(f"{o}[_base + _k] = _s * {local}_{p} if _live else T(0)"
                 for o, p in zip(_out_names(kname, preds), preds))


def _device_function(fn, printer: NumbaPrinter) -> ScalarFunction:
    lines = tuple(f"{a.name} = {printer.doprint(a.expr)}" for a in fn.temporaries + fn.outputs)
    ret = ", ".join(a.name for a in fn.outputs) + ("," if len(fn.outputs) == 1 else "")
    return ScalarFunction(fn.name, ", ".join(fn.args + ("T",)), lines, ret)


def module_model(d: RowDerivation, ir: RowIR | None = None) -> dict:
    spec = d.spec
    ir = ir or build_row_ir(d, KERNELS)
    if not supports(spec, ir):
        raise DerivationError(f"{spec.name}: the CUDA row backend has no kernels for argmax steps")
    printer = NumbaPrinter()
    variants = ("", "_idx") if ir.index_input else ("",)
    functions, kernels = [], []
    for kname in KERNELS:
        k = ir.kernels[kname]
        functions += [_device_function(st.fn, printer) for st in k.steps]
        for v in variants:
            kernels.append(_kernel(kname, k, ir, spec, v))
    cls = [i.name for i in spec.inputs if i.shape == "class"]
    arrays = {v: [("_ti_arr" if (v == "_idx" and x == ir.index_input) else x) for x in ir.inputs] for v in variants}
    for g in kernels:
        extra = [f"_v_{p}" for p in ir.predictions] if g.kernel == "hvp" else []
        head = arrays[g.variant] + [c for c in cls] + [f"has_{c}" for c in cls] + list(ir.params) + extra
        tail = ["_sw", "weighted", "scale", "norm"] + (["_ignore"] if g.variant else []) + ["_nk"]
        if g.row_outputs:
            tail += ["_out", "keep"]
        tail += list(g.outs)
        if g.row_outputs:
            tail += ["partials"]
        g.args = ", ".join(head + tail)
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
            "kernels_tuple": repr(KERNELS),
            "helpers": [DEVICE_HELPERS.get(h, printer.helpers[h]).strip() for h in sorted(printer.helpers)],
            "functions": functions,
            "kernels": kernels,
            "layouts": LAYOUTS,
            "cached": {f"{g.name}": len(g.cached) for g in kernels},
            "shape_of": ir.predictions[0],
            "size": ir.size,
            "index_name": ir.index_input or "",
        }),
    }


def render_row_module(d: RowDerivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(d))
