"""symloss losses for JAX, in Optax's style: ``symloss.jax.loss("huber", delta=1.0)(predictions, targets)``.

The returned function gives per-element values for elementwise losses and
per-row values for row losses (class axis last), with no reduction, like
``optax.huber_loss`` or ``optax.softmax_cross_entropy``.  It runs the
generated jax module (``generated/jax/<name>.py``, or one rendered on demand):
``jax.custom_jvp`` functions whose rule is the symbolic gradient, whose rule
in turn is the symbolic Hessian (row losses: Hessian-vector product), so
``jax.grad``, ``jax.hessian``, ``jax.jit`` and ``jax.vmap`` work without
autodiff ever differentiating the stable formulas.

Arguments: the predictions first, then the targets, each in the spec's
declared order (Optax's order: ``(logits, labels)``), or by name; class
inputs (cross_entropy's ``weight``) and parameters are keywords, parameters
defaulting to the values given to :func:`loss`.  Row losses whose target may
be class indices (cross_entropy, focal, ...) take integer labels of the batch
shape too (``softmax_cross_entropy_with_integer_labels``).  Differentiable
parameters (general_robust's ``alpha``) may be traced arrays.  Importing this
module imports jax; ``import symloss`` never does.
"""
from __future__ import annotations

from functools import partial
from numbers import Real

import jax.numpy as jnp

from ..errors import InputError
from ..spec import LossSpec, spec_from_table
from ._modules import module_for_spec, resolve

__all__ = ["argument_names", "from_expr", "loss", "spec_loss"]


def argument_names(spec: LossSpec) -> tuple[str, ...]:
    """Positional order: predictions, then targets (class inputs are keywords)."""
    data = [i for i in spec.inputs if i.shape != "class"]
    return tuple(i.name for i in data if i.role == "prediction") + tuple(i.name for i in data if i.role != "prediction")


def loss(name_or_spec_path, **params):
    """The per-element (per-row) loss function of a catalog loss or a spec file."""
    spec, module = resolve(name_or_spec_path)
    return spec_loss(spec, module, **params)


def _expr_spec(expr, name, inputs, params, let, kind) -> LossSpec:
    table = {"name": name, "kind": kind, "inputs": inputs or {"y": "target", "yhat": "prediction"},
             "params": params or {}, "let": let or {}, "loss": expr}
    return spec_from_table(table, source="<expr>")


def from_expr(expr: str, name: str = "custom", inputs: dict | None = None, params: dict | None = None,
              let: dict | None = None, kind: str = "elementwise", **values):
    """A loss function from one expression (symbols ``y`` target, ``yhat`` prediction by default)."""
    spec = _expr_spec(expr, name, inputs, params, let, kind)
    return spec_loss(spec, module_for_spec(spec), **values)


def spec_loss(spec: LossSpec, module=None, **params):
    """The loss function of a ``LossSpec`` (its module rendered if not given)."""
    module = module or module_for_spec(spec)
    _check_params(spec, params)
    fn = partial(_call, spec, module, params)
    fn.spec, fn.module = spec, module
    fn.__name__ = spec.name
    fn.__doc__ = f"symloss {spec.name}{argument_names(spec)}: per-{'row' if spec.kind == 'row' else 'element'} loss"
    return fn


def _check_params(spec: LossSpec, given: dict) -> None:
    names = {p.name for p in spec.params}
    unknown = set(given) - names
    if unknown:
        raise InputError(f"{spec.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                         f"parameters: {', '.join(sorted(names)) or 'none'}")
    for p in spec.params:
        v = given.get(p.name)
        if isinstance(v, Real) and not isinstance(v, bool):
            bad = p.violation(float(v))
            if bad:
                raise InputError(f"{spec.name}: parameter {p.name} {bad}")


def _bind(spec: LossSpec, args, kwargs) -> dict:
    names = argument_names(spec)
    if len(args) > len(names):
        raise InputError(f"{spec.name}: takes {len(names)} arrays ({', '.join(names)}), got {len(args)}")
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k in bound:
            raise InputError(f"{spec.name}: argument '{k}' given twice")
        bound[k] = v
    missing = [n for n in names if n not in bound]
    if missing:
        raise InputError(f"{spec.name}: missing input(s) {', '.join(missing)} (call order: {', '.join(names)})")
    return bound


def _dtype(spec: LossSpec, preds: list):
    dtype = jnp.result_type(*preds)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)  # integer predictions: the default float type
    return dtype


def _param_arrays(spec: LossSpec, params: dict, dtype) -> list:
    out = []
    for p in spec.params:
        v = params.get(p.name, p.default)
        if jnp.ndim(v) != 0:
            raise InputError(f"{spec.name}: parameter {p.name} must be a scalar, got shape {jnp.shape(v)}")
        out.append(jnp.asarray(v, dtype))
    return out


def _call(spec: LossSpec, module, defaults: dict, *args, **kwargs):
    class_names = [i.name for i in spec.inputs if i.shape == "class"]
    class_given = {k: kwargs.pop(k) for k in list(kwargs) if k in class_names}
    param_names = {p.name for p in spec.params}
    params = {**defaults, **{k: kwargs.pop(k) for k in list(kwargs) if k in param_names}}
    _check_params(spec, params)
    bound = _bind(spec, args, kwargs)
    preds = [jnp.asarray(bound[p]) for p in module.PREDICTIONS]
    dtype = _dtype(spec, preds)
    if spec.kind == "row":
        return _row(spec, module, bound, class_given, params, dtype)
    data = [jnp.asarray(bound[n], dtype) for n in module.INPUTS]
    try:
        data = jnp.broadcast_arrays(*data)
    except ValueError:
        shapes = ", ".join(f"{n} {jnp.shape(bound[n])}" for n in argument_names(spec))
        raise InputError(f"{spec.name}: input shapes do not match: {shapes}") from None
    return module.loss(*data, *_param_arrays(spec, params, dtype))


def _row(spec: LossSpec, module, bound: dict, class_given: dict, params: dict, dtype):
    first = jnp.asarray(bound[module.PREDICTIONS[0]])
    if first.ndim < 1:
        raise InputError(f"{spec.name}: prediction '{module.PREDICTIONS[0]}' needs a class axis (the last)")
    shape, K = first.shape, first.shape[-1]
    scalars = set(module.SCALAR_INPUTS)
    data = []
    for n in module.INPUTS:
        t = jnp.asarray(bound[n])
        if n == module.INDEX_INPUT and not jnp.issubdtype(t.dtype, jnp.floating):  # integer labels
            if t.shape != shape[:-1]:
                raise InputError(f"{spec.name}: class indices '{n}' have shape {t.shape}, expected {shape[:-1]}")
            t = (t[..., None] == jnp.arange(K)).astype(dtype)
        want = shape[:-1] if n in scalars else shape
        if t.shape != want:
            raise InputError(f"{spec.name}: input '{n}' has shape {t.shape}, expected {want}")
        data.append(t.astype(dtype))
    classes = []
    for n, default in module.CLASS_INPUTS.items():
        c = class_given.get(n)
        c = jnp.full((K,), float(default), dtype) if c is None else jnp.asarray(c, dtype)
        if c.shape != (K,):
            raise InputError(f"{spec.name}: '{n}' has shape {c.shape}, expected ({K},), one per class")
        classes.append(c)
    return module.loss(*data, *classes, *_param_arrays(spec, params, dtype))
