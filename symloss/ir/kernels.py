"""Build the IR: for each kernel, ordered (name, expression) assignments and outputs.

The IR is backend-neutral SymPy; a backend's printer turns it into code.  CSE
runs once per kernel over all its outputs, so a fused kernel shares work
between the loss and its derivatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..derive import Derivation
from ..derive.representable import float64_problem
from ..errors import DerivationError
from .nan import guard_branches

# Kernel name -> which outputs it produces.
KERNELS = ("value", "grad", "value_and_grad", "hessian", "grad_hessian")
PARAM_KERNEL = "param_grad"  # only for losses with differentiable parameters


@dataclass(frozen=True)
class Assignment:
    name: str
    expr: sp.Basic


@dataclass(frozen=True)
class KernelIR:
    name: str
    temporaries: tuple[Assignment, ...]  # after CSE, in dependency order
    outputs: tuple[Assignment, ...]  # named results, in order


@dataclass(frozen=True)
class LossIR:
    name: str
    inputs: tuple[str, ...]
    predictions: tuple[str, ...]
    params: tuple[str, ...]
    hessian_pairs: tuple[tuple[int, int], ...]
    kernels: dict[str, KernelIR]
    param_grads: tuple[str, ...] = ()  # differentiable parameters, in declared order


def _even_powers(expr: sp.Basic) -> sp.Basic:
    """(-y + yhat)^2 and (y - yhat)^2 as one expression, so CSE computes it once
    (exact: a difference and its negative round alike)."""
    return expr.replace(
        lambda e: isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp % 2 == 0 and e.base.could_extract_minus_sign(),
        lambda e: sp.Pow(-e.base, e.exp),
    )


def _kernel(name: str, outputs: list[tuple[str, sp.Basic]]) -> KernelIR:
    exprs = [_even_powers(e) for _, e in outputs]
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), order="canonical")
    temps = tuple(Assignment(str(s), e) for s, e in replacements)
    outs = tuple(Assignment(n, e) for (n, _), e in zip(outputs, reduced))
    return KernelIR(name, temps, outs)


def check_printable(spec, assignments: dict[str, tuple[Assignment, ...]]) -> None:
    """Every constant of every kernel is a real float64 (a derivative can square a large one)."""
    for kernel, assigned in assignments.items():
        for a in assigned:
            problem = float64_problem(a.expr)
            if problem:
                raise DerivationError(f"{spec.source}: field 'loss': the {kernel} kernel's {a.name}: {problem}")


def build_ir(derivation: Derivation) -> LossIR:
    spec = derivation.spec
    d = derivation.stable
    data = {spec.symbols[i.name] for i in spec.inputs}
    preds = tuple(i.name for i in spec.predictions)
    pairs = tuple(sorted(d.hessian))
    loss = [("loss", guard_branches(d.loss, data))]
    grads = [(f"d_{p}", guard_branches(g, data)) for p, g in zip(preds, d.grads)]
    hess = [(f"h_{preds[i]}_{preds[j]}", guard_branches(d.hessian[(i, j)], data)) for i, j in pairs]
    kernels = {
        "value": _kernel("value", loss),
        "grad": _kernel("grad", grads),
        "value_and_grad": _kernel("value_and_grad", loss + grads),
        "hessian": _kernel("hessian", hess),
        "grad_hessian": _kernel("grad_hessian", grads + hess),
    }
    param_grads = tuple(p.name for p in derivation.param_wrt)
    if param_grads:
        kernels[PARAM_KERNEL] = _kernel(
            PARAM_KERNEL, [(f"dp_{p}", guard_branches(e, data)) for p, e in zip(param_grads, d.params)]
        )
    check_printable(spec, {k: (*kern.temporaries, *kern.outputs) for k, kern in kernels.items()})
    return LossIR(
        name=spec.name,
        inputs=tuple(i.name for i in spec.inputs),
        predictions=preds,
        params=tuple(p.name for p in spec.params),
        hessian_pairs=pairs,
        kernels=kernels,
        param_grads=param_grads,
    )
