"""Device arrays in, numba-cuda row kernels underneath: the GPU side of ``RowLoss``.

The same conventions as ``backends.numba_cuda.runtime`` (which serves ``Loss``):
PyTorch tensors, CuPy arrays and numba device arrays (and the simulator's)
go to the kernels of templates/cuda/row_module.py.j2 on the caller's stream,
nothing comes back to the host, and results are arrays of the caller's kind
(a reduced value is a 0-d device array).

The kernel shape is chosen by K (``plan``): one warp per row while the row's
arrays fit in shared memory beside three more rows' (K <= 1024), else one block
per row with the row in shared memory (up to 48 KiB), else one block per row
reading global memory in each of its two passes (online softmax: max and sums
in one pass, outputs in the second).

Class inputs (``weight=``) may be device arrays of the caller's kind or host
arrays (copied up).  Class indices are not range-checked on the device (that
would need a host synchronisation): an index outside [0, K) that is not
``ignore_index`` acts as a row with no target class.  ``hessian`` (the full
per-row Hessian) has no CUDA kernel.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ...errors import InputError
from ...spec.model import LossSpec
from ... import arrays as A
from . import runtime as C

WARP = 32
WARP_MAX_K = 1024  # one warp per row up to this many classes
SHARED_BYTES = 48 * 1024  # dynamic shared memory a block may take without opting in
ROWS_PER_WARP_BLOCK = 4  # rows (warps) per block of the warp layout
IGNORE_INDEX = -100
# What launches taught (see DeviceRowLoss._launch_with_fallbacks): (module, kernel, dtype) -> layout,
# and (module, kernel, dtype, layout) -> threads
_FALLBACK: dict[tuple, str] = {}
_THREADS: dict[tuple, int] = {}


# --- the module ---------------------------------------------------------------------------------
def module_path(spec: LossSpec) -> Path:
    """The CUDA row module of ``spec``, rendered into the cache (keyed by the code's hash)."""
    from ...derive.row import RowDerivation
    from .render_row import render_row_module
    from ...modules import cache_source

    from ...limits import generating

    with generating(spec.source):
        source = render_row_module(RowDerivation(spec))
    return cache_source(f"{spec.name}_row", source, subdir="cuda")


def load_module(spec: LossSpec) -> ModuleType:
    from ...modules import import_path

    C._cuda()  # numba's settings and the numpy alias before the module's decorators run
    return import_path(module_path(spec))


# --- launch plans -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    layout: str  # "warp" | "block" | "stream"
    threads: int
    rows_per_block: int
    shared: int  # dynamic shared memory bytes


def _pow2_floor(x: int) -> int:
    return 1 << (max(1, x).bit_length() - 1)


def plan(k: int, cached: int, itemsize: int, layout: str | None = None, threads: int | None = None) -> Plan:
    """Kernel shape for rows of ``k`` classes, ``cached`` (N, K) arrays kept per row."""
    row_bytes = cached * k * itemsize
    if layout is None:
        if k <= WARP_MAX_K and row_bytes <= SHARED_BYTES:
            layout = "warp"
        elif row_bytes <= SHARED_BYTES:
            layout = "block"
        else:
            layout = "stream"
    if layout == "warp":
        rows = max(1, min(ROWS_PER_WARP_BLOCK, SHARED_BYTES // row_bytes if row_bytes else ROWS_PER_WARP_BLOCK))
        if threads is not None:
            rows = max(1, threads // WARP)
        return Plan("warp", WARP * rows, rows, rows * row_bytes)
    if threads is None:  # about 8 classes per thread, 128 to 1024 threads (512 streaming: on the H200
        # the streaming kernel had too many registers for 1024)
        threads = min(1024 if layout == "block" else 512, max(128, _pow2_floor(k // 8)))
    return Plan(layout, threads, 1, row_bytes if layout == "block" else 0)


def _convert_indices(kind, x, what):
    """(owner, flat int64 view) of integer class indices."""
    if isinstance(kind, C._Torch):
        if x.device != kind.device:
            raise InputError(f"{what} is on {x.device}, the predictions on {kind.device}")
        t = x.detach().to(dtype=kind.torch.int64).contiguous().reshape(-1)
        return t, kind.cuda.as_cuda_array(t)
    return kind.convert(x, np.dtype(np.int64), what)


# --- the device side of RowLoss -----------------------------------------------------------------
@dataclass
class _Call:
    kind: object
    shape: tuple[int, ...]
    batch: tuple[int, ...]
    n: int
    k: int
    dtype: np.dtype
    arrays: list  # flat views in the kernels' order (class indices: int64)
    owners: list
    class_arrays: list  # flat views (a placeholder where not given)
    has_class: list
    params: list
    indices: bool
    w: object
    weighted: bool
    ignore: int
    targets: object  # the int64 class indices (flat view) or None


class DeviceRowLoss:
    """``value``, ``grad``, ``value_and_grad``, ``hessian_diag``, ``hvp`` of a row loss on device arrays.

    Same signatures, defaults and results as ``RowLoss``.  ``layout`` and
    ``threads`` override the shape chosen by K, ``max_blocks`` caps the grid
    (the kernels loop over rows), for tests and benchmarks.
    """

    def __init__(self, spec: LossSpec, module: ModuleType, layout: str | None = None,
                 threads: int | None = None, max_blocks: int | None = None):
        self.spec = spec
        self.module = module
        self.name = spec.name
        self.layout, self.threads, self.max_blocks = layout, threads, max_blocks
        self.spec_inputs = tuple(i for i in spec.inputs if i.shape in ("vector", "scalar"))
        self.inputs = tuple(i.name for i in self.spec_inputs)
        self.class_inputs = {i.name: i.default for i in spec.inputs if i.shape == "class"}
        self.predictions = tuple(i.name for i in spec.predictions)

    # inputs ----------------------------------------------------------------------------------
    def _upload(self, kind, value, dtype, what):
        """A class input as a flat device array of ``dtype`` (host arrays are copied up)."""
        if kind.is_same_kind(value):
            if not kind.contiguous(value):
                raise InputError(f"{what} must be C-contiguous")
            return kind.convert(value, dtype, what)
        if C.is_device_array(value):
            raise InputError(f"{what} must be a {kind.name} device array like the inputs, or a host array")
        host = np.ascontiguousarray(np.asarray(value), dtype=dtype).reshape(-1)
        if isinstance(kind, C._Torch):
            t = kind.torch.as_tensor(host).to(kind.device)
            return t, kind.view(t)
        if isinstance(kind, C._CuPy):
            with kind.cupy.cuda.Device(kind.device_id):
                arr = kind.cupy.asarray(host)
            return arr, kind.view(arr)
        arr = kind.cuda.to_device(host, stream=kind.stream)
        return arr, arr

    def _setup(self, arrays, reduction, sample_weight, params, ignore_index) -> _Call:
        A.check_reduction(reduction)
        spec = self.spec
        if len(arrays) != len(self.inputs):
            raise InputError(f"{spec.name} takes {len(self.inputs)} arrays ({', '.join(self.inputs)}), "
                             f"got {len(arrays)}")
        named = dict(zip(self.inputs, arrays))
        sample = named[self.predictions[0]]
        if not C.is_device_array(sample):
            sample = next(a for a in arrays if C.is_device_array(a))
        kind = C._kind_of(sample, self.module, 256)
        for name, a in named.items():
            if not kind.is_same_kind(a):
                raise InputError(f"{spec.name}: '{name}' must be a {kind.name} device array like the others, "
                                 f"got {type(a).__name__}")
            if kind.dtype_of(a).kind not in "biuf":
                raise InputError(f"{spec.name}: '{name}' must be numeric, got dtype {kind.dtype_of(a)}")
        dtype = np.result_type(*[kind.dtype_of(named[p]) for p in self.predictions])
        if dtype.kind in "biu":
            dtype = np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"{spec.name}: predictions must be float32 or float64 arrays, got {dtype}")
        shape = kind.shape_of(named[self.predictions[0]])
        if len(shape) == 0:
            raise InputError(f"{spec.name}: predictions need a class axis (the last one), got a scalar")
        batch, k = shape[:-1], shape[-1]
        if k == 0:
            raise InputError(f"{spec.name}: the class axis is empty")
        n = math.prod(batch)
        indices, owners, views, targets = False, [], [], None
        with kind.context():
            for inp in self.spec_inputs:
                a = named[inp.name]
                s = kind.shape_of(a)
                if inp.shape == "scalar":
                    if s != batch:
                        raise InputError(f"{spec.name}: '{inp.name}' has shape {s}, expected {batch} (one per row)")
                    owner, view = kind.convert(a, dtype, f"{spec.name}: '{inp.name}'")
                elif inp.indices and s == batch and s != shape:
                    if kind.dtype_of(a).kind not in "iu":
                        raise InputError(f"{spec.name}: '{inp.name}' of shape {s} is read as class indices, "
                                         f"which must be integers (got {kind.dtype_of(a)})")
                    owner, view = _convert_indices(kind, a, f"{spec.name}: '{inp.name}'")
                    indices, targets = True, view
                else:
                    if s != shape:
                        extra = f" or {batch} (class indices)" if inp.indices else ""
                        raise InputError(f"{spec.name}: '{inp.name}' has shape {s}, expected {shape}{extra}")
                    owner, view = kind.convert(a, dtype, f"{spec.name}: '{inp.name}'")
                owners.append(owner)
                views.append(view)
            given = dict(params)
            placeholder = views[self.inputs.index(self.predictions[0])]
            class_views, has = [], []
            for name in self.class_inputs:
                c = given.pop(name, None)
                if c is None:
                    class_views.append(placeholder)
                    has.append(False)
                    continue
                cs = kind.shape_of(c) if kind.is_same_kind(c) else np.shape(c)
                if tuple(cs) != (k,):
                    raise InputError(f"{spec.name}: '{name}' has shape {tuple(cs)}, expected ({k},) (one per class)")
                owner, view = self._upload(kind, c, dtype, f"{spec.name}: '{name}'")
                owners.append(owner)
                class_views.append(view)
                has.append(True)
            pvals = A.prepare_params(spec, given, dtype)
            weighted = sample_weight is not None
            w = placeholder
            if weighted:
                if not kind.is_same_kind(sample_weight):
                    raise InputError(f"sample_weight must be a {kind.name} device array like the inputs")
                if kind.shape_of(sample_weight) != batch:
                    raise InputError(f"sample_weight has shape {kind.shape_of(sample_weight)}, "
                                     f"expected {batch} (one per row)")
                owner, w = kind.convert(sample_weight, dtype, "sample_weight")
                owners.append(owner)
        return _Call(kind, shape, batch, n, k, dtype, views, owners, class_views, has, pvals, indices, w,
                     weighted, int(ignore_index), targets)

    # launching -------------------------------------------------------------------------------
    def _plan(self, c: _Call, kname: str) -> Plan:
        variant = "_idx" if c.indices else ""
        cached = self.module.CACHED[kname + variant]
        layout = self.layout or _FALLBACK.get((self.module.NAME, kname + variant, c.dtype.name))
        threads = self.threads or _THREADS.get((self.module.NAME, kname + variant, c.dtype.name, layout))
        return plan(c.k, cached, c.dtype.itemsize, layout, threads)

    def _launch_with_fallbacks(self, c: _Call, kname: str, args_for):
        """Launch; on a GPU, a kernel with too many registers for its block retries with half the
        threads, and a shared-memory kernel that NVVM rejects (seen for float64 on numba-cuda 0.30.4)
        retries as the streaming layout.  Either choice is remembered per kernel and dtype."""
        variant = "_idx" if c.indices else ""
        key = (self.module.NAME, kname + variant, c.dtype.name)
        while True:
            p = self._plan(c, kname)
            kernel = getattr(self.module, f"{kname}{variant}_{p.layout}")
            groups = -(-c.n // p.rows_per_block)
            grid = max(1, min(groups, self.max_blocks or groups))
            args = args_for(grid)
            try:
                kernel[grid, p.threads, c.kind.stream, p.shared](*args)
                return args
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
                if "OUT_OF_RESOURCES" in text and p.layout != "warp" and p.threads > WARP and not self.threads:
                    _THREADS[key + (self.layout or _FALLBACK.get(key),)] = p.threads // 2
                elif ("INVALID_IR" in text or "nvvm" in text.lower()) and p.layout != "stream" and not self.layout:
                    _FALLBACK[key] = "stream"
                else:
                    raise

    def _norm(self, c: _Call, reduction: str):
        """(scale the host knows, one-element float64 device array the device computes)."""
        if reduction != "mean":
            return 1.0, c.kind.ones()
        if not c.weighted and not c.indices:
            return 1.0 / c.n if c.n else math.nan, c.kind.ones()
        threads = 256 if not C.simulator() else 4
        blocks = max(1, min(64 if not C.simulator() else 2, -(-c.n // threads)))
        _, partials = c.kind.empty((blocks,), np.float64)
        s = c.kind.stream
        if c.indices:
            mw = self.spec.row.mean_weight
            if mw is not None:
                i = list(self.class_inputs).index(mw)
                cw, has, default = c.class_arrays[i], c.has_class[i], float(self.class_inputs[mw])
            else:
                cw, has, default = c.class_arrays[0] if c.class_arrays else c.w, False, 1.0
            self.module.index_weight_sum[blocks, threads, s](c.targets, cw, has, default, c.w, c.weighted,
                                                             np.int64(c.ignore), np.int64(c.k), partials)
        else:
            self.module.weight_sum[blocks, threads, s](c.w, partials)
        _, norm = c.kind.empty((1,), np.float64)
        self.module.finish_reciprocal[1, threads, s](partials, norm)
        return 1.0, norm

    def _run(self, c: _Call, kname: str, reduction: str, extra=(), outs=(), keep=None):
        """Launch ``kname``; returns the block partial sums (kernels with a loss) or None."""
        scale, norm = self._norm(c, reduction)
        head = [*c.arrays, *c.class_arrays, *c.has_class, *c.params, *extra, c.w, c.weighted, scale, norm]
        if c.indices:
            head.append(np.int64(c.ignore))
        head.append(np.int64(c.k))

        def args_for(grid):
            if keep is None:
                return head + list(outs)
            placeholder = c.arrays[self.inputs.index(self.predictions[0])]
            out_view = keep if keep is not False else placeholder
            _, partials = c.kind.empty((grid,), np.float64)
            return head + [out_view, keep is not False, *outs, partials]

        args = self._launch_with_fallbacks(c, kname, args_for)
        return (args[-1] if keep is not None else None), scale, norm

    def _finish(self, c: _Call, partials, scale, norm):
        owner, view = c.kind.empty((1,), c.dtype)
        threads = 256 if not C.simulator() else 4
        self.module.finish_sum[1, threads, c.kind.stream](partials, scale, norm, view)
        return c.kind.result(owner, ())

    def _outputs(self, c: _Call, out, what, extra=()):
        preds = self.predictions
        outs = (out,) if len(preds) == 1 else ((None,) * len(preds) if out is None else tuple(out))
        if len(outs) != len(preds):
            raise InputError(f"{self.name}: out must be a tuple of {len(preds)} arrays")
        pairs = []
        for o in outs:
            if o is None:
                pairs.append(c.kind.empty(c.shape, c.dtype))
                continue
            if not c.kind.is_same_kind(o):
                raise InputError(f"{what}: out must be a {c.kind.name} device array like the inputs")
            if c.kind.shape_of(o) != c.shape or c.kind.dtype_of(o) != c.dtype or not c.kind.contiguous(o):
                raise InputError(f"{what}: out must be C-contiguous with shape {c.shape} and dtype {c.dtype}")
            pairs.append((o, c.kind.view(o)))
        given = [view for (o, view), user in zip(pairs, outs) if user is not None]
        inputs = [*c.arrays, *(a for a, has in zip(c.class_arrays, c.has_class) if has), *extra]
        C.check_disjoint(given, inputs + ([c.w] if c.weighted else []), what, alias_ok=False)
        C.check_disjoint([view for _, view in pairs], [], what, alias_ok=False)
        result = pairs[0][0] if len(pairs) == 1 else tuple(p[0] for p in pairs)
        return result, [p[1] for p in pairs]

    # the API -----------------------------------------------------------------------------------
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        c = self._setup(arrays, reduction, sample_weight, params, ignore_index)
        with c.kind.context():
            if reduction == "none":
                if out is None:
                    arr, view = c.kind.empty(c.batch, c.dtype)
                else:
                    if not c.kind.is_same_kind(out) or c.kind.shape_of(out) != c.batch:
                        raise InputError(f"{self.name}.value: out must be a {c.kind.name} array of shape {c.batch}")
                    arr, view = out, c.kind.view(out)
                self._run(c, "value", reduction, keep=view)
                return arr
            partials, scale, norm = self._run(c, "value", reduction, keep=False)
            return self._finish(c, partials, scale, norm)

    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        c = self._setup(arrays, reduction, sample_weight, params, ignore_index)
        with c.kind.context():
            result, views = self._outputs(c, out, f"{self.name}.grad")
            self._run(c, "grad", reduction, outs=views)
            return result

    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                       **params):
        c = self._setup(arrays, reduction, sample_weight, params, ignore_index)
        with c.kind.context():
            result, views = self._outputs(c, out, f"{self.name}.value_and_grad")
            if reduction == "none":
                values, vview = c.kind.empty(c.batch, c.dtype)
                self._run(c, "value_and_grad", reduction, outs=views, keep=vview)
                return values, result
            partials, scale, norm = self._run(c, "value_and_grad", reduction, outs=views, keep=False)
            return self._finish(c, partials, scale, norm), result

    def hessian_diag(self, *arrays, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                     **params):
        c = self._setup(arrays, reduction, sample_weight, params, ignore_index)
        with c.kind.context():
            result, views = self._outputs(c, out, f"{self.name}.hessian_diag")
            self._run(c, "hessian_diag", reduction, outs=views)
            return result

    def grad_hessian_diag(self, *arrays, reduction="none", sample_weight=None, out=None,
                          ignore_index=IGNORE_INDEX, **params):
        """``grad`` then ``hessian_diag``: two launches (the fused row kernel is CPU-only; on a GPU
        the second softmax pass is cheap next to the host round trip a booster makes anyway)."""
        g_out, h_out = (None, None) if out is None else out
        if g_out is not None and h_out is not None and C.is_device_array(g_out) and C.is_device_array(h_out):
            kind = C._kind_of(g_out, self.module, 32)
            if kind.is_same_kind(h_out) and kind.contiguous(g_out) and kind.contiguous(h_out):
                C.check_disjoint([kind.view(g_out), kind.view(h_out)], [], f"{self.name}.grad_hessian_diag",
                                 alias_ok=False)
        kw = dict(reduction=reduction, sample_weight=sample_weight, ignore_index=ignore_index, **params)
        return self.grad(*arrays, out=g_out, **kw), self.hessian_diag(*arrays, out=h_out, **kw)

    def hvp(self, *arrays, v, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        c = self._setup(arrays, reduction, sample_weight, params, ignore_index)
        vs = (v,) if len(self.predictions) == 1 else tuple(v)
        if len(vs) != len(self.predictions):
            raise InputError(f"{self.name}: v must be a tuple of {len(self.predictions)} arrays")
        with c.kind.context():
            flat = []
            for x in vs:
                if not c.kind.is_same_kind(x) or c.kind.shape_of(x) != c.shape:
                    raise InputError(f"{self.name}.hvp: v must be a {c.kind.name} device array of shape {c.shape}")
                owner, view = c.kind.convert(x, c.dtype, f"{self.name}.hvp: v")
                c.owners.append(owner)
                flat.append(view)
            result, views = self._outputs(c, out, f"{self.name}.hvp", extra=flat)
            self._run(c, "hvp", reduction, extra=flat, outs=views)
            return result

    def hessian(self, *arrays, **kwargs):
        raise InputError(f"{self.name}.hessian: the full per-row Hessian has no CUDA kernel; "
                         f"use hessian_diag or hvp (O(K) per row), or host arrays")


# --- the hook for RowLoss ---------------------------------------------------------------------------
def device_row_loss(loss) -> DeviceRowLoss:
    """The DeviceRowLoss of a ``RowLoss``, built once (its CUDA module rendered and imported on first use)."""
    dev = loss.__dict__.get("_device_row_loss")
    if dev is None:
        dev = DeviceRowLoss(loss.spec, load_module(loss.spec))
        loss.__dict__["_device_row_loss"] = dev
    return dev


def dispatch(method):
    """Decorate a ``RowLoss`` method: device arrays go to the CUDA row kernels, the rest to ``method``."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *arrays, **kwargs):
        if C.on_device(arrays, kwargs.get("sample_weight")):
            return getattr(device_row_loss(self), name)(*arrays, **kwargs)
        return method(self, *arrays, **kwargs)

    return wrapper
