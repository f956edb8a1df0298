"""The fused-kernel path: the Numba CPU kernels as ``torch.library.custom_op``s.

For an elementwise loss on CPU tensors, four ops wrap the generated Numba
kernels (zero-copy: contiguous tensors are viewed as numpy arrays): ``value``,
``grad`` (the upstream gradient is passed as the kernels' sample weight, so
one fused pass gives g * dL/dx), ``hessian`` and, for differentiable
parameters, ``param_grad``.  Fake (meta) implementations make them traceable
by ``torch.compile``; autograd registrations chain value -> grad -> hessian,
so double backward is the kernels' exact Hessian.  Parameters travel as one
1-D tensor, so a differentiable one (general_robust's alpha) may require grad.
Row losses and CUDA tensors use the generated torch code (see ``choose``).
Eagerly, a mean or sum with a prediction that requires grad runs ``_KeptTotal``
instead: one fused ``value_and_grad`` pass keeps the gradient (torch.compile
takes the ``sum`` op, one pass forward and one backward).
"""
from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import torch

# kernels below this many elements run serially (as symloss.Loss does)
PARALLEL_THRESHOLD = 1 << 16
# impl="auto" takes the kernels for CPU tensors from this many elements on (bench/bench_torch.py)
AUTO_KERNEL_MIN = 1 << 15
_COUNTER = itertools.count()
_OPS: dict[int, "KernelOps"] = {}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64}


def empty_out(shape, dtype: torch.dtype) -> torch.Tensor:
    """A fresh CPU tensor for a kernel to fill.  A large one comes from numpy, which asks
    Linux for huge pages on big buffers (madvise) where torch's CPU allocator does not:
    first-touch page faults took a kernel writing a fresh (65536, 1024) float32
    gradient from 83 to 128 ms (bench/README.md)."""
    T = _NUMPY_FLOATS.get(dtype)
    if T is None or math.prod(shape) * dtype.itemsize < 1 << 22:  # numpy's own huge-page threshold
        return torch.empty(shape, dtype=dtype)
    return torch.from_numpy(np.empty(tuple(shape), dtype=T))


def saved_tensor_hooks() -> bool:
    """Saved-tensor hooks are active (``save_on_cpu``, non-reentrant checkpointing): they manage
    what a node saves, so the nodes that keep a gradient on ctx, which no hook sees, stand aside."""
    return torch._C._autograd._top_saved_tensors_default_hooks(False) is not None


def batched(t: torch.Tensor) -> bool:
    """A vmapped tensor: torch.func.vmap's, or the legacy kind ``autograd.grad(...,
    is_grads_batched=True)`` makes (legacy vmap runs no custom op with list arguments;
    the backwards here multiply such an upstream in with torch ops instead)."""
    return torch._C._functorch.is_batchedtensor(t) or torch._C._functorch.is_legacy_batchedtensor(t)


def batch_loop(op):
    """Register ``op``'s vmap rule as a loop over the batch, one kernel call per entry,
    stacked.  vmap reaches these ops through ``autograd.grad(..., is_grads_batched=True)``
    (a batch of upstream gradients, e.g. ``autograd.functional.jacobian(vectorize=True)``)
    on a graph the kernels built; torch.func transforms themselves take the generated
    code (``choose``), so the batch is small and the loop is what it costs."""

    def pick(arg, dim, b):
        if isinstance(arg, (list, tuple)):
            return [pick(a, d, b) for a, d in zip(arg, dim)]
        return arg if dim is None else arg.select(dim, b)

    def rule(info, in_dims, *args):
        outs = [op(*(pick(a, d, b) for a, d in zip(args, in_dims))) for b in range(info.batch_size)]
        if isinstance(outs[0], torch.Tensor):
            return torch.stack(outs), 0
        parts = [torch.stack(list(col)) for col in zip(*outs)]
        if isinstance(outs[0], tuple):  # out_dims mirror the output's structure
            return tuple(parts), (0,) * len(parts)
        return parts, [0] * len(parts)

    op.register_vmap(rule)


class KernelOps:
    """The custom ops of one Numba module, and an ``apply`` like the generated ``Value.apply``."""

    def __init__(self, spec, module):
        self.spec, self.module = spec, module
        self.inputs = tuple(module.INPUTS)
        self.pred_pos = tuple(self.inputs.index(p) for p in module.PREDICTIONS)
        self.n_params = len(module.PARAMS)
        self.dparam_pos = tuple(list(module.PARAMS).index(p) for p in getattr(module, "PARAM_GRADS", ()))
        self._torch_module = None  # the generated torch module, for the mixed derivatives (_mixed_dp)
        digest = hashlib.sha1(f"{spec.name}:{id(module)}".encode()).hexdigest()[:8]
        base = f"symloss::{spec.name}_{digest}_{next(_COUNTER)}"
        self._define(base)

    # kernel calls --------------------------------------------------------------------
    def _kernel(self, name, n):
        return getattr(self.module, name + ("_parallel" if n >= PARALLEL_THRESHOLD else ""))

    def _flat(self, xs, p):
        arrays = [_np(x).reshape(-1) for x in xs]
        T = arrays[0].dtype.type
        return arrays, [T(v) for v in _np(p).tolist()], T

    def _define(self, base):
        n_preds, n_dp = len(self.pred_pos), len(self.dparam_pos)
        pairs = tuple(self.module.HESSIAN_PAIRS)

        @torch.library.custom_op(f"{base}_value", mutates_args=())
        def value(xs: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
            arrays, pvals, T = self._flat(xs, p)
            out = empty_out(xs[0].shape, xs[0].dtype)
            self._kernel("value", arrays[0].size)(*arrays, *pvals, None, out.numpy().reshape(-1), T)
            return out

        @torch.library.custom_op(f"{base}_grad", mutates_args=())
        def grad(g: torch.Tensor, xs: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
            arrays, pvals, T = self._flat(xs, p)
            outs = [empty_out(xs[0].shape, xs[0].dtype) for _ in range(n_preds)]
            self._kernel("grad", arrays[0].size)(*arrays, *pvals, _np(g).reshape(-1), T(1.0),
                                                 *(o.numpy().reshape(-1) for o in outs), T)
            return outs

        @torch.library.custom_op(f"{base}_hessian", mutates_args=())
        def hessian(xs: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
            arrays, pvals, T = self._flat(xs, p)
            outs = [empty_out(xs[0].shape, xs[0].dtype) for _ in pairs]
            self._kernel("hessian", arrays[0].size)(*arrays, *pvals, None, T(1.0),
                                                    *(o.numpy().reshape(-1) for o in outs), T)
            return outs

        for op, n in ((value, None), (grad, n_preds), (hessian, len(pairs))):
            if n is None:
                op.register_fake(lambda xs, p: torch.empty_like(xs[0]))
            elif op is grad:
                op.register_fake(lambda g, xs, p, n=n: [torch.empty_like(xs[0]) for _ in range(n)])
            else:
                op.register_fake(lambda xs, p, n=n: [torch.empty_like(xs[0]) for _ in range(n)])

        @torch.library.custom_op(f"{base}_sum", mutates_args=())
        def total(xs: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
            # the summed loss in one pass, no per-element buffer (accumulated in float64)
            arrays, pvals, T = self._flat(xs, p)
            return torch.tensor(self._kernel("value", arrays[0].size)(*arrays, *pvals, None, None, T),
                                dtype=xs[0].dtype)

        @torch.library.custom_op(f"{base}_grad_scaled", mutates_args=())
        def grad_scaled(g: torch.Tensor, xs: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
            # g * dL/dx with a scalar g: the backward of the sum, reading no weight array
            arrays, pvals, T = self._flat(xs, p)
            outs = [empty_out(xs[0].shape, xs[0].dtype) for _ in range(n_preds)]
            self._kernel("grad", arrays[0].size)(*arrays, *pvals, None, T(g.item()),
                                                 *(o.numpy().reshape(-1) for o in outs), T)
            return outs

        total.register_fake(lambda xs, p: xs[0].new_empty(()))
        grad_scaled.register_fake(lambda g, xs, p: [torch.empty_like(xs[0]) for _ in range(n_preds)])

        param_grad = None
        if n_dp:
            @torch.library.custom_op(f"{base}_param_grad", mutates_args=())
            def param_grad(xs: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
                arrays, pvals, T = self._flat(xs, p)
                outs = [empty_out(xs[0].shape, xs[0].dtype) for _ in range(n_dp)]
                self._kernel("param_grad", arrays[0].size)(*arrays, *pvals, None, *(o.numpy().reshape(-1) for o in outs), T)
                return outs

            param_grad.register_fake(lambda xs, p: [torch.empty_like(xs[0]) for _ in range(n_dp)])

        # autograd: value -> grad (+ param_grad) -> hessian
        def setup(ctx, inputs, output):
            *head, xs, p = inputs
            ctx.save_for_backward(*head, *xs, p)
            ctx.n_head = len(head)

        def value_backward(ctx, g):
            saved = ctx.saved_tensors
            xs, p = list(saved[:-1]), saved[-1]
            dxs = [None] * len(xs)
            # a batch of upstreams (is_grads_batched): the gradient is linear in it
            ds = [g * d for d in grad(torch.ones_like(xs[0]), xs, p)] if batched(g) else grad(g, xs, p)
            for i, d in zip(self.pred_pos, ds):
                dxs[i] = d
            dp = None
            if n_dp and ctx.needs_input_grad[1]:
                vals = [torch.zeros((), dtype=p.dtype)] * self.n_params
                for j, d in zip(self.dparam_pos, param_grad(xs, p)):
                    vals[j] = (g * d).sum()
                dp = torch.stack(vals)
            return dxs, dp

        def grad_backward(ctx, cots):
            saved = ctx.saved_tensors
            g, xs, p = saved[0], list(saved[1:-1]), saved[-1]
            live = [(q, c) for q, c in enumerate(cots) if c is not None]
            h = {}
            for (i, j), v in zip(pairs, hessian(xs, p)):
                h[i, j] = h[j, i] = v
            dxs = [None] * len(xs)
            for q, i in enumerate(self.pred_pos):
                dxs[i] = g * sum(c * h[k, q] for k, c in live)
            ones = torch.ones_like(g)
            ds = grad(ones, xs, p)
            dg = sum(c * ds[k] for k, c in live)
            return dg, dxs, self._mixed_dp(ctx, g, live, xs, p)

        def total_backward(ctx, g):
            saved = ctx.saved_tensors
            xs, p = list(saved[:-1]), saved[-1]
            dxs = [None] * len(xs)
            ds = ([g * d for d in grad_scaled(torch.ones((), dtype=p.dtype), xs, p)] if batched(g)
                  else grad_scaled(g, xs, p))
            for i, d in zip(self.pred_pos, ds):
                dxs[i] = d
            dp = None
            if n_dp and ctx.needs_input_grad[1]:
                vals = [torch.zeros((), dtype=p.dtype)] * self.n_params
                for j, d in zip(self.dparam_pos, param_grad(xs, p)):
                    vals[j] = g * d.sum()
                dp = torch.stack(vals)
            return dxs, dp

        def grad_scaled_backward(ctx, cots):
            saved = ctx.saved_tensors
            g, xs, p = saved[0], list(saved[1:-1]), saved[-1]
            live = [(q, c) for q, c in enumerate(cots) if c is not None]
            h = {}
            for (i, j), v in zip(pairs, hessian(xs, p)):
                h[i, j] = h[j, i] = v
            dxs = [None] * len(xs)
            for q, i in enumerate(self.pred_pos):
                dxs[i] = g * sum(c * h[k, q] for k, c in live)
            ds = grad_scaled(torch.ones_like(g), xs, p)
            dg = sum((c * ds[k]).sum() for k, c in live)
            return dg, dxs, self._mixed_dp(ctx, g, live, xs, p)

        for op in (value, grad, hessian, total, grad_scaled) + ((param_grad,) if n_dp else ()):
            batch_loop(op)
        value.register_autograd(value_backward, setup_context=setup)
        grad.register_autograd(grad_backward, setup_context=setup)
        total.register_autograd(total_backward, setup_context=setup)
        grad_scaled.register_autograd(grad_scaled_backward, setup_context=setup)
        self.value_op, self.grad_op, self.hessian_op, self.param_grad_op = value, grad, hessian, param_grad
        self.sum_op, self.grad_scaled_op = total, grad_scaled

    def _mixed_dp(self, ctx, g, live, xs, p):
        """d/dp of a gradient op's output against its cotangents ``live``: sum of g c_q d2L/dx_q dp.

        The Numba modules have no mixed-derivative kernel; the generated torch module's ``mixed``
        (the same derivation, in torch ops) serves this second-order path, e.g. a gradient
        penalty with a learned Barron alpha."""
        if not (self.dparam_pos and ctx.needs_input_grad[-1]):
            return None
        if self._torch_module is None:
            from ._modules import module_for_spec

            self._torch_module = module_for_spec(self.spec)
        m = self._torch_module._mixed([*xs, *p.unbind()])
        vals = [torch.zeros((), dtype=p.dtype)] * self.n_params
        for j, pos in enumerate(self.dparam_pos):
            vals[pos] = sum((g * c * m[q, j]).sum() for q, c in live)
        return torch.stack(vals)

    def _split(self, args):
        xs = list(args[:len(self.inputs)])
        params = args[len(self.inputs):]
        return xs, (torch.stack(list(params)) if params else torch.zeros(0, dtype=xs[0].dtype))

    def apply(self, *args):
        """Per-element loss of same-shape data tensors followed by 0-dim parameter tensors."""
        return self.value_op(*self._split(args))

    def sum(self, *args):
        """The summed loss in one fused pass (its backward: one fused gradient pass)."""
        return self.sum_op(*self._split(args))

    def kept_total(self, scale: float, *args):
        """``scale *`` the summed loss where a backward will follow, eagerly: one fused
        ``value_and_grad`` pass keeps the gradient, so the backward reads no input again
        (one pass over the data instead of two).  Not traceable: torch.compile takes ``sum``."""
        return _KeptTotal.apply(self, scale, *args)


def hand_over(ctx, g, recompute):
    """The first-order backward of a node that kept its gradients (``ctx.kept``, a list, times
    the node's scale) from its forward pass: those tensors, released from ctx, or on a retained
    graph's second backward ``recompute()``, the same pass again (same bits); then times the
    upstream ``g`` in place unless it is 1."""
    ds, ctx.kept = ctx.kept, None
    if ds is None:
        ds = recompute()
    if batched(g):  # a batch of upstream gradients (is_grads_batched)
        return [d * g for d in ds]
    s = float(g)
    if s != 1.0:
        for d in ds:
            d.mul_(s)
    return ds


class _KeptTotal(torch.autograd.Function):
    """The eager mean/sum over the kernels: value and gradient in the forward pass; a
    first-order backward hands over the kept gradient (scaled in place unless the upstream
    is 1); a double backward goes through ``grad_scaled``, whose own backward is the Hessian.
    Parameters are constants here (a parameter that requires grad takes ``sum``)."""

    @staticmethod
    def forward(ctx, ops, scale, *args):
        xs, p = ops._split(args)
        total, kept = _KeptTotal.run(ops, scale, xs, p)
        ctx.ops, ctx.scale, ctx.kept = ops, scale, kept
        ctx.save_for_backward(*xs, p)
        return torch.scalar_tensor(total * scale, dtype=xs[0].dtype)

    @staticmethod
    def run(ops, scale, xs, p):
        """The fused pass: the summed loss, and the gradients times ``scale`` in new tensors."""
        arrays, pvals, T = ops._flat(xs, p)
        kept = [empty_out(xs[0].shape, xs[0].dtype) for _ in ops.pred_pos]
        total = ops._kernel("value_and_grad", arrays[0].size)(*arrays, *pvals, None, T(scale), None,
                                                              *(k.numpy().reshape(-1) for k in kept), T)
        return total, kept

    @staticmethod
    def backward(ctx, g):
        ops, saved = ctx.ops, ctx.saved_tensors
        xs, p = list(saved[:-1]), saved[-1]
        if torch.is_grad_enabled():  # create_graph: the op whose backward is the Hessian
            if batched(g):
                ds = [g * d for d in ops.grad_scaled_op(torch.scalar_tensor(ctx.scale, dtype=p.dtype), xs, p)]
            else:
                ds = ops.grad_scaled_op(g * ctx.scale, xs, p)
        else:
            ds = hand_over(ctx, g, lambda: _KeptTotal.run(ops, ctx.scale, xs, p)[1])
        out = [None] * len(xs)
        for i, d in zip(ops.pred_pos, ds):
            out[i] = d
        return (None, None, *out, *([None] * ops.n_params))


def kernel_ops(spec, name_or_path=None):
    """The custom ops of a loss (elementwise: over its Numba module; row: over its RowLoss)."""
    loss = numpy_loss(spec, name_or_path)
    if id(loss) not in _OPS:
        if spec.kind == "row":
            from .row_kernels import RowKernelOps

            _OPS[id(loss)] = RowKernelOps(spec, loss)
        else:
            _OPS[id(loss)] = KernelOps(spec, loss.module)
    return _OPS[id(loss)]


_LOSSES: dict = {}


def numpy_loss(spec, name_or_path=None):
    """symloss's numpy-API loss (Numba kernels): the catalog's generated one, else rendered and cached."""
    import symloss
    from symloss.runtime.loss import Loss

    key = str(name_or_path) if name_or_path is not None else id(spec)
    if key not in _LOSSES:
        _LOSSES[key] = symloss.load(name_or_path) if name_or_path is not None else Loss.from_spec(spec)
    return _LOSSES[key]


def row_kernel_ok(spec, reduction, sample_weight) -> bool:
    """The row kernels serve mean and sum of one-prediction row losses without sample weights."""
    return (spec.kind == "row" and len(spec.predictions) == 1 and reduction in ("mean", "sum")
            and sample_weight is None)


def transformed() -> bool:
    """Inside a torch.func transform (grad, vmap, jvp, jacrev, hessian, ...) or forward-mode AD.

    These see through torch ops and the generated autograd.Functions (their jvp and vmap
    rules) but not through a Numba kernel, nor through data-dependent Python checks."""
    return (torch._C._functorch.peek_interpreter_stack() is not None
            or torch.autograd.forward_ad._current_level >= 0)


def choose(impl: str, spec, tensors, row_ok: bool = False) -> str:
    """"generated" or "kernel": what ``impl`` means for these tensors."""
    if impl not in ("auto", "generated", "kernel"):
        raise ValueError(f"{spec.name}: impl must be 'auto', 'generated' or 'kernel', got {impl!r}")
    ok = (spec.kind == "elementwise" or row_ok) and all(t.device.type == "cpu" for t in tensors)
    if impl == "kernel":
        if not torch.compiler.is_compiling() and transformed():
            raise ValueError(f"{spec.name}: impl='kernel' runs Numba kernels, which torch.func transforms "
                             f"and forward-mode AD cannot see through; use impl='auto' or 'generated'")
        if not ok:
            raise ValueError(f"{spec.name}: impl='kernel' runs the Numba CPU kernels of elementwise losses "
                             f"(got a {spec.kind} loss on {tensors[0].device}); use impl='generated'")
        return "kernel"
    if impl == "generated" or not ok or torch.compiler.is_compiling() or transformed():
        return "generated"  # under torch.compile the generated code fuses with the graph
    return "kernel" if tensors[0].numel() >= AUTO_KERNEL_MIN else "generated"
