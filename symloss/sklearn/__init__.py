"""scikit-learn estimators fitted with any symloss loss (imports scikit-learn and SciPy).

    from symloss.sklearn import LossRegressor, LossClassifier
"""
from ._estimators import LossClassifier, LossRegressor

__all__ = ["LossClassifier", "LossRegressor"]
