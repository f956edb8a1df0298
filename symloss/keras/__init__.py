"""symloss losses for Keras 3: ``model.compile(loss=symloss.keras.loss("huber", delta=1.0))``.

A :class:`SymlossLoss` is a ``keras.losses.Loss``: Keras's ``call(y_true,
y_pred)``, its reductions, ``sample_weight``, masks and ``dtype`` (all applied
by the base class), registered serialisable under the package ``symloss``.

How it computes (decided per Keras backend, at the first call): on the JAX
and PyTorch backends the loss runs the generated module of that framework:
the jax module (``jax.custom_jvp``) or the torch module
(``autograd.Function``), which carry the symbolic gradient and, nested, the
Hessian and the parameter derivatives, and are what ``keras.ops`` would
dispatch to anyway.  On any other backend (TensorFlow) elementwise losses run
the generated keras module: ``keras.ops`` code in ``ops.custom_gradient``
whose rule is the symbolic gradient (first order, which is what Keras's
training step needs); row losses there are refused with a clear error.

Conventions (Keras's): elementwise losses average over the last axis (as
``keras.losses.mean_squared_error``) when inputs have 2+ axes, giving one
value per sample; row losses give one value per row, class axis last; a
target given as class indices (rank one less than ``y_pred``, or a trailing
axis of 1) is one-hot encoded (SparseCategoricalCrossentropy's convention).
Several predictions (gaussian_nll's mean and variance, triplet's anchor,
positive and negative): ``y_pred`` is a list/tuple in the spec's order, or one
tensor stacked on the last axis (elementwise) or on axis -2 (row losses:
``(N, P, D)``); a loss without a target ignores ``y_true``.  Importing this
module imports keras; ``import symloss`` never does.
"""
from __future__ import annotations

from .callbacks import LossMonitor
from .losses import SymlossLoss, from_expr, loss

__all__ = ["LossMonitor", "SymlossLoss", "from_expr", "loss"]
