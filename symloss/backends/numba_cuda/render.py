"""The CUDA backend: print the IR with the Numba printer and fill templates/cuda.

The per-element math is the CPU backend's: the same printer, the same
``T``-typed constants and the same helper sources, compiled as numba-cuda
device functions instead of ``numba.njit`` functions.  The loops differ:
grid-stride kernels with a block reduction (see templates/cuda/module.py.j2).

The helpers below call the module's ``fexp`` and ``fdiv``: ``math.exp`` and
``/`` unless the module's ``FAST_F32`` switches float32 to the hardware
approximations (templates/cuda/module.py.j2).

One more difference: a helper that branches on its argument with costly math
on both sides makes a warp run both sides whenever its lanes disagree.  For
those, ``DEVICE_HELPERS`` has a GPU source that computes the shared costly
part once and picks between cheap values (a select, not a branch).  Each
returns bit for bit what the primitive's own helper returns (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...derive import Derivation
from ...errors import DerivationError
from ...ir import LossIR, build_ir
from ...spec.model import LossSpec
from ...render.environment import environment
from ...render.escape import code
from ..numba_cpu.render import print_function
from ..numba_cpu.printer import NumbaPrinter
from .primitives import DEVICE_HELPERS

TEMPLATE = "cuda/module.py.j2"
KINDS = ("elementwise",)  # loss kinds this backend emits kernels for



@dataclass(frozen=True)
class Store:
    out: str  # output array argument
    value: str  # local variable holding the unscaled result


def supports(spec: LossSpec) -> bool:
    return spec.kind in KINDS


def hessian_outputs(ir: LossIR) -> tuple[tuple[int, int], ...]:
    """Every (i, j) of the P x P Hessian, row-major: the kernels write both halves."""
    k = len(ir.predictions)
    return tuple((i, j) for i in range(k) for j in range(k))


def module_model(derivation: Derivation, ir: LossIR | None = None) -> dict:
    """Everything templates/cuda needs, already printed."""
    spec = derivation.spec
    if not supports(spec):
        raise DerivationError(
            f"{spec.name}: the CUDA backend has kernels for {', '.join(KINDS)} losses, not '{spec.kind}'"
        )
    ir = ir or build_ir(derivation)
    printer = NumbaPrinter()
    scalar_args = ", ".join(ir.inputs + ir.params + ("T",))
    functions = [print_function(ir.kernels[k], scalar_args, printer) for k in ir.kernels]
    preds = ir.predictions
    grad_stores = [Store(f"g_{p}", f"d_{p}") for p in preds]
    # The IR has the upper triangle (i <= j); the lower one repeats it.
    hess_stores = [
        Store(f"h_{preds[i]}_{preds[j]}_out", f"h_{preds[min(i, j)]}_{preds[max(i, j)]}")
        for i, j in hessian_outputs(ir)
    ]
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
            "predictions_tuple": repr(preds),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "hessian_pairs": repr(ir.hessian_pairs),
            "hessian_outputs": repr(hessian_outputs(ir)),
            "helpers": [DEVICE_HELPERS.get(k, printer.helpers[k]).strip() for k in sorted(printer.helpers)],
            "functions": functions,
            "data_args": ", ".join(ir.inputs),
            "inputs": list(ir.inputs),
            "local_items": ", ".join(f"{x}_[_k]" for x in ir.inputs),
            "param_args": "".join(f"{p}, " for p in ir.params),
            "size_of": preds[0],
            "grad_stores": grad_stores,
            "hess_stores": hess_stores,
            "grad_names": ", ".join(f"d_{p}" for p in preds),
            "grad_outs": ", ".join(s.out for s in grad_stores),
            "hess_names": ", ".join(f"h_{preds[i]}_{preds[j]}" for i, j in ir.hessian_pairs),
            "hess_outs": ", ".join(s.out for s in hess_stores),
            "param_stores": [Store(f"p_{p}", f"dp_{p}") for p in ir.param_grads],
            "param_grads_tuple": repr(ir.param_grads),
            "param_grad_names": ", ".join(f"dp_{p}" for p in ir.param_grads),
            "param_grad_outs": ", ".join(f"p_{p}" for p in ir.param_grads),
        }),
    }


def render_derivation(d) -> str | None:
    """Elementwise modules only: row losses' CUDA kernels are rendered on demand (runtime_row.py)."""
    return render_module(d) if d.spec.kind != "row" and supports(d.spec) else None


def render_module(derivation: Derivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(derivation))
