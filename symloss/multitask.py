"""Multi-task losses: a weighted sum of per-task losses over several outputs.

    combine({"price": ("mse", 1.0), "label": ("cross_entropy", 0.5)})

fixed weights:    L = sum_t w_t * L_t
"uncertainty":    L = sum_t w_t * (exp(-s_t) * L_t + s_t),  s_t = log sigma_t^2 learned
                  (Kendall, Gal & Cipolla, CVPR 2018, in the form most code uses:
                  the 1/2 factors folded into s_t).  For fixed L_t the best s_t is
                  log L_t, so this needs L_t > 0 (a loss with its constant terms dropped,
                  e.g. poisson_nll, can be negative: use fixed weights there).

Each L_t is the task's (weighted) mean.  Arrays are passed as dicts keyed by
task name.  No heavy imports: numpy and symloss's own Loss only.
"""
from __future__ import annotations

import numpy as np

from .runtime import load


class CombinedLoss:
    """Several losses, one per named task, with fixed or learned (uncertainty) weights."""

    kind = "combined"

    def __init__(self, tasks: dict, weighting: str = "fixed"):
        if weighting not in ("fixed", "uncertainty"):
            raise ValueError(f"weighting must be 'fixed' or 'uncertainty', got {weighting!r}")
        if not tasks:
            raise ValueError("combine() needs at least one task")
        self.weighting = weighting
        self.tasks = {}
        for name, item in tasks.items():
            loss, weight, params = item if len(item) == 3 else (*item, {})
            loss = load(loss) if isinstance(loss, str) else loss
            if float(weight) < 0:
                raise ValueError(f"task {name!r}: weight must be >= 0")
            self.tasks[name] = (loss, float(weight), dict(params))
        self.name = "combine(" + ", ".join(f"{n}={l.name}" for n, (l, _, _) in self.tasks.items()) + ")"
        self.params = {}

    def __repr__(self) -> str:
        return f"<CombinedLoss {self.name} weighting={self.weighting}>"

    @property
    def names(self):
        return tuple(self.tasks)

    @property
    def weights(self):
        return np.array([w for _, w, _ in self.tasks.values()])

    def scales(self, log_vars=None):
        """The factor on each task's mean loss: w_t, or w_t exp(-s_t)."""
        if self.weighting == "fixed":
            return self.weights
        s = np.zeros(len(self.tasks)) if log_vars is None else np.asarray(log_vars, dtype=float)
        return self.weights * np.exp(-s)

    def task_values(self, y: dict, yhat: dict, sample_weight=None) -> dict:
        return {n: float(loss.value(y[n], yhat[n], sample_weight=sample_weight, **p))
                for n, (loss, _, p) in self.tasks.items()}

    def value(self, y: dict, yhat: dict, sample_weight=None, log_vars=None) -> float:
        vals = np.array(list(self.task_values(y, yhat, sample_weight).values()))
        total = float(self.scales(log_vars) @ vals)
        if self.weighting == "uncertainty":
            s = np.zeros(len(vals)) if log_vars is None else np.asarray(log_vars, dtype=float)
            total += float(self.weights @ s)
        return total

    def grad(self, y: dict, yhat: dict, sample_weight=None, log_vars=None) -> dict:
        """d L / d yhat[task], per task."""
        return self.value_and_grad(y, yhat, sample_weight, log_vars)[1]

    def value_and_grad(self, y: dict, yhat: dict, sample_weight=None, log_vars=None):
        scales = self.scales(log_vars)
        total, grads = 0.0, {}
        for c, (n, (loss, _, p)) in zip(scales, self.tasks.items()):
            v, g = loss.value_and_grad(y[n], yhat[n], sample_weight=sample_weight, **p)
            total += c * float(v)
            grads[n] = c * g
        if self.weighting == "uncertainty":
            s = np.zeros(len(scales)) if log_vars is None else np.asarray(log_vars, dtype=float)
            total += float(self.weights @ s)
        return total, grads

    def log_var_grad(self, y: dict, yhat: dict, sample_weight=None, log_vars=None) -> np.ndarray:
        """d L / d s_t for uncertainty weighting: w_t (1 - exp(-s_t) L_t)."""
        vals = np.array(list(self.task_values(y, yhat, sample_weight).values()))
        return self.weights - self.scales(log_vars) * vals

    def best_log_vars(self, y: dict, yhat: dict, sample_weight=None) -> np.ndarray:
        """argmin over s of L for fixed predictions: s_t = log L_t (needs L_t > 0)."""
        vals = np.array(list(self.task_values(y, yhat, sample_weight).values()))
        if np.any(vals <= 0):
            raise ValueError("uncertainty weighting needs every task's mean loss > 0; got "
                             + ", ".join(f"{n}={v:.3g}" for n, v in zip(self.names, vals)))
        return np.log(vals)


def combine(tasks: dict, weighting: str = "fixed") -> CombinedLoss:
    """A multi-task loss: ``{name: (loss, weight)}`` or ``{name: (loss, weight, params)}``.

    ``loss`` is a catalog name or a Loss; ``weighting="uncertainty"`` learns a
    log-variance per task (see the module docstring)."""
    return CombinedLoss(tasks, weighting)
