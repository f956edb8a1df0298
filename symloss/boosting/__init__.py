"""Shared logic of the gradient-boosting integrations (symloss.xgboost, .lightgbm, .catboost).

Library-neutral: no boosting library is imported here.
"""
from .core import BoostLoss
from .policy import POLICIES

__all__ = ["BoostLoss", "POLICIES", "as_boost_loss", "base_margin"]


def as_boost_loss(loss, hessian=None, link="auto", **params) -> BoostLoss:
    """A BoostLoss from a name, a spec path, a Loss, or a BoostLoss (returned as is)."""
    if isinstance(loss, BoostLoss):
        if hessian is not None or params:
            return BoostLoss(loss.source, hessian=hessian or loss.hessian, link=link, **{**loss.params, **params})
        return loss
    return BoostLoss(loss, hessian=hessian, link=link, **params)


def base_margin(loss, y, sample_weight=None, num_class=None, **params):
    """The optimal constant raw margin of ``loss`` for labels ``y``: a float, or (K,) for a class axis."""
    # the policy does not enter the start score (Newton there uses the exact Hessian)
    if not isinstance(loss, BoostLoss):
        loss = BoostLoss(loss, hessian="clip", **params)
    elif params:
        loss = as_boost_loss(loss, **params)
    return loss.start(y, sample_weight, num_class=num_class)
