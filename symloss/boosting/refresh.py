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
from .start import newton_1d


def leaf_constants(bl, y: np.ndarray, weight: np.ndarray | None, margin: np.ndarray,
                   leaves: np.ndarray) -> dict[int, float]:
    """{leaf: argmin_c sum_i w_i L(y_i, margin_i + c)} over the samples of each leaf.  A leaf
    whose loss keeps falling as c grows (no finite minimiser) is left out."""
    out = {}
    order = np.argsort(leaves, kind="stable")
    bounds = np.flatnonzero(np.diff(leaves[order])) + 1
    for idx in np.split(order, bounds):
        if not idx.size:
            continue
        yl, ml = y[idx], margin[idx]
        wl = None if weight is None else weight[idx]
        wsum = float(idx.size if wl is None else wl.sum(dtype=np.float64))

        def stats(c, yl=yl, ml=ml, wl=wl, wsum=wsum):
            g, h = bl.loss.grad_hessian(yl, ml + c, reduction="none", sample_weight=wl, **bl.params)
            return float(g.sum(dtype=np.float64)), float(h.sum(dtype=np.float64)), wsum

        try:
            out[int(leaves[idx[0]])] = newton_1d(stats, bl.name)
        except InputError:
            continue
    return out
