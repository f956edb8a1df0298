"""Validation of user arrays and parameters, before any kernel runs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..spec.model import LossSpec

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def float_dtype(spec: LossSpec, arrays: Sequence[np.ndarray]) -> np.dtype:
    """The kernels' dtype: that of the predictions (float32 or float64)."""
    preds = [a for a, i in zip(arrays, spec.inputs) if i.differentiable]
    dtype = np.result_type(*preds)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"{spec.name}: predictions must be float32 or float64 arrays, got {dtype}")
    return dtype


def prepare_inputs(spec: LossSpec, arrays: Sequence) -> tuple[list[np.ndarray], tuple[int, ...], np.dtype]:
    """Check count, shape and dtype; return flat C-contiguous arrays of one dtype."""
    names = [i.name for i in spec.inputs]
    if len(arrays) != len(names):
        raise InputError(f"{spec.name} takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
    arrs = [np.asarray(a) for a in arrays]
    for a, name in zip(arrs, names):
        if a.dtype.kind not in "biuf":
            raise InputError(f"{spec.name}: '{name}' must be numeric, got dtype {a.dtype}")
    dtype = float_dtype(spec, arrs)
    shape = arrs[[i.differentiable for i in spec.inputs].index(True)].shape
    for a, name in zip(arrs, names):
        if a.shape != shape:
            raise InputError(f"{spec.name}: '{name}' has shape {a.shape}, expected {shape} like the predictions")
    flat = [np.ascontiguousarray(a, dtype=dtype).reshape(-1) for a in arrs]
    return flat, shape, dtype


def prepare_weights(sample_weight, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise InputError(f"sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape != shape:
        raise InputError(f"sample_weight has shape {w.shape}, expected {shape}")
    return np.ascontiguousarray(w, dtype=dtype).reshape(-1)


def prepare_params(spec: LossSpec, given: dict, dtype: np.dtype) -> list:
    known = {p.name for p in spec.params}
    unknown = sorted(set(given) - known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"{spec.name}: unknown parameter(s) {', '.join(unknown)}; parameters: {listed}")
    values = []
    for p in spec.params:
        value = given.get(p.name, p.default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputError(f"{spec.name}: parameter '{p.name}' must be a number, got {value!r}")
        problem = p.violation(float(value))
        if problem:
            raise InputError(f"{spec.name}: parameter '{p.name}' {problem}")
        values.append(dtype.type(value))
    return values


def output_buffer(out, shape: tuple[int, ...], dtype: np.dtype, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(array to return, flat view the kernel writes); ``out`` may be None."""
    if out is None:
        arr = np.empty(shape, dtype=dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise InputError(f"{what}: out must be a numpy array")
        if out.shape != shape or out.dtype != dtype:
            raise InputError(f"{what}: out must have shape {shape} and dtype {dtype}, got {out.shape} {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise InputError(f"{what}: out must be a writeable C-contiguous array")
        arr = out
    return arr, arr.reshape(-1)
