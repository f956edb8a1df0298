"""Validation of user arrays and parameters, before any kernel runs.

The rules every loss applies (documented in ``Loss`` and ``RowLoss``):

- Anything ``numpy.asarray`` turns into bool, integer or float numbers is
  accepted (lists, scalars, 0-d arrays, views of any strides, read-only
  arrays); complex, object, string and date dtypes are a clear error.
- The kernel dtype follows the predictions: float32 or float64 as given,
  integers and booleans in float64, float16 computed in float32 and returned
  as float16 (as ``numpy.mean`` of float16 does).  Targets and weights are
  cast to it.
- Targets and weights broadcast to the predictions' shape (numpy's rules), but
  never the other way: results always have the predictions' shape, so a
  (n, 1) target against (n,) predictions, which numpy would silently turn
  into an (n, n) loss, is an error.
- Kernels get flat (or (rows, K)) C-contiguous writeable arrays of the kernel
  dtype; views, broadcasts and read-only arrays are copied first (a read-only
  array would make Numba compile a new specialisation of every kernel).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .spec.model import LossSpec

REDUCTIONS = ("mean", "sum", "none")
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def as_array(x, loss: str, name: str) -> np.ndarray:
    """``np.asarray(x)``, refusing what is not real numbers with a message naming the argument."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError, RuntimeError) as e:  # ragged lists; torch tensors that require grad
        raise InputError(f"{loss}: '{name}' is not an array of numbers: {e}") from None
    if a.dtype.kind == "c":
        raise InputError(f"{loss}: '{name}' must hold real numbers, got complex dtype {a.dtype}")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{loss}: '{name}' must be numeric (bool, integer or float), got dtype {a.dtype}")
    return a


def dtypes(loss: str, preds: Sequence[np.ndarray]) -> tuple[np.dtype, np.dtype]:
    """(kernel dtype, result dtype) for these predictions."""
    dtype = np.result_type(*preds)
    if dtype.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32), dtype
    if dtype not in KERNEL_DTYPES:
        raise InputError(f"{loss}: predictions must be float32 or float64 arrays "
                         f"(float16 runs in float32, integers in float64), got {dtype}")
    return dtype, dtype


def broadcast(a: np.ndarray, shape: tuple[int, ...], loss: str, name: str, what: str, note: str = "") -> np.ndarray:
    """``a`` broadcast to ``shape`` (a read-only view), or an InputError naming both shapes."""
    if a.shape == shape:
        return a
    try:
        ok = np.broadcast_shapes(a.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        hint = ""
        if a.size == math.prod(shape) and a.size > 1:
            hint = f"; it has as many elements: reshape it to {shape} if they pair up in order"
        note = f" ({note})" if note else ""
        raise InputError(f"{loss}: {name} has shape {a.shape}, which does not broadcast to {what} {shape}{note}{hint}")
    return np.broadcast_to(a, shape)


def for_kernel(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous writeable array of ``dtype`` with ``a``'s values (``a`` itself when it is one)."""
    c = np.ascontiguousarray(a, dtype=dtype)
    if not c.flags.writeable:
        c = c.copy()
    return c.reshape(a.shape)


def prepare_inputs(spec: LossSpec, arrays: Sequence):
    """Check count, dtypes and shapes: (flat kernel arrays, shape, kernel dtype, result dtype)."""
    names = [i.name for i in spec.inputs]
    if len(arrays) != len(names):
        raise InputError(f"{spec.name} takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
    arrs = [as_array(a, spec.name, n) for a, n in zip(arrays, names)]
    preds = [(a, i.name) for a, i in zip(arrs, spec.inputs) if i.differentiable]
    kdtype, rdtype = dtypes(spec.name, [a for a, _ in preds])
    shape, first = preds[0][0].shape, preds[0][1]
    for a, name in preds[1:]:  # gradients take the predictions' shape: one shape for all of them
        if a.shape != shape:
            raise InputError(f"{spec.name}: prediction '{name}' has shape {a.shape}, "
                             f"expected {shape} like the prediction '{first}'")
    flat = []
    for a, inp in zip(arrs, spec.inputs):
        if not inp.differentiable:
            a = broadcast(a, shape, spec.name, f"'{inp.name}'", "the predictions' shape")
        flat.append(for_kernel(a, kdtype).reshape(-1))
    return flat, shape, kdtype, rdtype


def prepare_weights(sample_weight, shape: tuple[int, ...], dtype: np.dtype, loss: str,
                    what: str = "the predictions' shape", note: str = "") -> np.ndarray | None:
    """Flat kernel-dtype weights broadcast to ``shape`` (None stays None)."""
    if sample_weight is None:
        return None
    w = broadcast(as_array(sample_weight, loss, "sample_weight"), shape, loss, "sample_weight", what, note)
    return for_kernel(w, dtype).reshape(-1)


def param_value(value):
    """A 0-d real array (``np.array(0.5)``, a torch scalar's numpy) as its Python number; others unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def prepare_params(spec: LossSpec, given: dict, dtype: np.dtype) -> list:
    known = {p.name for p in spec.params}
    unknown = sorted(set(given) - known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"{spec.name}: unknown parameter(s) {', '.join(unknown)}; parameters: {listed}")
    values = []
    for p in spec.params:
        value = param_value(given.get(p.name, p.default))
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputError(f"{spec.name}: parameter '{p.name}' must be a number, got {value!r}")
        problem = p.violation(float(value))
        if problem:
            raise InputError(f"{spec.name}: parameter '{p.name}' {problem}")
        values.append(dtype.type(value))
    return values


class Output:
    """One result array: ``result`` (``out`` or a new array) and ``flat``, the C-contiguous
    kernel-dtype array the kernel writes; ``finish()`` copies ``flat`` into ``result``
    when they differ (float16 results are computed in float32).

    ``out`` must be a writeable C-contiguous numpy array of the result's shape
    and dtype.  ``inputs`` are the kernel's input arrays: ``out`` may be one of
    them exactly (``out=yhat`` updates in place; ``alias_ok``: elementwise
    kernels read an element's inputs before writing its outputs) but must not
    otherwise overlap them.
    """

    def __init__(self, out, shape, kdtype, rdtype, what: str, inputs=(), alias_ok: bool = True):
        if out is None:
            self.result = np.empty(shape, dtype=rdtype)
        else:
            if not isinstance(out, np.ndarray):
                raise InputError(f"{what}: out must be a numpy array, got {type(out).__name__}")
            if out.shape != tuple(shape) or out.dtype != rdtype:
                raise InputError(f"{what}: out must have shape {tuple(shape)} and dtype {rdtype}, "
                                 f"got {out.shape} {out.dtype}")
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise InputError(f"{what}: out must be a writeable C-contiguous array")
            for x in inputs:
                if x is not None and np.may_share_memory(out, x) and not (alias_ok and _same_memory(out, x)):
                    raise InputError(f"{what}: out must not share memory with the inputs"
                                     + (" (except being one of them exactly)" if alias_ok else ""))
            self.result = out
        if rdtype == kdtype:
            self.flat = self.result.reshape(-1)
        else:
            self.flat = np.empty(self.result.size, dtype=kdtype)

    def finish(self) -> np.ndarray:
        if self.result.dtype != self.flat.dtype:
            np.copyto(self.result.reshape(-1), self.flat, casting="same_kind")
        return self.result


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.size == b.size and a.dtype == b.dtype and a.flags.c_contiguous and b.flags.c_contiguous
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def out_pair(out, what: str):
    """A (gradient, Hessian) ``out``: None, or a pair of arrays (checked by ``Output``)."""
    if out is None:
        return None, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise InputError(f"{what}: out must be a (gradient, Hessian) pair of arrays")
    return out


def disjoint(outputs: Sequence[Output], what: str) -> None:
    """Several outputs (one per prediction) must be distinct buffers."""
    for i, a in enumerate(outputs):
        for b in outputs[i + 1:]:
            if np.may_share_memory(a.result, b.result):
                raise InputError(f"{what}: the out arrays must not share memory with each other")
