"""Run a symloss loss on whatever framework Keras runs on, with Keras's shapes.

``framework_loss`` picks the generated module of Keras's backend (jax or
torch) and returns a per-element / per-row function in predictions-then-
targets order; ``per_sample`` maps Keras's ``(y_true, y_pred)`` onto it and
averages elementwise losses over the last axis, as Keras's built-ins do.
"""
from __future__ import annotations

import keras
from keras import ops

from ..errors import InputError


def framework_loss(spec, source, params):
    backend = keras.backend.backend()
    from_catalog = source is not None
    if backend == "jax":
        from .. import jax as sj
        from ..jax._modules import module_for_spec, resolve

        module = resolve(source)[1] if from_catalog else module_for_spec(spec)
        return sj.spec_loss(spec, module, **params)
    if backend == "torch":
        from .. import torch as st

        module = (st.loss(source, reduction="none", impl="generated", **params) if from_catalog
                  else st.spec_loss(spec, reduction="none", **params))
        row = spec.kind == "row"

        def run(*args):
            # torch's row convention puts the classes at dim 1
            return module(*[a.movedim(-1, 1) if row and a.dim() > 2 else a for a in args])

        return run
    raise InputError(f"symloss.keras runs on the jax and torch Keras backends, not {backend!r} "
                     f"(set KERAS_BACKEND=jax or torch before importing keras)")


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
