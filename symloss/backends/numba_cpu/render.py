"""The CPU backend: print the IR with the Numba printer and fill templates/cpu."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...derive import Derivation
from ...ir import KernelIR, LossIR, build_ir
from ...render.environment import environment
from ...render.escape import code
from ... import mathlib
from .printer import NumbaPrinter, VectorPrinter

TEMPLATE = "cpu/module.py.j2"


@dataclass(frozen=True)
class ScalarFunction:
    """One kernel's printed body; the CPU and CUDA templates wrap it in a function."""

    name: str
    args: str
    body: tuple[str, ...]  # printed "name = code" lines
    returns: str


@dataclass(frozen=True)
class Slot:
    name: str  # local variable in the loop
    out: str  # output array argument


def print_function(kernel: KernelIR, args: str, printer: NumbaPrinter) -> ScalarFunction:
    body = tuple(f"{a.name} = {printer.doprint(a.expr)}" for a in kernel.temporaries + kernel.outputs)
    return ScalarFunction(kernel.name, args, body, ", ".join(a.name for a in kernel.outputs))


def module_model(derivation: Derivation, ir: LossIR | None = None) -> dict:
    """Everything templates/cpu needs, already printed."""
    spec = derivation.spec
    ir = ir or build_ir(derivation)
    printer = VectorPrinter()
    param_args = "".join(f"{p}, " for p in ir.params)
    scalar_args = ", ".join(ir.inputs + ir.params + ("T",))
    scalars = [print_function(ir.kernels[k], scalar_args, printer) for k in ir.kernels]
    grads = [Slot(f"d_{p}", f"g_{p}") for p in ir.predictions]
    hess = [Slot(f"h_{ir.predictions[i]}_{ir.predictions[j]}", f"h_{ir.predictions[i]}_{ir.predictions[j]}_out")
            for i, j in ir.hessian_pairs]
    # spec text, printed through |pydoc / |pycomment; the name and kind are validated
    # identifiers (the template's check refuses anything else); the rest is code symloss wrote
    return {
        "name": spec.name,
        "kind": spec.kind,
        "title": spec.title,
        "source": spec.source if spec.source.startswith("<") else f"specs/{spec.name}.toml",
        "signature": ", ".join(ir.inputs + ir.params),
        "formula": sp.sstr(spec.loss),
        **code({
            "inputs_tuple": repr(ir.inputs),
            "predictions_tuple": repr(ir.predictions),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "hessian_pairs": repr(ir.hessian_pairs),
            "helpers": [printer.helpers[k].strip() for k in sorted(printer.helpers)],
            "library": mathlib.source(sorted(printer.library)).strip() if printer.library else "",
            "scalars": scalars,
            "data_args": ", ".join(ir.inputs),
            "data_items": ", ".join(f"{x}[i]" for x in ir.inputs),
            "param_args": param_args,
            "size_of": ir.predictions[0],
            "grads": grads,
            "hess": hess,
            "grad_names": ", ".join(g.name for g in grads),
            "grad_outs": ", ".join(g.out for g in grads),
            "hess_names": ", ".join(h.name for h in hess),
            "hess_outs": ", ".join(h.out for h in hess),
            "param_grads": [Slot(f"dp_{p}", f"p_{p}") for p in ir.param_grads],
            "param_grads_tuple": repr(ir.param_grads),
            "param_grad_names": ", ".join(f"dp_{p}" for p in ir.param_grads),
            "param_grad_outs": ", ".join(f"p_{p}" for p in ir.param_grads),
        }),
    }


def render_derivation(d) -> str:
    """The module for a Derivation, or a RowDerivation (the row template)."""
    if d.spec.kind == "row":
        from .render_row import render_row_module

        return render_row_module(d)
    return render_module(d)


def render_module(derivation: Derivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(derivation))
