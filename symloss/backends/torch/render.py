"""The torch backend: print the IR with :class:`TorchPrinter` and fill templates/torch.

Elementwise losses: the IR's value, grad, hessian (and param_grad) kernels
become plain functions of tensors.  Row losses: each step of the row IR
becomes a function of tensors, and the kernel body (built here, looped over
by the template) evaluates it on (N, K) class tensors and (N, 1) row tensors,
reducing over the last axis where the step is a max, sum or pick.  The
autograd glue in the templates wires value -> grad -> hessian / hvp.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...derive import Derivation, derive, nonsmooth
from ...derive.derivation import without_branches_on
from ...derive.rewrites import finalize, finish
from ...errors import DerivationError
from ...ir import build_ir
from ...ir.kernels import _kernel
from ...ir.nan import guard_branches
from ...render.environment import environment
from ...render.escape import code
from .. import require
from .printer import TorchPrinter

TEMPLATE = "torch/module.py.j2"
ROW_TEMPLATE = "torch/row_module.py.j2"
ROW_KERNELS = ("value", "grad", "hvp")
# the torch module also fuses value and gradient for its first-order backward (not jax's)
TORCH_ROW_KERNELS = ROW_KERNELS + ("value_and_grad",)
ELEMENTWISE_KERNELS = ("value", "grad", "hessian", "param_grad")
# and the loss with its gradient, sharing their subexpressions, for Total's forward (not jax's)
TORCH_ELEMENTWISE_KERNELS = ELEMENTWISE_KERNELS + ("value_and_grad",)


@dataclass(frozen=True)
class Function:
    """One printed function: ``def name(args): body; return returns``."""

    name: str
    args: str
    body: tuple[str, ...]
    returns: str


def _function(name, args, temporaries, outputs, printer, tuple_out=True) -> Function:
    body = tuple(f"{a.name} = {printer.doprint(a.expr)}" for a in tuple(temporaries) + tuple(outputs))
    names = [a.name for a in outputs]
    returns = ", ".join(names) + ("," if tuple_out and len(names) == 1 else "")
    return Function(name, args, body, returns)


def _text(spec, signature: str) -> dict:
    """Spec text for the docstring and header: plain str, which the templates escape (|pydoc, |pycomment)."""
    return {"title": spec.title, "source": _source(spec), "formula": sp.sstr(spec.loss),
            "doc_signature": str(signature)}


def _source(spec) -> str:
    return spec.source if spec.source.startswith("<") else f"specs/{spec.name}.toml"


def _mixed(derivation: Derivation) -> list[tuple[str, sp.Basic]]:
    """d^2 L / (d prediction d parameter), symbolic, for every differentiable parameter:
    the double backward of a loss whose parameter is an ``nn.Parameter``.  Branches
    at exact parameter values (alpha == 2) are limits of the others and left out,
    as for the parameter gradient itself."""
    spec = derivation.spec
    data = frozenset(spec.symbols[i.name] for i in spec.inputs)
    out = []
    for pred, g in zip(derivation.wrt, derivation.stable.grads):
        for p in derivation.param_wrt:
            e = nonsmooth.derivative(without_branches_on(g, p), p)
            e = finalize(finish(e, data, frozenset(derivation.wrt))[0])[0]
            if e.has(sp.Derivative, sp.Subs):
                raise DerivationError(f"{spec.name}: no closed form for d^2 L / d{pred} d{p}")
            out.append((f"m_{pred}_{p}", guard_branches(e, set(data))))
    return out


def module_model(derivation: Derivation) -> dict:
    spec = derivation.spec
    ir = build_ir(derivation)
    printer = TorchPrinter()
    args = ", ".join(ir.inputs + ir.params)
    functions = [
        _function(k, args, ir.kernels[k].temporaries, ir.kernels[k].outputs, printer, tuple_out=k != "value")
        for k in TORCH_ELEMENTWISE_KERNELS if k in ir.kernels
    ]
    if ir.param_grads:
        mixed = _kernel("mixed", _mixed(derivation))
        functions.append(_function("mixed", args, mixed.temporaries, mixed.outputs, printer))
    require("torch", [a.expr for k in ir.kernels.values() for a in k.temporaries + k.outputs], spec.name)
    signature = ", ".join(ir.inputs + ir.params)
    return {
        **_text(spec, signature),
        **code({
        "name": spec.name,
        "signature": signature,
        "inputs_tuple": repr(ir.inputs),
        "predictions_tuple": repr(ir.predictions),
        "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
        "param_grads_tuple": repr(ir.param_grads),
        "hessian_pairs": repr(ir.hessian_pairs),
        "n_args": len(ir.inputs + ir.params),
        "n_total_args": len(ir.inputs + ir.params) + 1,  # Total's: the weight first
        # Total's needs_input_grad (w first): does any prediction / differentiable parameter need one
        "total_preds_need": " or ".join(f"need[{ir.inputs.index(p) + 1}]" for p in ir.predictions),
        "total_params_need": " or ".join(f"need[{len(ir.inputs) + list(ir.params).index(p) + 1}]"
                                         for p in ir.param_grads) or "False",
        "helpers": [printer.helpers[k].strip() for k in sorted(printer.helpers)],
        "functions": functions,
        }),
    }


def render_module(derivation: Derivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(derivation))


# row losses -----------------------------------------------------------------------


def _row_body(kernel, ir, sel_vars) -> list[str]:
    """The lines of one row kernel: call each step's function, reduce over classes."""
    lines = []
    for st in kernel.steps:
        call = f"{st.fn.name}({', '.join(st.fn.args)})"
        n_out = len(st.fn.outputs)
        locals_ = [f"_x{i}" for i in range(n_out)]
        if st.kind in ("row", "out"):
            lines.append(f"{', '.join(st.targets)}{',' if len(st.targets) == 1 else ''} = {call}")
            continue
        lines.append(f"{', '.join(locals_)}{',' if n_out == 1 else ''} = {call}")
        if st.kind == "max":
            for t, x, am in zip(st.targets, locals_, st.argmax):
                lines.append(f"{x} = _full({x}, _like)")
                lines.append(f"{t} = torch.amax({x}, -1, keepdim=True)")
                if am:
                    lines.append(f"{am} = torch.argmax({x}, -1, keepdim=True)")
                    for sel in sel_vars.get(am, ()):
                        lines.append(f"{sel} = (_classes == {am}).to(_like.dtype)")
        elif st.kind == "sum":
            for t, x in zip(st.targets, locals_):
                lines.append(f"{t} = torch.sum(_full({x}, _like), -1, keepdim=True)")
            if st.stash:
                lines.append(f"_st = {locals_[-1]}")
        elif st.kind == "pick":
            (t,), (x,) = st.targets, locals_
            lines.append(f"{t} = torch.gather(_full({x}, _like), -1, {st.at})")
        else:
            raise ValueError(f"unknown row step {st.kind!r}")
    return lines


def row_module_model(d) -> dict:
    from ...ir.row import build_row_ir

    spec = d.spec
    ir = build_row_ir(d, TORCH_ROW_KERNELS)
    require("torch", [a.expr for k in ir.kernels.values() for st in k.steps
                      for a in st.fn.temporaries + st.fn.outputs], spec.name)
    printer = TorchPrinter()
    sel_vars: dict[str, list[str]] = {}
    for sel, am in ir.sel.items():
        sel_vars.setdefault(am, []).append(sel)
    scalars = tuple(i.name for i in spec.inputs if i.shape == "scalar")
    functions, kernels = [], []
    for kname in TORCH_ROW_KERNELS:
        k = ir.kernels[kname]
        for st in k.steps:
            functions.append(_function(st.fn.name, ", ".join(st.fn.args), st.fn.temporaries, st.fn.outputs,
                                       printer, tuple_out=True))
        extra = tuple(f"_v_{p}" for p in ir.predictions) if kname == "hvp" else ()
        body = _row_body(k, ir, sel_vars)
        classes = [f"_full({o}, _like)" for o in (() if kname == "value" else k.class_outputs)]
        returns = ["_loss.squeeze(-1)"] if kname in ("value", "value_and_grad") else []
        kernels.append({
            "name": kname,
            "args": ", ".join(ir.inputs + ir.class_inputs + ir.params + extra),
            "body": body,
            "returns": ", ".join(returns + classes) + ("," if not returns and len(classes) == 1 else ""),
            # per-call tensors only where used (each costs an op at small batch sizes)
            "uses_classes": any("_classes" in line for line in body),
            "uses_size": any(ir.size in st.fn.args for st in k.steps),
        })
    signature = ", ".join(ir.inputs + ir.class_inputs + ir.params)
    return {
        **_text(spec, signature),
        **code({
        "name": spec.name,
        "inputs_tuple": repr(ir.inputs),
        "scalar_inputs": repr(scalars),
        "scalars": scalars,
        "class_inputs": repr({i.name: i.default for i in spec.inputs if i.shape == "class"}),
        "index_input": repr(ir.index_input),
        "predictions_tuple": repr(ir.predictions),
        "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
        "mean_weight": repr(spec.row.mean_weight),
        "signature": signature,
        "n_args": len(ir.inputs + ir.class_inputs + ir.params),
        "size": ir.size,
        "shape_of": ir.predictions[0],
        "helpers": [printer.helpers[k].strip() for k in sorted(printer.helpers)],
        "functions": functions,
        "kernels": kernels,
        }),
    }


def render_row_module(d) -> str:
    return environment().get_template(ROW_TEMPLATE).render(m=row_module_model(d))


def render_derivation(d) -> str:
    """The torch module for a Derivation or a RowDerivation."""
    return render_row_module(d) if d.spec.kind == "row" else render_module(d)


def render_spec(spec) -> str:
    """The torch module source for one spec, elementwise or row."""
    return render_derivation(derive(spec))
