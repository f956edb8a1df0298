"""Device arrays in, numba-cuda kernels underneath: the GPU side of ``Loss``.

``Loss`` methods given device arrays (PyTorch CUDA tensors, CuPy arrays, numba
device arrays: anything with ``__cuda_array_interface__``) come here instead
of the CPU kernels.  Nothing is copied to the host and the host never waits:

- PyTorch tensors: outputs come from PyTorch's caching allocator and every
  kernel runs on PyTorch's current stream, so the calls order with the
  caller's own work exactly like a PyTorch operation.  Results are tensors
  (detached: the kernels compute the gradient themselves).
- CuPy arrays: likewise with CuPy's allocator and current stream.
- numba device arrays (and any other ``__cuda_array_interface__`` object):
  numba allocations on the default stream; results are numba device arrays.

A reduced value is a 0-d array of the caller's kind, still on the device.
Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the simulator's
arrays are device arrays, which is how the tests run without a GPU.

numba.cuda is imported only when a device array first arrives, so
``is_device_array`` costs the CPU path nothing.
"""
from __future__ import annotations

import contextlib
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ..._paths import generated_dir
from ...errors import InputError
from ...spec.model import LossSpec
from ... import arrays as A

THREADS = 256  # threads per block (a power of two, at most the modules' BLOCK)
# Blocks per launch: WAVES times as many as the GPU runs at once.  Measured on an
# H200 (bench/README.md): 1 wave and 16 waves tie for memory-bound kernels, 16
# waves win for math-heavier ones, and 1.3 to 4 waves lose (the last wave idles
# part of the GPU).
WAVES = 16
BLOCKS_PER_SM = 8  # the grid cap in the simulator, which has no occupancy to ask

_SIMULATOR_ARRAYS = ("FakeCUDAArray", "FakeWithinKernelCUDAArray")


# --- telling device arrays apart, cheaply ------------------------------------------------
def _torch_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _cupy_array(x) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


def _simulated(x) -> bool:
    cls = type(x)
    return cls.__name__ in _SIMULATOR_ARRAYS and cls.__module__.startswith(("numba.", "numba_cuda."))


def is_device_array(x) -> bool:
    """True for an array that lives on a CUDA device (or in numba's CUDA simulator)."""
    if x is None or isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return False
    if _torch_tensor(x):
        return x.is_cuda
    if _simulated(x):
        return True
    try:
        return hasattr(x, "__cuda_array_interface__")
    except Exception:  # a property that refuses to answer
        return False


def on_device(arrays, sample_weight=None) -> bool:
    return any(is_device_array(a) for a in arrays) or is_device_array(sample_weight)


# --- numba.cuda, imported once and patched once ---------------------------------------------
@functools.cache
def _cuda():
    from numba.core import config

    if not hasattr(np, "row_stack"):
        # numba-cuda 0.30 still calls numpy.row_stack, which numpy 2.5 removed; the
        # first kernel compile fails without this alias.  It must exist before any compile.
        np.row_stack = np.vstack
    from numba import cuda

    if not config.ENABLE_CUDASIM:
        # The one-block launches that finish a sum, and any small input, would warn
        # on every call; the grid sizes are chosen here, not by the user.
        config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
    return cuda


def simulator() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


# --- the caller's array library ----------------------------------------------------------------
class _Numba:
    """numba device arrays and any other ``__cuda_array_interface__`` object (and the simulator's).

    Each kind says how to view, convert and allocate its arrays, on which
    device and stream the kernels run, and what a result looks like.
    """

    name = "numba"

    def __init__(self, sample, module: ModuleType, threads: int):
        self.cuda = _cuda()
        self.module, self.threads = module, threads  # for the cast kernel
        self.stream = 0  # the default stream, as numba uses

    def context(self):
        return contextlib.nullcontext()  # numba arrays live in the current context

    def is_same_kind(self, x) -> bool:
        return is_device_array(x) and not _torch_tensor(x) and not _cupy_array(x)

    def dtype_of(self, x) -> np.dtype:
        return np.dtype(x.dtype)

    def shape_of(self, x) -> tuple[int, ...]:
        return tuple(x.shape)

    def _array(self, x):
        if _simulated(x) or isinstance(x, self.cuda.cudadrv.devicearray.DeviceNDArray):
            return x
        return self.cuda.as_cuda_array(x)

    def contiguous(self, x) -> bool:
        return self._array(x).is_c_contiguous()

    def view(self, x):
        """A flat numba device view of a C-contiguous array (no copy)."""
        return self._array(x).reshape(-1)

    def convert(self, x, dtype: np.dtype, what: str):
        """(owner, flat view) of ``x`` as a C-contiguous array of ``dtype``."""
        if not self.contiguous(x):
            raise InputError(f"{what} must be C-contiguous")
        view = self.view(x)
        if view.dtype == dtype:
            return x, view
        owner, out = self.empty((view.size,), dtype)
        blocks = max(1, min(1024, -(-view.size // self.threads)))
        self.module.cast[blocks, self.threads, self.stream](view, out)
        return owner, out

    def empty(self, shape, dtype):
        arr = self.cuda.device_array(shape, dtype=dtype, stream=self.stream)
        return arr, arr.reshape(-1)

    def result(self, arr, shape):
        return arr.reshape(shape)

    def ones(self):
        """A flat one-element float64 array holding 1, never written (the unweighted ``norm``)."""
        return self.cuda.to_device(np.ones(1), stream=self.stream)


class _Torch(_Numba):
    name = "torch"

    def __init__(self, sample, module, threads):
        import torch

        self.torch = torch
        self.cuda = _cuda()
        self.module, self.threads = module, threads
        self.device = sample.device
        self.stream = _stream(torch.cuda.current_stream(self.device).cuda_stream)
        self.other_device = self.device.index not in (None, torch.cuda.current_device())

    def context(self):
        # torch has made the primary context of its current device current; numba uses it
        return self.cuda.gpus[self.device.index] if self.other_device else contextlib.nullcontext()

    def is_same_kind(self, x):
        return _torch_tensor(x) and x.is_cuda

    def dtype_of(self, x):
        try:
            return np.dtype(str(x.dtype).removeprefix("torch."))
        except TypeError:  # bfloat16 and other types numpy lacks
            raise InputError(f"unsupported tensor dtype {x.dtype}; use float32 or float64") from None

    def contiguous(self, x):
        return x.is_contiguous()

    def view(self, x):
        # torch's interface (version 2) names no stream, so numba does not synchronise
        return self.cuda.as_cuda_array(x.detach().reshape(-1))

    def convert(self, x, dtype, what):
        if x.device != self.device:
            raise InputError(f"{what} is on {x.device}, the predictions on {self.device}")
        t = x.detach().to(dtype=_torch_dtype(dtype)).contiguous().reshape(-1)
        return t, self.cuda.as_cuda_array(t)

    def empty(self, shape, dtype):
        t = self.torch.empty(shape, dtype=_torch_dtype(dtype), device=self.device)
        return t, self.view(t)

    def ones(self):
        if self.device not in _ONES:
            t = self.torch.ones(1, dtype=self.torch.float64, device=self.device)
            t.cpu()  # filled before any stream reads it: it is shared by every stream
            _ONES[self.device] = self.view(t)
        return _ONES[self.device]


class _CuPy(_Numba):
    name = "cupy"

    def __init__(self, sample, module, threads):
        import cupy

        self.cupy = cupy
        self.cuda = _cuda()
        self.module, self.threads = module, threads
        self.device_id = sample.device.id
        self.stream = _stream(cupy.cuda.get_current_stream().ptr)
        self.other_device = self.device_id != cupy.cuda.runtime.getDevice()

    def context(self):
        return self.cuda.gpus[self.device_id] if self.other_device else contextlib.nullcontext()

    def is_same_kind(self, x):
        return _cupy_array(x)

    def contiguous(self, x):
        return x.flags.c_contiguous

    def view(self, x):
        # CuPy's interface names its current stream; the kernels run on it, so no sync
        flat = x.reshape(-1)
        return self.cuda.from_cuda_array_interface(flat.__cuda_array_interface__, owner=flat, sync=False)

    def convert(self, x, dtype, what):
        with self.cupy.cuda.Device(self.device_id):
            arr = self.cupy.ascontiguousarray(x, dtype=dtype).reshape(-1)
        return arr, self.view(arr)

    def empty(self, shape, dtype):
        with self.cupy.cuda.Device(self.device_id):
            arr = self.cupy.empty(shape, dtype=dtype)
        return arr, self.view(arr)

    def ones(self):
        key = ("cupy", self.device_id)
        if key not in _ONES:
            with self.cupy.cuda.Device(self.device_id):
                arr = self.cupy.ones(1, dtype=np.float64)
                arr.get()  # filled before any stream reads it
            _ONES[key] = self.view(arr)
        return _ONES[key]


def _span(view) -> tuple[int, int]:
    """The bytes a C-contiguous device view covers (the simulator's: those of the host array it wraps)."""
    iface = getattr(view, "__cuda_array_interface__", None) or view.__array_interface__
    start = iface["data"][0]
    return start, start + view.size * view.dtype.itemsize


def check_disjoint(outs, inputs, what: str, alias_ok: bool) -> None:
    """Output views must not overlap the input views (``alias_ok``: except being one exactly, as an
    elementwise kernel reads an element before it writes it) nor one another.  A row kernel writes
    a row's outputs before it reads the row again, so an overlap there corrupts results silently."""
    spans = [_span(v) for v in outs]
    for s in (_span(v) for v in inputs if v is not None):
        for o in spans:
            if o[0] < s[1] and s[0] < o[1] and not (alias_ok and o == s):
                raise InputError(f"{what}: out must not share memory with the inputs"
                                 + (" (except being one of them exactly)" if alias_ok else ""))
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a[0] < b[1] and b[0] < a[1]:
                raise InputError(f"{what}: the out arrays must not share memory with each other")


def _torch_dtype(dtype: np.dtype):
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


_STREAMS: dict[int, object] = {}
_ONES: dict[object, object] = {}  # per device: a read-only float64 [1.0]


def _stream(handle: int):
    """numba's stream object for a CUDA stream handle that another library owns."""
    cuda = _cuda()
    if not handle:
        return cuda.default_stream()
    if handle not in _STREAMS:
        _STREAMS[handle] = cuda.external_stream(handle)
    return _STREAMS[handle]


def _kind_of(x, module: ModuleType, threads: int) -> _Numba:
    if _torch_tensor(x):
        return _Torch(x, module, threads)
    if _cupy_array(x):
        return _CuPy(x, module, threads)
    return _Numba(x, module, threads)


# --- launch geometry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """Threads per block, and a fixed grid cap (``None``: as many blocks as the GPU holds at once)."""

    threads: int = THREADS
    max_blocks: int | None = None

    def __post_init__(self):
        if self.threads < 1 or self.threads & (self.threads - 1) or self.threads > 1024:
            raise ValueError(f"threads must be a power of two <= 1024, got {self.threads}")


_RESIDENT: dict[tuple, int] = {}


def _resident_blocks(kernel, dtype: np.dtype, args, threads: int) -> int:
    """How many blocks of ``kernel`` (compiled for these arguments) the whole GPU runs at once.

    A grid-stride loop gives every block the same work, so the grid must be a
    whole number of these waves, or the last one leaves SMs idle.  Registers
    decide the wave, so ask the compiled kernel.
    """
    key = (kernel, dtype, threads)  # the arguments' types follow from the dtype
    if key not in _RESIDENT:
        argtypes = tuple(kernel.typeof_pyval(a) for a in args)
        _RESIDENT[key] = max(1, kernel.compile(argtypes).max_cooperative_grid_blocks(threads))
    return _RESIDENT[key]


# --- finding the kernel module -------------------------------------------------------------------
def module_path_for(spec: LossSpec, cpu_module: ModuleType | None = None) -> Path:
    """The generated CUDA module beside a catalog loss's CPU module, else one rendered into the cache."""
    if cpu_module is not None and getattr(cpu_module, "__file__", None):
        cpu_path = Path(cpu_module.__file__).resolve()
        if cpu_path.parent == generated_dir().resolve():
            candidate = cpu_path.parent / "cuda" / cpu_path.name
            if candidate.is_file():
                return candidate
    from ...derive import Derivation
    from .render import render_module
    from ...modules import cache_source

    from ...limits import generating

    with generating(spec.source):
        source = render_module(Derivation(spec))
    return cache_source(spec.name, source, subdir="cuda")


def load_module(spec: LossSpec, cpu_module: ModuleType | None = None) -> ModuleType:
    from ...modules import import_path

    _cuda()  # the numpy alias and numba's settings before the module's decorators run
    return import_path(module_path_for(spec, cpu_module))


# --- the device side of Loss --------------------------------------------------------------------------
@dataclass
class _Call:
    kind: _Numba
    shape: tuple[int, ...]
    dtype: np.dtype
    n: int
    data: list  # flat numba views of the inputs
    owners: list  # converted inputs, kept alive until the launches are queued
    params: list
    w: object  # flat view of the weights, or the prediction (never read) when unweighted
    weighted: bool


class DeviceLoss:
    """``value``, ``grad``, ``value_and_grad``, ``hessian``, ``grad_hessian`` on device arrays.

    Same signatures, defaults and results as ``Loss``; the arrays are device
    arrays and so are the results.
    """

    def __init__(self, spec: LossSpec, module: ModuleType, launch: Launch | None = None):
        self.spec = spec
        self.module = module
        self.name = spec.name
        self.predictions = tuple(i.name for i in spec.predictions)
        self.launch = launch or Launch()
        if self.launch.threads > module.BLOCK:
            raise ValueError(f"threads must be at most the module's BLOCK ({module.BLOCK})")

    # checking and converting the inputs ------------------------------------------------------------
    def _setup(self, arrays, reduction, sample_weight, params) -> _Call:
        A.check_reduction(reduction)
        spec = self.spec
        names = [i.name for i in spec.inputs]
        if len(arrays) != len(names):
            raise InputError(f"{spec.name} takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
        first_pred = [i.differentiable for i in spec.inputs].index(True)
        sample = arrays[first_pred] if is_device_array(arrays[first_pred]) else next(a for a in arrays
                                                                                    if is_device_array(a))
        kind = _kind_of(sample, self.module, self.launch.threads)
        for a, name in zip(arrays, names):
            if not kind.is_same_kind(a):
                raise InputError(
                    f"{spec.name}: '{name}' must be a {kind.name} device array like the others, got {type(a).__name__}"
                )
        dtypes = [kind.dtype_of(a) for a in arrays]
        for d, name in zip(dtypes, names):
            if d.kind not in "biuf":
                raise InputError(f"{spec.name}: '{name}' must be numeric, got dtype {d}")
        dtype = np.result_type(*[d for d, i in zip(dtypes, spec.inputs) if i.differentiable])
        if dtype.kind in "biu":
            dtype = np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"{spec.name}: predictions must be float32 or float64 arrays, got {dtype}")
        shape = kind.shape_of(arrays[first_pred])
        for a, name in zip(arrays, names):
            if kind.shape_of(a) != shape:
                raise InputError(
                    f"{spec.name}: '{name}' has shape {kind.shape_of(a)}, expected {shape} like the predictions"
                )
        pvals = A.prepare_params(spec, params, dtype)
        owners, data = [], []
        with kind.context():
            for a, name in zip(arrays, names):
                owner, view = kind.convert(a, dtype, f"{spec.name}: '{name}'")
                owners.append(owner)
                data.append(view)
            weighted = sample_weight is not None
            w = data[first_pred]  # a placeholder of the right type; kernels read w only when weighted
            if weighted:
                if not kind.is_same_kind(sample_weight):
                    raise InputError(f"sample_weight must be a {kind.name} device array like the inputs")
                if kind.shape_of(sample_weight) != shape:
                    raise InputError(f"sample_weight has shape {kind.shape_of(sample_weight)}, expected {shape}")
                if kind.dtype_of(sample_weight).kind not in "biuf":
                    raise InputError(f"sample_weight must be numeric, got dtype {kind.dtype_of(sample_weight)}")
                owner, w = kind.convert(sample_weight, dtype, "sample_weight")
                owners.append(owner)
        n = math.prod(shape)
        return _Call(kind, shape, dtype, n, data, owners, pvals, w, weighted)

    # launching ---------------------------------------------------------------------------------------
    def _grid(self, c: _Call, kernel, args) -> int:
        threads = self.launch.threads
        if self.launch.max_blocks:
            cap = self.launch.max_blocks
        elif simulator():
            cap = BLOCKS_PER_SM
        else:
            cap = WAVES * _resident_blocks(kernel, c.dtype, args, threads)
        return max(1, min(cap, -(-c.n // threads)))

    def _map(self, c: _Call, kernel, *args) -> None:
        """Launch an elementwise kernel over the c.n elements."""
        grid = self._grid(c, kernel, args)
        kernel[grid, self.launch.threads, c.kind.stream](*args)

    def _reduce(self, c: _Call, kernel, *args, like):
        """Launch a reducing kernel; returns its per-block float64 sums (its last argument).

        ``like`` is any flat float64 device array: it stands in for the sums
        while the kernel's signature decides the grid, and so their size.
        """
        grid = self._grid(c, kernel, args + (like,))
        _, partials = c.kind.empty((grid,), np.float64)
        kernel[grid, self.launch.threads, c.kind.stream](*args, partials)
        return partials

    @staticmethod
    def _scale(c: _Call, reduction: str) -> float:
        """What the host knows of the reduction's factor: 1 (sum, none, weighted mean) or 1/N."""
        if reduction != "mean" or c.weighted:
            return 1.0
        return 1.0 / c.n if c.n else math.nan

    def _norm(self, c: _Call, reduction: str):
        """The factor the device computes: 1/sum(w) for a weighted mean, else 1 (a one-element array)."""
        if reduction == "mean" and c.weighted:
            _, norm = c.kind.empty((1,), np.float64)
            partials = self._reduce(c, self.module.weight_sum, c.w, like=norm)
            self.module.finish_reciprocal[1, self.launch.threads, c.kind.stream](partials, norm)
            return norm
        return c.kind.ones()

    def _finish(self, c: _Call, partials, scale, norm):
        """The reduced value, sum(partials) * scale * norm[0], as a 0-d array of the inputs' dtype."""
        owner, view = c.kind.empty((1,), c.dtype)
        self.module.finish_sum[1, self.launch.threads, c.kind.stream](partials, scale, norm, view)
        return c.kind.result(owner, ())

    # output buffers -------------------------------------------------------------------------------------
    def _out(self, c: _Call, out, shape, what):
        if out is None:
            return c.kind.empty(shape, c.dtype)
        if not c.kind.is_same_kind(out):
            raise InputError(f"{what}: out must be a {c.kind.name} device array like the inputs")
        if c.kind.shape_of(out) != tuple(shape) or c.kind.dtype_of(out) != c.dtype:
            raise InputError(
                f"{what}: out must have shape {tuple(shape)} and dtype {c.dtype}, "
                f"got {c.kind.shape_of(out)} {c.kind.dtype_of(out)}"
            )
        if not c.kind.contiguous(out):
            raise InputError(f"{what}: out must be C-contiguous")
        view = c.kind.view(out)
        check_disjoint([view], c.data + ([c.w] if c.weighted else []), what, alias_ok=True)
        return out, view

    def _grad_buffers(self, c: _Call, out):
        k = len(self.predictions)
        if k == 1:
            outs = (out,)
        else:
            outs = (None,) * k if out is None else tuple(out)
            if len(outs) != k:
                raise InputError(f"{self.name}: out must be a tuple of {k} arrays")
        pairs = [self._out(c, o, c.shape, f"{self.name}.grad") for o in outs]
        check_disjoint([p[1] for p in pairs], [], f"{self.name}.grad", alias_ok=False)
        result = pairs[0][0] if k == 1 else tuple(p[0] for p in pairs)
        return result, [p[1] for p in pairs]

    def _hess_buffers(self, c: _Call, out):
        k = len(self.predictions)
        full = c.shape if k == 1 else (k, k) + c.shape
        arr, flat = self._out(c, out, full, f"{self.name}.hessian")
        # row-major (i, j) blocks of n elements, the order of the module's HESSIAN_OUTPUTS
        views = [flat[m * c.n:(m + 1) * c.n] for m in range(len(self.module.HESSIAN_OUTPUTS))]
        return arr, views

    # the API --------------------------------------------------------------------------------------------
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        c = self._setup(arrays, reduction, sample_weight, params)
        with c.kind.context():
            norm = self._norm(c, reduction)
            keep = reduction == "none"
            # without per-element output, the prediction is a placeholder never written
            arr, view = self._out(c, out, c.shape, f"{self.name}.value") if keep else (None, c.data[0])
            partials = self._reduce(
                c, self.module.value, *c.data, *c.params, c.w, c.weighted, view, keep, like=norm
            )
            return arr if keep else self._finish(c, partials, self._scale(c, reduction), norm)

    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        c = self._setup(arrays, reduction, sample_weight, params)
        with c.kind.context():
            result, views = self._grad_buffers(c, out)
            scale, norm = self._scale(c, reduction), self._norm(c, reduction)
            self._map(c, self.module.grad, *c.data, *c.params, c.w, c.weighted, scale, norm, *views)
            return result

    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        """(value, gradient) in one fused pass; ``out`` is the gradient buffer."""
        c = self._setup(arrays, reduction, sample_weight, params)
        with c.kind.context():
            result, views = self._grad_buffers(c, out)
            scale, norm = self._scale(c, reduction), self._norm(c, reduction)
            keep = reduction == "none"
            values, vview = c.kind.empty(c.shape, c.dtype) if keep else (None, c.data[0])
            partials = self._reduce(
                c, self.module.value_and_grad,
                *c.data, *c.params, c.w, c.weighted, scale, norm, vview, keep, *views, like=norm,
            )
            return (values if keep else self._finish(c, partials, scale, norm)), result

    def hessian(self, *arrays, reduction="none", sample_weight=None, out=None, **params):
        """Per-element second derivatives: the prediction's shape, or (P, P, *shape) for P > 1."""
        c = self._setup(arrays, reduction, sample_weight, params)
        with c.kind.context():
            arr, views = self._hess_buffers(c, out)
            scale, norm = self._scale(c, reduction), self._norm(c, reduction)
            self._map(c, self.module.hessian, *c.data, *c.params, c.w, c.weighted, scale, norm, *views)
            return arr

    def grad_hessian(self, *arrays, reduction="none", sample_weight=None, out=None, **params):
        """(gradient, Hessian) in one fused pass; ``out=(g, h)`` as for the CPU."""
        c = self._setup(arrays, reduction, sample_weight, params)
        out_g, out_h = A.out_pair(out, f"{self.name}.grad_hessian")
        with c.kind.context():
            g, gviews = self._grad_buffers(c, out_g)
            h, hviews = self._hess_buffers(c, out_h)
            check_disjoint(gviews + hviews, [], f"{self.name}.grad_hessian", alias_ok=False)
            scale, norm = self._scale(c, reduction), self._norm(c, reduction)
            self._map(
                c, self.module.grad_hessian, *c.data, *c.params, c.w, c.weighted, scale, norm, *gviews, *hviews
            )
            return g, h

    def param_grad(self, *arrays, reduction="mean", sample_weight=None, **params) -> dict:
        """{param: d loss / d param}: 0-d device arrays for mean and sum, per-element for none."""
        names = getattr(self.module, "PARAM_GRADS", ())
        if not names:
            raise InputError(f"{self.name}: no parameter is declared differentiable (params.<name>.differentiable)")
        c = self._setup(arrays, reduction, sample_weight, params)
        with c.kind.context():
            pairs = [c.kind.empty(c.shape, c.dtype) for _ in names]
            self._map(c, self.module.param_grad, *c.data, *c.params, c.w, c.weighted, *(view for _, view in pairs))
            if reduction == "none":
                return {n: arr for n, (arr, _) in zip(names, pairs)}
            norm = self._norm(c, reduction)
            out = {}
            for n, (_, view) in zip(names, pairs):
                partials = self._reduce(c, self.module.weight_sum, view, like=norm)
                out[n] = self._finish(c, partials, self._scale(c, reduction), norm)
            return out


# --- the hook for Loss ---------------------------------------------------------------------------------
def device_loss(loss) -> DeviceLoss:
    """The DeviceLoss of a ``Loss``, built once (its CUDA module is imported on first use)."""
    dev = loss.__dict__.get("_device_loss")
    if dev is None:
        dev = DeviceLoss(loss.spec, load_module(loss.spec, loss.module))
        loss.__dict__["_device_loss"] = dev
    return dev


def dispatch(method):
    """Decorate a ``Loss`` method: device arrays go to the CUDA kernels, the rest to ``method``."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *arrays, **kwargs):
        if on_device(arrays, kwargs.get("sample_weight")):
            return getattr(device_loss(self), name)(*arrays, **kwargs)
        return method(self, *arrays, **kwargs)

    return wrapper
