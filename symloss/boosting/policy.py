"""The Hessian policy: what the boosting library receives as each sample's second derivative.

Tree boosters set a leaf to -G / (H + lambda) and score splits by G^2 / (H + lambda),
so the Hessian is the step size.  The exact Hessian is right for smooth convex
losses; where it vanishes on a set of positive measure (mae, quantile, hinge,
huber's linear part) no split ever has gain and LightGBM's
``min_sum_hessian_in_leaf`` stops the tree, and where it is negative
(non-convex losses) a leaf can step uphill.

* ``"exact"``: the derived Hessian, unchanged.
* ``"clip"``: floored at ``FLOOR`` (times the weight), as the built-ins floor theirs.
* ``"constant"``: the sample weight (1 without weights), the built-ins' choice
  for MAE, quantile and Huber; the step is then a plain gradient step.
* ``"fisher"``: the exact Hessian, but at least the expected Hessian
  kappa w with kappa = E[g^2] / E[L] (weighted means over the call's
  samples).  Reading exp(-L / s) as the residuals' density, the
  maximum-likelihood scale is s = E[L] and the information identity gives
  E[L''] = E[g^2] / s: for the absolute error 1 / mean|r|, for the pinball
  loss tau (1 - tau) / mean pinball, the curvature of the fitted Laplace
  model.  Unlike a constant it shrinks the steps as the residuals shrink, so
  the booster neither stalls (zero Hessians) nor oscillates (unit steps on
  small residuals).  Gradient and Hessian are then both divided by kappa,
  which leaves every leaf value -G / H unchanged but keeps the Hessian in the
  units of the weight, as the built-ins' constant: ``min_child_weight``,
  ``min_sum_hessian_in_leaf`` and ``lambda`` keep their usual meaning.
  kappa is estimated from the samples of each objective call: on Dask from
  each worker's partitions, in CatBoost from each range it asks for.
* ``"upper_bound"`` (row losses): each row's diagonal is replaced by the
  absolute row sum of its Hessian (Gershgorin), which bounds the Hessian from
  above; for softmax cross-entropy this is XGBoost's 2 p (1 - p).
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import InputError

POLICIES = ("exact", "clip", "constant", "fisher", "upper_bound")
FLOOR = 1e-16  # XGBoost's and LightGBM's floor for their own Hessians


def check(policy: str, row: bool) -> str:
    if policy not in POLICIES:
        raise InputError(f"hessian must be one of {POLICIES}, got {policy!r}")
    if policy == "upper_bound" and not row:
        raise InputError("hessian='upper_bound' is for row losses (a class axis); "
                         "an elementwise loss's Hessian is already one number per sample")
    return policy


def default(loss, params: dict | None = None) -> tuple[str, str]:
    """(policy, why) from the derived Hessian itself, probed at the caller's parameters.

    The Hessian kernel is evaluated over margins in [-20, 20] at targets across
    the target's domain (a kernel call, no symbolic work): exact zeros on more
    than 5% of the probe (mae, quantile, hinge, huber's linear part; `symloss
    show` and the docs prove these symbolically) give "fisher"; any negative
    value (cauchy, focal_binary, Barron at alpha < 1) gives "clip"; otherwise "exact".
    """
    params = params or {}
    if loss.spec.kind == "row":
        return "clip", "row loss: the exact diagonal, floored"
    from .link import PROBE_TARGETS

    z = np.linspace(-20.0, 20.0, 401)
    zeros = negative = total = 0
    for t in itertools.product(*[PROBE_TARGETS.get(t.domain, (0.0,)) for t in loss.spec.targets]):
        _, h = loss.grad_hessian(*[np.full_like(z, v) for v in t], z, **params)
        zeros += int(np.sum(h == 0))
        negative += int(np.sum(h < 0))
        total += h.size
    if zeros > 0.05 * total:
        return "fisher", f"the exact Hessian is 0 at {100 * zeros / total:.0f}% of probed points"
    if negative:
        return "clip", f"the exact Hessian is negative at {100 * negative / total:.0f}% of probed points"
    return "exact", "the exact Hessian is positive at every probed point"


def fisher(h: np.ndarray, g: np.ndarray, values: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """g / kappa and max(h / kappa, w), kappa = E_w[g^2] / E_w[L], in place; ``g``, ``h`` and ``values``
    carry the weights already.  Returns h."""
    if w is None:
        num, den = float(np.vdot(g, g)), float(values.sum(dtype=np.float64))  # vdot: a class axis too
    else:
        ok = w > 0  # g and values carry one factor of w: E_w[g0^2] = sum(g^2 / w) / sum(w)
        num = float(np.sum(g[ok].astype(np.float64) ** 2 / w[ok]))
        den = float(values.sum(dtype=np.float64))
    kappa = num / den if den > 0 and num > 0 and np.isfinite(num / den) else 1.0
    inv = h.dtype.type(1.0 / kappa)
    g *= inv
    h *= inv
    np.maximum(h, 1 if w is None else w, out=h)
    return h


def apply(policy: str, h: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Adjust a weighted Hessian ``h`` in place (``w`` broadcasts against it); returns it."""
    if policy == "clip":
        floor = h.dtype.type(FLOOR)
        if w is None:
            np.maximum(h, floor, out=h)
        else:
            np.maximum(h, floor * w, out=h)
    elif policy == "constant":
        if w is None:
            h.fill(1)
        else:
            h[...] = w
    return h
