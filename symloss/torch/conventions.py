"""Calling a generated torch module with torch's conventions.

Arguments: the predictions first, then the targets, each in the spec's
declared order (``mse(input, target)``, ``gaussian_nll(mu, var, y)``,
``triplet(anchor, positive, negative)``), or by name.  Class inputs (a class
``weight``) and parameters are keywords.  Row losses take the class dimension
at dim 1, ``(N, C)`` or ``(N, C, d1, ...)``, like ``nn.CrossEntropyLoss``.

Reductions: ``"none"`` gives the per-element (per-row) loss, weighted by
``sample_weight`` if given; ``"sum"`` its sum; ``"mean"`` ``sum(w l) / sum(w)``
(the plain mean without weights).  Row losses with class-index targets skip
rows equal to ``ignore_index`` and, with a ``mean_weight`` class input
(cross_entropy's ``weight``), divide the mean by the summed weight of each
row's class, as torch does.  float16 and bfloat16 are computed in float32 and
the result cast back.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from ..errors import InputError
from ..spec import LossSpec
from .kernels import choose, row_kernel_ok, saved_tensor_hooks, transformed

REDUCTIONS = ("mean", "sum", "none")
IGNORE_INDEX = -100
_LOW = (torch.float16, torch.bfloat16)


class _Names:
    """What a call needs to know of a spec's inputs, computed once per spec."""

    def __init__(self, spec: LossSpec):
        data = [i for i in spec.inputs if i.shape != "class"]
        self.arguments = (tuple(i.name for i in data if i.role == "prediction")
                          + tuple(i.name for i in data if i.role != "prediction"))
        self.classes = frozenset(i.name for i in spec.inputs if i.shape == "class")
        self.params = frozenset(p.name for p in spec.params)


_NAMES: dict = {}


def _names(spec: LossSpec) -> _Names:
    found = _NAMES.get(id(spec))
    if found is None or found[0] is not spec:  # an id reused by a new spec
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        found = _NAMES[id(spec)] = (spec, _Names(spec))
    return found[1]


def argument_names(spec: LossSpec) -> tuple[str, ...]:
    """Positional order in torch's convention: predictions, then targets (class inputs are keywords)."""
    return _names(spec).arguments


def bind(spec: LossSpec, args, kwargs) -> dict:
    names = argument_names(spec)
    if not kwargs and len(args) == len(names):
        return dict(zip(names, args))
    if len(args) > len(names):
        raise InputError(f"{spec.name}: takes {len(names)} tensors ({', '.join(names)}), got {len(args)}")
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k in bound:
            raise InputError(f"{spec.name}: argument '{k}' given twice")
        bound[k] = v
    missing = [n for n in names if n not in bound]
    if missing:
        raise InputError(f"{spec.name}: missing input(s) {', '.join(missing)} (call order: {', '.join(names)})")
    return bound


_CONSTANTS: dict = {}


def _constant(value: float, shape, dtype, device) -> torch.Tensor:
    """A parameter or default class-input tensor, made once per value, dtype and device: a
    small batch's step should not pay for new tensors each call.  Fresh under torch.compile,
    where it is a graph constant."""
    if torch.compiler.is_compiling() or transformed():  # a cached tensor would outlive the transform's level
        return torch.full(shape, value, dtype=dtype, device=device)
    key = (value, math.copysign(1.0, value), shape, dtype, device)  # -0.0 is not 0.0 here
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) >= 1024:
            _CONSTANTS.clear()
        t = _CONSTANTS[key] = torch.full(shape, value, dtype=dtype, device=device)
    return t


def _params(spec: LossSpec, given: dict, like: torch.Tensor, tensor_values: bool = False) -> list[torch.Tensor]:
    """``tensor_values``: also check a tensor parameter's value against its bounds (a module's
    construction: once; per call it would cost a device sync and break a compiled graph)."""
    unknown = [k for k in given if k not in _names(spec).params]
    if unknown:
        raise InputError(f"{spec.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                         f"parameters: {', '.join(p.name for p in spec.params) or 'none'}")
    out = []
    for p in spec.params:
        v = given.get(p.name, p.default)
        tensor = isinstance(v, torch.Tensor)
        if tensor and v.numel() != 1:
            raise InputError(f"{spec.name}: parameter {p.name} must be a scalar, got shape {tuple(v.shape)}")
        number = float(v.detach()) if tensor and tensor_values else \
            float(v) if isinstance(v, Real) and not isinstance(v, bool) else None
        bad = None if number is None else p.violation(number)
        if bad:
            raise InputError(f"{spec.name}: parameter {p.name} {bad}")
        if tensor:
            if v.requires_grad and not p.differentiable:
                ok = [q.name for q in spec.params if q.differentiable]
                raise InputError(f"{spec.name}: parameter {p.name} requires grad, but "
                                 + (f"only {', '.join(ok)} can" if ok else "no parameter of this loss can")
                                 + " (params.<name>.differentiable in the spec)")
            out.append(v.reshape(()).to(dtype=like.dtype, device=like.device))
        else:
            out.append(_constant(float(v), (), like.dtype, like.device))
    return out


def _compute_dtype(spec: LossSpec, preds: dict) -> tuple[torch.dtype, torch.dtype]:
    for n, t in preds.items():
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{spec.name}: prediction '{n}' must be a torch.Tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise InputError(f"{spec.name}: prediction '{n}' must be floating point, got {t.dtype}")
    dtypes = {n: t.dtype for n, t in preds.items()}
    dtype = next(iter(dtypes.values()))
    if any(d != dtype for d in dtypes.values()):
        raise InputError(f"{spec.name}: predictions have different dtypes {dtypes}")
    return (torch.float32 if dtype in _LOW else dtype), dtype


def _check_common(spec: LossSpec, bound: dict, preds: list[str]):
    device = bound[preds[0]].device
    for n, t in bound.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{spec.name}: input '{n}' must be a torch.Tensor, got {type(t).__name__}")
        if t.device != device:
            raise InputError(f"{spec.name}: input '{n}' is on {t.device}, prediction '{preds[0]}' on {device}")
        if n not in preds and t.requires_grad:
            raise InputError(f"{spec.name}: target '{n}' requires grad, but symloss differentiates only the "
                             f"predictions ({', '.join(preds)}); pass {n}.detach(), or declare it a prediction "
                             f"in the spec")


def _reduce(spec, losses, reduction, weights, denominator=None):
    if reduction not in REDUCTIONS:
        raise InputError(f"{spec.name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if weights is not None:
        losses = losses * weights
    if reduction == "none":
        return losses
    if reduction == "mean" and denominator is None and weights is None:
        return losses.mean()
    total = losses.sum()
    if reduction == "sum":
        return total
    if denominator is None:
        denominator = weights.sum()
    return total / denominator


def _weights(spec, sample_weight, shape, dtype, device):
    if sample_weight is None:
        return None
    w = torch.as_tensor(sample_weight, device=device)
    if w.requires_grad:
        raise InputError(f"{spec.name}: sample_weight requires grad; weights are data")
    try:
        return torch.broadcast_to(w.to(dtype), shape)
    except RuntimeError:
        raise InputError(f"{spec.name}: sample_weight has shape {tuple(w.shape)}, expected {tuple(shape)}") from None


def _batched(t: torch.Tensor) -> bool:
    """A tensor under vmap (at any level of the transforms' wrappers), whose values Python may
    not branch on."""
    functorch = torch._C._functorch
    while not functorch.is_batchedtensor(t):
        if not functorch.is_functorch_wrapped_tensor(t):
            return False
        t = functorch.get_unwrapped(t)
    return True


def _plain_indices(index, C, ignore_index) -> bool:
    """All indices in [0, C) and none equal to ignore_index: no masking needed (one sync)."""
    lo, hi = torch.aminmax(index)
    lo, hi = int(lo), int(hi)
    return 0 <= lo and hi < C and not lo <= ignore_index <= hi


def _broadcast_shape(shapes):
    """The common broadcast shape, or None (torch.broadcast_shapes costs milliseconds per call)."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    n = max(len(s) for s in shapes)
    out = []
    for k in range(n):
        sizes = {s[len(s) - n + k] for s in shapes if len(s) - n + k >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return torch.Size(out)


def value_node(module, name: str):
    """The generated per-element (per-row) loss node: with its jvp under torch.func transforms
    and forward-mode AD, without one otherwise (torch.compile cannot trace a custom jvp)."""
    if not torch.compiler.is_compiling() and transformed():
        _check_nesting(name)
        return module.ValueJvp
    return module.Value


def _check_nesting(name: str) -> None:
    """Refuse forward mode under another forward transform (jacfwd(jacfwd), jvp of jvp): torch
    runs a custom Function's jvp rule with forward AD off, so the outer level would see zeros
    (as it does for any autograd.Function).  Reverse over forward (jacrev(jacfwd)) goes through
    Grad's symbolic Hessian, as forward over reverse (``torch.func.hessian``) does."""
    try:
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
        from torch._C._functorch import TransformType
    except ImportError:  # pragma: no cover - a torch without these internals
        return
    outer_forward = False
    for interpreter in retrieve_all_functorch_interpreters():  # outermost first
        key = interpreter.key()
        if key == TransformType.Jvp and outer_forward:
            raise InputError(f"{name}: forward mode (jvp, jacfwd) under another forward transform gives zeros "
                             "for any torch.autograd.Function; for second derivatives use "
                             "torch.func.hessian (forward over reverse), jacrev(jacfwd(...)) or "
                             "jacrev(jacrev(...))")
        outer_forward = outer_forward or key == TransformType.Jvp


def summed(module, w, tensors) -> torch.Tensor:
    """``sum(w * L)`` through the generated module's ``Total`` node (w: a number, or weights of
    the loss's shape); without grad mode the value alone, as the node would also compute a
    gradient nobody asks for."""
    if torch.is_grad_enabled():
        return module.Total.apply(w, *tensors)
    loss = module.value(*tensors)
    return (loss * w).sum() if isinstance(w, torch.Tensor) else loss.sum() * w


def elementwise(spec, module, bound, params, reduction="mean", sample_weight=None, impl="generated",
                kernels=None):
    preds = module.PREDICTIONS
    _check_common(spec, bound, preds)
    dtype, out_dtype = _compute_dtype(spec, {p: bound[p] for p in preds})
    data = {n: bound[n].to(dtype) for n in module.INPUTS}
    shape = _broadcast_shape([t.shape for t in data.values()])
    if shape is None:
        shapes = ", ".join(f"{n} {tuple(data[n].shape)}" for n in argument_names(spec))
        raise InputError(f"{spec.name}: input shapes do not match: {shapes}")
    tensors = [t if t.shape == shape else torch.broadcast_to(t, shape) for t in data.values()]
    apply, kernel_ops = value_node(module, spec.name).apply, False
    pvals = _params(spec, params, tensors[0])
    if kernels is not None and impl != "generated" and choose(impl, spec, tensors) == "kernel":
        ops = kernels()
        if reduction in ("sum", "mean") and sample_weight is None:
            n = tensors[0].numel()
            # eagerly, a backward to follow: one fused pass (not under torch.compile or
            # torch.jit.trace, which record the registered ops; not for empty inputs; not
            # under saved-tensor hooks, which would not see the kept gradient)
            if (torch.is_grad_enabled() and any(tensors[i].requires_grad for i in ops.pred_pos)
                    and not any(t.requires_grad for t in pvals) and not torch.compiler.is_compiling()
                    and not torch.jit.is_tracing() and n and not saved_tensor_hooks()):
                return ops.kept_total(1.0 / n if reduction == "mean" else 1.0, *tensors, *pvals).to(out_dtype)
            total = ops.sum(*tensors, *pvals)  # one pass forward, one backward
            return (total if reduction == "sum" else total / n).to(out_dtype)
        apply, kernel_ops = ops.apply, True
    elif impl == "kernel":
        choose(impl, spec, tensors)  # the clear error for a loss or device the kernels do not take
    w = _weights(spec, sample_weight, shape, dtype, tensors[0].device)
    n = tensors[0].numel()
    if (reduction in ("mean", "sum") and not kernel_ops and hasattr(module, "Total") and n
            and not torch.compiler.is_compiling() and not transformed()):
        # one autograd node: the gradient computed in the forward, the backward a product
        # (under torch.compile the per-element Value and the reduction fuse instead; torch.func
        # transforms need Value's jvp and vmap rules)
        if w is None:
            out = summed(module, 1.0 / n if reduction == "mean" else 1.0, (*tensors, *pvals))
        else:
            out = summed(module, w, (*tensors, *pvals))
            out = out / w.sum() if reduction == "mean" else out
        return out if out_dtype == dtype else out.to(out_dtype)
    losses = apply(*tensors, *pvals)
    out = _reduce(spec, losses, reduction, w)
    return out if out_dtype == dtype else out.to(out_dtype)


def row(spec, module, bound, params, reduction="mean", sample_weight=None, ignore_index=IGNORE_INDEX,
        class_inputs=None, impl="generated", kernels=None):
    preds = list(module.PREDICTIONS)
    # traced: no data-dependent checks, and the per-row Value node (which torch.compile fuses
    # and torch.func transforms see through) rather than Total
    compiling = torch.compiler.is_compiling()
    traced = compiling or transformed()
    _check_common(spec, {**bound, **(class_inputs or {})}, preds)
    dtype, out_dtype = _compute_dtype(spec, {p: bound[p] for p in preds})
    first = bound[preds[0]]
    unbatched = first.dim() == 1
    if first.dim() < 1:
        raise InputError(f"{spec.name}: prediction '{preds[0]}' must have a class dimension, got a scalar")
    C = first.shape[0] if unbatched else first.shape[1]
    full = (1, C) if unbatched else tuple(first.shape)
    batch = (full[0], *full[2:])  # the shape of the per-row loss

    def rows(n, t):  # (N, C, d...) -> (M, C)
        t = t.unsqueeze(0) if unbatched else t
        if tuple(t.shape) != full:
            raise InputError(f"{spec.name}: input '{n}' has shape {tuple(t.shape)}, expected {full} "
                             f"(like '{preds[0]}')")
        t = t.to(dtype)
        return t if t.dim() == 2 else t.movedim(1, -1).reshape(-1, C)

    data, raw, live, index, onehot = [], [], None, None, None
    scalars = set(module.SCALAR_INPUTS)
    for n in module.INPUTS:
        t = bound[n]
        if n == module.INDEX_INPUT and not t.dtype.is_floating_point:  # class indices
            t = t.unsqueeze(0) if unbatched else t
            if tuple(t.shape) != batch:
                raise InputError(f"{spec.name}: class indices '{n}' have shape {tuple(t.shape)}, expected {batch}")
            index = (t if t.dim() == 1 else t.reshape(-1)).long()
            live, safe = None, index
            if traced or not index.numel() or not _plain_indices(index, C, ignore_index):
                live = index != ignore_index
                safe = torch.where(live, index, 0)
                if not compiling and not _batched(safe) and bool(((safe < 0) | (safe >= C)).any()):
                    raise InputError(f"{spec.name}: class indices '{n}' outside [0, {C}) "
                                     f"(ignore_index={ignore_index})")
            data.append(safe)  # one-hot encoded below if the generated code runs
            raw.append(index)
            onehot = len(data) - 1
        elif n in scalars:
            t = t.unsqueeze(0) if unbatched else t
            if tuple(t.shape) != batch:
                raise InputError(f"{spec.name}: input '{n}' has shape {tuple(t.shape)}, expected {batch}")
            data.append(t.to(dtype).reshape(-1))
            raw.append(data[-1])
        else:
            data.append(rows(n, t))
            raw.append(data[-1])
    classes, defaults = [], set()
    for n, default in module.CLASS_INPUTS.items():
        c = (class_inputs or {}).get(n)
        if c is None:
            c = _constant(float(default), (C,), dtype, first.device)
            defaults.add(n)
        elif tuple(c.shape) != (C,):
            raise InputError(f"{spec.name}: '{n}' has shape {tuple(c.shape)}, expected ({C},), one per class")
        classes.append(c.to(dtype))
    pvals = _params(spec, params, data[list(module.INPUTS).index(preds[0])])
    row_ok = row_kernel_ok(spec, reduction, sample_weight)
    first_raw = raw[list(module.INPUTS).index(preds[0])]
    if kernels is not None and choose(impl, spec, [first_raw, *raw], row_ok) == "kernel":
        total = kernels().total(raw, classes, pvals, reduction, int(ignore_index))
        return total.to(out_dtype)
    if impl == "kernel":
        choose(impl, spec, [first_raw, *raw], row_ok)  # the clear error
    if onehot is not None:
        i = data[onehot]
        if traced and not compiling and _batched(i):
            # one_hot is data-dependent under vmap; a comparison is not
            data[onehot] = (i.unsqueeze(-1) == torch.arange(C, device=i.device)).to(dtype)
        elif traced:
            data[onehot] = torch.nn.functional.one_hot(i, C).to(dtype)
        else:  # one op fewer than one_hot(...).to(dtype)
            data[onehot] = torch.zeros((i.shape[0], C), dtype=dtype, device=i.device).scatter_(1, i.unsqueeze(1), 1.0)
    w = None if sample_weight is None else _weights(spec, sample_weight, batch, dtype, first.device).reshape(-1)
    M = data[list(module.INPUTS).index(preds[0])].shape[0]
    if live is None and reduction in ("mean", "sum") and hasattr(module, "Total") and not traced and M:
        # one autograd node: value and gradient in the forward, the backward a product
        denominator = None
        if reduction == "mean":
            if index is not None and module.MEAN_WEIGHT is not None and module.MEAN_WEIGHT not in defaults:
                rw = classes[list(module.CLASS_INPUTS).index(module.MEAN_WEIGHT)][index]
                denominator = (rw if w is None else rw * w).sum()
            elif w is not None:
                denominator = w.sum()
            elif w is None:
                out = summed(module, 1.0 / M, (*data, *classes, *pvals))
                return out if out_dtype == dtype else out.to(out_dtype)
        out = summed(module, 1.0 if w is None else w, (*data, *classes, *pvals))
        out = out if denominator is None else out / denominator
        return out if out_dtype == dtype else out.to(out_dtype)
    losses = value_node(module, spec.name).apply(*data, *classes, *pvals)
    denominator = None
    if live is not None:
        losses = torch.where(live, losses, 0.0)
        rw = live.to(dtype) if w is None else torch.where(live, w, 0.0)
        if module.MEAN_WEIGHT is not None:
            mw = classes[list(module.CLASS_INPUTS).index(module.MEAN_WEIGHT)]
            rw = rw * mw[torch.where(live, index, 0)]
        denominator = rw.sum()
    out = _reduce(spec, losses, reduction, w, denominator)
    if reduction == "none":
        out = out.reshape(batch[1:] if unbatched else batch)
    return out.to(out_dtype)


def call(spec, module, args, kwargs, params, reduction="mean", sample_weight=None, ignore_index=IGNORE_INDEX,
         impl="generated", kernels=None):
    """One loss evaluation in torch's conventions (see the module docstring)."""
    class_names = _names(spec).classes
    class_inputs = {k: kwargs.pop(k) for k in list(kwargs) if k in class_names} if kwargs else {}
    bound = bind(spec, args, kwargs)
    if spec.kind == "row":
        return row(spec, module, bound, params, reduction, sample_weight, ignore_index, class_inputs, impl,
                   kernels)
    return elementwise(spec, module, bound, params, reduction, sample_weight, impl, kernels)
