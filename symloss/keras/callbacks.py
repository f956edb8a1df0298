"""LossMonitor: the validation loss each epoch, computed by symloss's Numba kernels, and its plot."""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

log = logging.getLogger("symloss.keras")


class LossMonitor(keras.callbacks.Callback):
    """Record ``loss`` on ``(x_val, y_val)`` after every epoch and plot the history.

    ``loss``: a :class:`~symloss.keras.SymlossLoss` (evaluated by symloss's
    numpy API, i.e. the Numba kernels, on the model's predictions, with the
    loss's Keras conventions and its reduction) or any Keras loss/callable.
    The value goes into ``history``, into the epoch's ``logs`` as
    ``val_symloss`` (so History, EarlyStopping and progress bars see it) and
    to the ``symloss.keras`` logger; every ``every`` epochs, and at the end
    of training, a PNG of the history is written to ``plot_to`` with
    matplotlib's Agg canvas (no window, no pyplot state).
    """

    def __init__(self, x_val, y_val, loss, every: int = 10, plot_to=None, batch_size: int | None = None,
                 key: str = "val_symloss"):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.x_val, self.y_val, self.loss = x_val, y_val, loss
        self.every, self.batch_size, self.key = every, batch_size, key
        self.plot_to = Path(plot_to) if plot_to is not None else None
        self.history: list[float] = []

    def _value(self, y_pred) -> float:
        from .losses import SymlossLoss

        if isinstance(self.loss, SymlossLoss):
            from .numpy_eval import evaluate

            return evaluate(self.loss, self.y_val, y_pred)
        return float(keras.ops.convert_to_numpy(self.loss(self.y_val, y_pred)))

    def on_epoch_end(self, epoch, logs=None):
        y_pred = self.model.predict(self.x_val, batch_size=self.batch_size, verbose=0)
        value = self._value(y_pred)
        self.history.append(value)
        if logs is not None:
            logs[self.key] = value
        log.info("epoch %d: %s = %.6g", epoch + 1, self.key, value)
        if self.plot_to is not None and (epoch + 1) % self.every == 0:
            self.plot()

    def on_train_end(self, logs=None):
        if self.plot_to is not None and self.history:
            self.plot()

    def plot(self, path=None) -> Path:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path or self.plot_to)
        fig = Figure(figsize=(5, 3.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(np.arange(1, len(self.history) + 1), self.history, marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(self.key)
        if min(self.history) > 0 and max(self.history) / min(self.history) > 50:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        return path
