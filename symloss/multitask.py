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

    def torch(self):
        """The same loss as a ``torch.nn.Module``: ``forward(preds: dict, targets: dict,
        sample_weight=None)``; with uncertainty weighting its ``log_vars`` is an
        ``nn.Parameter`` learned with the model.  Imports torch."""
        return _torch_class()(self)


def combine(tasks: dict, weighting: str = "fixed") -> CombinedLoss:
    """A multi-task loss: ``{name: (loss, weight)}`` or ``{name: (loss, weight, params)}``.

    ``loss`` is a catalog name or a Loss; ``weighting="uncertainty"`` learns a
    log-variance per task (see the module docstring)."""
    return CombinedLoss(tasks, weighting)


_TORCH_CLASS = []


def _torch_class():
    """CombinedTorchLoss, defined on first use so that this module never imports torch."""
    if _TORCH_CLASS:
        return _TORCH_CLASS[0]
    import torch

    from . import catalog
    from . import torch as symloss_torch

    def _task_module(loss, params):
        """A catalog loss by name (its generated torch module), anything else by its spec."""
        if (catalog.specs_dir() / f"{loss.name}.toml").is_file() and load(loss.name) is loss:
            return symloss_torch.loss(loss.name, **params)
        return symloss_torch.spec_loss(loss.spec, **params)

    class CombinedTorchLoss(torch.nn.Module):
        """sum_t w_t L_t, or sum_t w_t (exp(-s_t) L_t + s_t) with s = ``log_vars`` learned."""

        def __init__(self, combined):
            super().__init__()
            self.names = list(combined.tasks)
            self.losses = torch.nn.ModuleDict({n: _task_module(l, p) for n, (l, _, p) in combined.tasks.items()})
            self.register_buffer("weights", torch.tensor(combined.weights, dtype=torch.float64))
            self.uncertainty = combined.weighting == "uncertainty"
            if self.uncertainty:
                self.log_vars = torch.nn.Parameter(torch.zeros(len(self.names), dtype=torch.float64))

        def forward(self, preds: dict, targets: dict, sample_weight=None):
            values = torch.stack([self.losses[n](preds[n], targets[n], sample_weight=sample_weight).to(torch.float64)
                                  for n in self.names])
            if not self.uncertainty:
                return (self.weights * values).sum()
            return (self.weights * (torch.exp(-self.log_vars) * values + self.log_vars)).sum()

    _TORCH_CLASS.append(CombinedTorchLoss)
    return CombinedTorchLoss
