"""The keras backend: print the IR with :class:`KerasPrinter` and fill templates/keras.

Elementwise losses get plain ``value``/``grad`` functions of tensors (the
torch backend's IR helpers) and a ``loss`` wrapped in
``keras.ops.custom_gradient`` whose rule is the symbolic gradient.  Row
losses are not emitted (``render_derivation`` gives None): symloss.keras runs
them through the generated jax or torch module of Keras's backend, whose
custom derivatives also carry the Hessian-vector product.  Every printed
string is marked as code; spec text reaches the module only through
``|pydoc``/``|pycomment``.
"""
from __future__ import annotations

from ...derive import Derivation, derive
from ...ir import build_ir
from ...render.environment import environment
from ...render.escape import code
from .. import require
from ..torch.render import _function, _text
from .printer import KerasPrinter

TEMPLATE = "keras/module.py.j2"
KERNELS = ("value", "grad")


def module_model(derivation: Derivation) -> dict:
    spec = derivation.spec
    ir = build_ir(derivation)
    printer = KerasPrinter()
    args = ", ".join(ir.inputs + ir.params)
    functions = [
        _function(k, args, ir.kernels[k].temporaries, ir.kernels[k].outputs, printer, tuple_out=k != "value")
        for k in KERNELS
    ]
    require("keras", [a.expr for k in KERNELS for a in ir.kernels[k].temporaries + ir.kernels[k].outputs],
            spec.name)
    first = ir.predictions[0]
    # tensors of the prediction's dtype: custom_gradient wants tensors, and a float64 model keeps float64
    convert = [f"{first} = ops.convert_to_tensor({first})"]
    convert += [f"{n} = _as({n}, {first})" for n in ir.inputs + ir.params if n != first]
    # one cotangent per input of _loss: upstream * dL/dx for a prediction, zeros for a target
    cot = [f"upstream * _full(ds[{ir.predictions.index(n)}], {first})" if n in ir.predictions
           else f"ops.zeros_like({n})" for n in ir.inputs]
    return {
        **_text(spec, args),
        **code({
            "name": spec.name,
            "args": args,
            "inputs": ", ".join(ir.inputs),
            "first": first,
            "inputs_tuple": repr(ir.inputs),
            "predictions_tuple": repr(ir.predictions),
            "params_dict": "{" + ", ".join(f"{p.name!r}: {p.default!r}" for p in spec.params) + "}",
            "helpers": [printer.helpers[k].strip() for k in sorted(printer.helpers)],
            "functions": functions,
            "convert": convert,
            "cotangents": ", ".join(cot) + ("," if len(cot) == 1 else ""),
        }),
    }


def render_module(derivation: Derivation) -> str:
    return environment().get_template(TEMPLATE).render(m=module_model(derivation))


def render_derivation(d) -> str | None:
    """The keras module for a Derivation; None for a RowDerivation (see the module docstring)."""
    return None if d.spec.kind == "row" else render_module(d)


def render_spec(spec) -> str | None:
    return render_derivation(derive(spec))
