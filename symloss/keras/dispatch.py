"""Run a symloss loss on whatever framework Keras runs on, with Keras's shapes.

``framework_loss`` returns a per-element / per-row function in predictions-
then-targets order: on Keras's jax and torch backends the generated module of
that framework (its custom derivatives carry the symbolic gradient and, nested,
the Hessian and parameter derivatives); on any other backend (tensorflow) the
generated keras module (``keras.ops`` code in ``ops.custom_gradient``, first
order, elementwise losses only).  ``per_sample`` maps Keras's ``(y_true,
y_pred)`` onto it and averages elementwise losses over the last axis, as
Keras's built-ins do.
"""
from __future__ import annotations

import keras
from keras import ops

from ..errors import InputError


def _jax_loss(spec, source, params):
    from .. import jax as sj
    from ..jax._modules import module_for_spec, resolve

    module = resolve(source)[1] if source is not None else module_for_spec(spec)
    return sj.spec_loss(spec, module, **params)


def _torch_loss(spec, source, params):
    from .. import torch as st

    module = (st.loss(source, reduction="none", impl="generated", **params) if source is not None
              else st.spec_loss(spec, reduction="none", **params))
    row = spec.kind == "row"

    def run(*args):
        # torch's row convention puts the classes at dim 1
        return module(*[a.movedim(-1, 1) if row and a.dim() > 2 else a for a in args])

    return run


# Keras backends with a symloss framework module; the others get the keras module
FRAMEWORK = {"jax": _jax_loss, "torch": _torch_loss}


def argument_names(spec):
    """Predictions, then targets (class inputs excluded), each in the spec's order."""
    data = [i for i in spec.inputs if i.shape != "class"]
    return [i.name for i in data if i.role == "prediction"] + [i.name for i in data if i.role != "prediction"]


def keras_module_loss(spec, module, params):
    """The keras module's ``loss`` in predictions-then-targets order, parameters bound."""
    names = argument_names(spec)
    values = [float(params.get(p.name, p.default)) for p in spec.params]

    def run(*args):
        bound = dict(zip(names, args))
        data = [bound[n] for n in module.INPUTS]
        shapes = [tuple(d.shape) for d in data]
        if len(set(shapes)) > 1 or any(None in s for s in shapes):
            # custom_gradient's rule gives cotangents of the loss's shape: broadcast the inputs
            # first (adding zeros, which autodiff sums back to each input's shape)
            zero = ops.zeros_like(data[0])
            for d in data[1:]:
                zero = zero + ops.zeros_like(d)
            data = [d + zero for d in data]
        return module.loss(*data, *values)

    return run


def framework_loss(spec, source, params):
    backend = keras.backend.backend()
    if backend in FRAMEWORK:
        return FRAMEWORK[backend](spec, source, params)
    if spec.kind == "row":
        raise InputError(f"symloss.keras runs row losses ({spec.name}) on the jax and torch Keras backends, "
                         f"not {backend!r} (set KERAS_BACKEND=jax or torch before importing keras)")
    from ._modules import module_for_spec, resolve

    module = resolve(source)[1] if source is not None else module_for_spec(spec)
    return keras_module_loss(spec, module, params)


def _split(what, value, n, axis, spec):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"{spec.name}: expected {n} {what} tensors, got {len(value)}")
        return list(value)
    if n == 1:
        return [value]
    if value.shape[axis] != n:
        raise InputError(f"{spec.name}: {what} of shape {tuple(value.shape)} must stack its {n} {what} tensors "
                         f"on axis {axis} (or pass a list)")
    return [ops.take(value, i, axis=axis) for i in range(n)]


def per_sample(spec, fn, y_true, y_pred):
    row = spec.kind == "row"
    data = [i for i in spec.inputs if i.shape != "class"]
    preds = [i for i in data if i.role == "prediction"]
    targets = [i for i in data if i.role != "prediction"]
    pv = _split("prediction", y_pred, len(preds), -2 if row else -1, spec)
    tv = _split("target", y_true, len(targets), -2 if row else -1, spec) if targets else []
    first = pv[0]
    for k, (inp, t) in enumerate(zip(targets, tv)):
        if row and inp.indices and inp.shape != "scalar":
            if len(t.shape) == len(first.shape) - 1 or (t.shape[-1] == 1 and first.shape[-1] != 1):
                if len(t.shape) == len(first.shape):
                    t = ops.squeeze(t, -1)
                t = ops.one_hot(ops.cast(t, "int32"), first.shape[-1], dtype=first.dtype)
        elif row and inp.shape == "scalar" and len(t.shape) == len(first.shape):
            t = ops.squeeze(t, -1)
        elif not row:
            if len(t.shape) == len(first.shape) - 1:
                t = ops.expand_dims(t, -1)
            elif len(t.shape) == len(first.shape) + 1 and t.shape[-1] == 1:
                t = ops.squeeze(t, -1)
        tv[k] = ops.cast(t, first.dtype)
    out = fn(*pv, *tv)
    if not row and len(out.shape) >= 2:
        out = ops.mean(out, axis=-1)
    return out
