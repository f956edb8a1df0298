"""Leaf renewal: after a tree is grown, each leaf's value becomes the constant that
minimises the loss of the leaf's samples at their current margins.

A tree's leaf is set to -G / (H + lambda), one Newton step.  For a loss whose
Hessian vanishes almost everywhere (mae, quantile) that step is a poor leaf:
the built-in L1 and quantile objectives of LightGBM and XGBoost renew each
leaf to the weighted median (quantile) of its residuals.  This does the same
for any elementwise loss, with the start score's solver (symloss's own
gradient and Hessian, safeguarded Newton in a bracket, so a zero Hessian still
converges to the median or quantile).  Library-neutral: the booster glue
(which leaf each sample fell in, setting the leaf) is the caller's.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .start import newton_1d, newton_1d_lockstep


def wanted(mode, bl) -> bool:
    """Whether ``renew_leaves=mode`` asks for renewal of ``bl`` ("auto": :func:`renews_by_default`)."""
    if mode != "auto" and not isinstance(mode, bool):
        raise ValueError(f"renew_leaves must be 'auto', True or False, got {mode!r}")
    return renews_by_default(bl) if mode == "auto" else mode


def refused(mode, name: str, why: str | None) -> bool:
    """Whether renewal steps aside for ``why`` (None: it can run); ``renew_leaves=True`` makes a
    reason an error instead."""
    if why is None:
        return False
    if mode is True:
        raise ValueError(f"{name}: renew_leaves=True, but {why}")
    return True


def renews_by_default(bl) -> bool:
    """``renew_leaves="auto"``: an elementwise loss whose exact Hessian vanishes on a set of
    positive measure (the "fisher" policy: mae, quantile, huber) with a real-valued target.  A
    margin loss on class labels (hinge) is left to ``True``: a pure leaf has no finite best
    constant, and the leaves renewed where one exists measured no better."""
    from . import policy

    if bl.row or policy.default(bl.loss, bl.params)[0] != "fisher":
        return False
    return all(i.domain == "real" for i in bl.loss.spec.inputs if i.role == "target")


def leaf_constants(bl, y: np.ndarray, weight: np.ndarray | None, margin: np.ndarray,
                   leaves: np.ndarray, rtol: float = 1e-9) -> dict[int, float]:
    """{leaf: argmin_c sum_i w_i L(y_i, margin_i + c)} over the samples of each leaf.  A leaf
    whose loss keeps falling as c grows (no finite minimiser) is left out."""
    loss = bl.loss
    # the samples grouped by leaf, checked and converted once; each solver step then runs the
    # generated kernel on one leaf's contiguous slice (tens of steps per leaf, every round)
    # leaf ids are small: a stable sort of 16-bit keys is numpy's radix sort (4x faster at 1M rows)
    keys = leaves.astype(np.uint16) if 0 <= leaves.min(initial=0) and leaves.max(initial=0) < 1 << 16 else leaves
    order = np.argsort(keys, kind="stable")
    c = loss._setup((y[order], margin[order]), "none", None if weight is None else weight[order], bl.params)
    ys, ms = c.flat
    ws = c.w
    T = c.dtype.type
    z, g, h = np.empty_like(ms), np.empty_like(ms), np.empty_like(ms)
    bounds = np.flatnonzero(np.diff(leaves[order])) + 1
    out = {}
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, order.size]):
        if hi <= lo:
            continue
        sl = slice(lo, hi)
        wl = None if ws is None else ws[sl]
        wsum = float(hi - lo if wl is None else wl.sum(dtype=np.float64))
        kernel = loss._kernel("grad_hessian", hi - lo)

        def stats(v, sl=sl, wl=wl, wsum=wsum, kernel=kernel):
            np.add(ms[sl], v, out=z[sl])
            kernel(ys[sl], z[sl], *c.pvals, wl, T(1.0), g[sl], h[sl], T)
            return float(g[sl].sum(dtype=np.float64)), float(h[sl].sum(dtype=np.float64)), wsum

        try:
            # a leaf value to rtol of itself (the start score's 1e-12 takes a quarter more passes)
            out[int(leaves[order[lo]])] = newton_1d(stats, bl.name, rtol=rtol)
        except InputError:
            continue
    return out


def leaf_constants_lockstep(bl, y: np.ndarray, weight: np.ndarray | None, margin: np.ndarray,
                            leaves: np.ndarray, n_nodes: int, reduce=None, rtol: float = 1e-9) -> np.ndarray:
    """:func:`leaf_constants` for the nodes 0..n_nodes-1 (NaN where a node has no samples or no
    finite minimiser), all solved in lockstep: each solver step is one kernel pass over the
    samples and one ``reduce`` of the per-node sums (an allreduce across machines: each machine
    passes its own samples and every machine gets the constants of all samples together)."""
    loss = bl.loss
    c = loss._setup((y, margin), "none", weight, bl.params)
    ys, ms = c.flat
    ws = c.w
    T = c.dtype.type
    z, g, h = np.empty_like(ms), np.empty_like(ms), np.empty_like(ms)
    # serial: each machine's cores are shared by its workers (a parallel kernel in each of two worker
    # processes on two cores measured 0.26 s a solve against 0.08 s)
    kernel = loss._kernel("grad_hessian", 0)
    wsum = np.bincount(leaves, weights=ws, minlength=n_nodes).astype(np.float64)

    def stats(consts):
        np.add(ms, consts[leaves], out=z)
        kernel(ys, z, *c.pvals, ws, T(1.0), g, h, T)
        sums = np.concatenate([np.bincount(leaves, weights=g, minlength=n_nodes),
                               np.bincount(leaves, weights=h, minlength=n_nodes), wsum])
        if reduce is not None:
            sums = reduce(sums)
        return sums[:n_nodes], sums[n_nodes:2 * n_nodes], sums[2 * n_nodes:]

    return newton_1d_lockstep(stats, n_nodes, bl.name, rtol=rtol)
