"""The jax backend: print the IR with :class:`JaxPrinter` and fill templates/jax.

The same model as the torch backend (whose IR helpers it shares): elementwise
losses get plain ``value``/``grad``/``hessian`` (``param_grad``, ``mixed``)
functions of arrays; row losses get one function per row-IR step and kernel
bodies that evaluate them on (N, K) class arrays and (N, 1) row arrays,
reducing over the last axis.  The templates wrap them in ``jax.custom_jvp``:
value -> symbolic gradient -> symbolic Hessian (row losses: Hessian-vector
product).  Every printed string is marked as code; spec text reaches the
module only through ``|pydoc``/``|pycomment``.
"""
from __future__ import annotations

import sympy as sp

from ...derive import Derivation, derive
from ...ir import build_ir
from ...ir.kernels import _kernel
from ...render.environment import environment
from ...render.escape import code
from .. import require
from ..torch.render import ELEMENTWISE_KERNELS, ROW_KERNELS, _function, _mixed, _source
from .printer import JaxPrinter

TEMPLATE = "jax/module.py.j2"
ROW_TEMPLATE = "jax/row_module.py.j2"


def _text(spec, signature: str) -> dict:
    # spec text: printed only through |pydoc / |pycomment
    return {"title": spec.title, "source": _source(spec), "formula": sp.sstr(spec.loss), "doc_signature": signature}


def module_model(derivation: Derivation) -> dict:
    spec = derivation.spec
    ir = build_ir(derivation)
    printer = JaxPrinter()
    args = ", ".join(ir.inputs + ir.params)
    functions = [
        _function(k, args, ir.kernels[k].temporaries, ir.kernels[k].outputs, printer, tuple_out=k != "value")
        for k in ELEMENTWISE_KERNELS if k in ir.kernels
    ]
    if ir.param_grads:
        mixed = _kernel("mixed", _mixed(derivation))
        functions.append(_function("mixed", args, mixed.temporaries, mixed.outputs, printer))
    require("jax", [a.expr for k in ir.kernels.values() for a in k.temporaries + k.outputs], spec.name)
    return {
        **_text(spec, args),
        **code({
            "name": spec.name,
            "args": args,
            "first": ir.predictions[0],
            "inputs_tuple": repr(ir.inputs),
            "predictions_tuple": repr(ir.predictions),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "param_grads_tuple": repr(ir.param_grads),
            "hessian_pairs": repr(ir.hessian_pairs),
            "has_param_grads": bool(ir.param_grads),
            "helpers": [printer.helpers[k].strip() for k in sorted(printer.helpers)],
            "functions": functions,
        }),
    }


def render_module(derivation: Derivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(derivation))


# row losses -----------------------------------------------------------------------


def _row_body(kernel, sel_vars) -> list[str]:
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
                lines.append(f"{t} = jnp.max({x}, -1, keepdims=True)")
                if am:
                    lines.append(f"{am} = jnp.argmax({x}, -1, keepdims=True)")
                    for sel in sel_vars.get(am, ()):
                        lines.append(f"{sel} = (_classes == {am}).astype(_like.dtype)")
        elif st.kind == "sum":
            for t, x in zip(st.targets, locals_):
                lines.append(f"{t} = jnp.sum(_full({x}, _like), -1, keepdims=True)")
            if st.stash:  # the last output, per class, read back by the out step
                lines.append(f"_st = {locals_[-1]}")
        elif st.kind == "pick":
            (t,), (x,) = st.targets, locals_
            lines.append(f"{t} = jnp.take_along_axis(_full({x}, _like), {st.at}, -1)")
        else:
            raise ValueError(f"unknown row step {st.kind!r}")
    return lines


def row_module_model(d) -> dict:
    from ...ir.row import build_row_ir

    spec = d.spec
    ir = build_row_ir(d, ROW_KERNELS, fold_linear_sums=True)
    require("jax", [a.expr for k in ir.kernels.values() for st in k.steps
                    for a in st.fn.temporaries + st.fn.outputs], spec.name)
    printer = JaxPrinter()
    sel_vars: dict[str, list[str]] = {}
    for sel, am in ir.sel.items():
        sel_vars.setdefault(am, []).append(sel)
    scalars = tuple(i.name for i in spec.inputs if i.shape == "scalar")
    functions, kernels = [], []
    for kname in ROW_KERNELS:
        k = ir.kernels[kname]
        for st in k.steps:
            functions.append(_function(st.fn.name, ", ".join(st.fn.args), st.fn.temporaries, st.fn.outputs,
                                       printer, tuple_out=True))
        extra = tuple(f"_v_{p}" for p in ir.predictions) if kname == "hvp" else ()
        outs = k.row_outputs if kname == "value" else k.class_outputs
        kernels.append({
            "name": kname,
            "args": ", ".join(ir.inputs + ir.class_inputs + ir.params + extra),
            "body": _row_body(k, sel_vars),
            "returns": ("_loss[..., 0]" if kname == "value"
                        else ", ".join(f"_full({o}, _like)" for o in outs) + ("," if len(outs) == 1 else "")),
        })
    signature = ", ".join(ir.inputs + ir.class_inputs + ir.params)
    return {
        **_text(spec, signature),
        **code({
            "name": spec.name,
            "args": signature,
            "inputs_tuple": repr(ir.inputs),
            "scalar_inputs": repr(scalars),
            "scalars": list(scalars),
            "class_inputs": repr({i.name: i.default for i in spec.inputs if i.shape == "class"}),
            "index_input": repr(ir.index_input),
            "predictions_tuple": repr(ir.predictions),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "mean_weight": repr(spec.row.mean_weight),
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
    """The jax module for a Derivation or a RowDerivation."""
    return render_row_module(d) if d.spec.kind == "row" else render_module(d)


def render_spec(spec) -> str:
    """The jax module source for one spec, elementwise or row."""
    return render_derivation(derive(spec))
