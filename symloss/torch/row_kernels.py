"""The fused-kernel path of row losses: the Numba row kernels as torch custom ops.

For a mean or summed row loss on CPU tensors (one prediction, the training
case), one op runs the fused ``value_and_grad`` kernel in the forward pass
and keeps the gradient, so the backward is a multiplication; its own
backward is the kernels' Hessian-vector product (O(K) per row).  Arguments
are those of ``symloss.Loss`` (declared order, class indices as integers), as
numpy views of the tensors: no copy for contiguous inputs.
"""
from __future__ import annotations

import hashlib
import itertools

import torch

from ..errors import InputError
from .kernels import batch_loop, batched, empty_out

_COUNTER = itertools.count()


def _np(t):
    return t.detach().contiguous().numpy()


class RowKernelOps:
    def __init__(self, spec, loss):
        self.spec, self.loss = spec, loss  # loss: a symloss RowLoss (numpy API)
        self.inputs = tuple(loss.inputs)
        self.pred = self.inputs.index(loss.predictions[0])
        self.class_names = tuple(loss.class_inputs)
        self.param_names = tuple(p.name for p in spec.params)
        digest = hashlib.sha1(f"{spec.name}:{id(loss)}".encode()).hexdigest()[:8]
        self._define(f"symloss::{spec.name}_{digest}_{next(_COUNTER)}")

    def _kwargs(self, classes, p, ignore_index):
        kw = {n: _np(c) for n, c in zip(self.class_names, classes)}
        kw.update({n: float(v) for n, v in zip(self.param_names, p.tolist())})
        kw["ignore_index"] = ignore_index
        return kw

    def _define(self, base):
        @torch.library.custom_op(f"{base}_row_value_and_grad", mutates_args=())
        def value_and_grad(xs: list[torch.Tensor], classes: list[torch.Tensor], p: torch.Tensor, reduction: str,
                           ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
            z = xs[self.pred]
            g = empty_out(z.shape, z.dtype)
            v, _ = self.loss.value_and_grad(*(_np(x) for x in xs), reduction=reduction, out=g.numpy(),
                                            **self._kwargs(classes, p, ignore_index))
            return torch.tensor(float(v), dtype=z.dtype), g

        @torch.library.custom_op(f"{base}_row_hvp", mutates_args=())
        def hvp(xs: list[torch.Tensor], classes: list[torch.Tensor], p: torch.Tensor, v: torch.Tensor,
                reduction: str, ignore_index: int) -> torch.Tensor:
            out = self.loss.hvp(*(_np(x) for x in xs), v=_np(v), reduction=reduction,
                                **self._kwargs(classes, p, ignore_index))
            return torch.from_numpy(out).to(v.dtype)

        value_and_grad.register_fake(lambda xs, classes, p, reduction, ignore_index: (
            xs[self.pred].new_empty(()), torch.empty_like(xs[self.pred])))
        hvp.register_fake(lambda xs, classes, p, v, reduction, ignore_index: torch.empty_like(v))

        def setup(ctx, inputs, output):
            xs, classes, p, reduction, ignore_index = inputs
            ctx.set_materialize_grads(False)  # an unused gradient output stays None: no H v pass
            ctx.save_for_backward(*xs, *classes, p, output[1])
            ctx.sizes, ctx.reduction, ctx.ignore_index = (len(xs), len(classes)), reduction, ignore_index

        def backward(ctx, g_value, g_grad):
            saved = ctx.saved_tensors
            nx, nc = ctx.sizes
            xs, classes, p, G = list(saved[:nx]), list(saved[nx:nx + nc]), saved[nx + nc], saved[-1]
            dz = G * g_value if g_value is not None else torch.zeros_like(G)
            if g_grad is not None:  # the gradient output was used (double backward): H v
                if torch._C._functorch.is_legacy_batchedtensor(g_grad):
                    # a batch of vectors (is_grads_batched, e.g. functional.hessian(vectorize=True)),
                    # which legacy vmap cannot pass to a custom op: each row's K x K Hessian, then
                    # a batched product in torch ops
                    try:
                        H = torch.from_numpy(self.loss.hessian(*(_np(x) for x in xs), reduction=ctx.reduction,
                                                               **self._kwargs(classes, p, ctx.ignore_index)))
                    except InputError as e:
                        raise InputError(f"{self.spec.name}: a batch of Hessian-vector products on the row "
                                         f"kernels goes through each row's K x K Hessian, and {e}; pass the "
                                         f"vectors one at a time, or use impl='generated'") from None
                    dz = dz + (H.to(G.dtype) @ g_grad.unsqueeze(-1)).squeeze(-1)
                else:
                    dz = dz + hvp(xs, classes, p, g_grad, ctx.reduction, ctx.ignore_index)
            dxs = [None] * nx
            dxs[self.pred] = dz
            return dxs, [None] * nc, None, None, None

        def hvp_setup(ctx, inputs, output):
            xs, classes, p, v, reduction, ignore_index = inputs
            ctx.save_for_backward(*xs, *classes, p)
            ctx.sizes, ctx.reduction, ctx.ignore_index = (len(xs), len(classes)), reduction, ignore_index

        def hvp_backward(ctx, g):
            # H is symmetric: d(H v)/dv applied to g is H g (third derivatives are not provided)
            saved = ctx.saved_tensors
            nx, nc = ctx.sizes
            xs, classes, p = list(saved[:nx]), list(saved[nx:nx + nc]), saved[nx + nc]
            hv = hvp(xs, classes, p, g, ctx.reduction, ctx.ignore_index)
            return [None] * nx, [None] * nc, None, hv, None, None

        batch_loop(value_and_grad)
        batch_loop(hvp)
        value_and_grad.register_autograd(backward, setup_context=setup)
        hvp.register_autograd(hvp_backward, setup_context=hvp_setup)
        self.value_and_grad_op, self.hvp_op = value_and_grad, hvp

    def total(self, xs, classes, params, reduction, ignore_index):
        p = torch.stack(list(params)) if params else torch.zeros(0, dtype=xs[self.pred].dtype)
        # the gradient output is saved for the backward, which differentiates through it
        # (Hessian-vector products) only for double backward
        return self.value_and_grad_op(xs, classes, p, reduction, ignore_index)[0]
