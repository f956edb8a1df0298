"""Loss-history plots: one or several fits' objective (or gradient norm) per iteration.

matplotlib is imported only when a plot is drawn, and through its object API
(Figure + the Agg canvas), so no global backend is switched.
"""
from __future__ import annotations

from pathlib import Path

KEYS = ("objective", "grad_norm", "step", "time")


def _history(item) -> dict:
    hist = getattr(item, "history_", item)
    if not isinstance(hist, dict) or "objective" not in hist:
        raise TypeError("expected a fitted symloss estimator or its history_ dict")
    return hist


def _labelled(histories) -> list:
    if isinstance(histories, dict) and "objective" not in histories:
        return [(str(k), _history(v)) for k, v in histories.items()]
    if isinstance(histories, (list, tuple)):
        return [(f"fit {i}", _history(h)) for i, h in enumerate(histories)]
    return [("fit", _history(histories))]


def plot_history(histories, key: str = "objective", ax=None, path=None, logy: bool | None = None,
                 relative: bool = False, title: str | None = None):
    """Draw histories per iteration; returns the Axes.

    ``histories``: a fitted estimator, its ``history_``, a list of them, or a
    dict ``{label: estimator or history}`` (e.g. {"GD": gd_fit, "Newton": newton_fit}).
    ``key``: "objective", "grad_norm" or "step".  ``relative=True`` plots
    objective - min(objective over all fits) (log scale: the convergence rate).
    ``path``: also save the figure there (png, pdf, svg: by suffix).
    """
    if key not in KEYS:
        raise ValueError(f"key must be one of {KEYS}, got {key!r}")
    items = _labelled(histories)
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    floor = min(min(h[key]) for _, h in items) if relative else 0.0
    for label, h in items:
        ys = [v - floor for v in h[key]]
        if relative:  # the best point is 0 on a log scale: draw what can be drawn
            ys = [v if v > 0 else float("nan") for v in ys]
        ax.plot(range(len(ys)), ys, marker="o" if len(ys) < 30 else None, ms=3, label=label)
    if logy if logy is not None else (key != "objective" or relative):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel({"objective": "objective", "grad_norm": "gradient norm (inf)", "step": "step length",
                   "time": "seconds"}[key] + (" - best" if relative else ""))
    if title:
        ax.set_title(title)
    if len(items) > 1:
        ax.legend()
    if path is not None:
        ax.figure.savefig(Path(path), dpi=100, bbox_inches="tight")
    return ax
