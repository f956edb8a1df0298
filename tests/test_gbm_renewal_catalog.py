"""Leaf renewal on request (renew_leaves=True) for every elementwise catalog loss that can be a boosting
objective, in XGBoost and LightGBM: training runs, and the metric of the last round, which adds what
the libraries' cached margins lack, is the loss of the final model's own predictions."""
import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

import symloss.lightgbm as sl  # noqa: E402
import symloss.xgboost as sx  # noqa: E402
from symloss import catalog  # noqa: E402
from symloss.boosting import BoostLoss  # noqa: E402
from symloss.errors import InputError  # noqa: E402


def _objectives():
    out = []
    for name in catalog.names():
        try:
            bl = BoostLoss(name)
        except InputError:
            continue  # not a boosting objective (several predictions, a distribution)
        if not bl.row:
            out.append(name)
    return out


def _data(domain: str):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    z = X[:, 0] + 0.5 * rng.normal(size=300)
    y = {"real": 3 * z, "positive": np.exp(z), "unit": 1 / (1 + np.exp(-z)), "unit_closed": (z > 0) * 1.0,
         "binary": (z > 0) * 1.0, "sign": np.where(z > 0, 1.0, -1.0)}[domain]
    return X, y


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("name", _objectives())
def test_renewal_keeps_the_metric_true_for_every_loss(name, library):
    bl = BoostLoss(name)
    X, y = _data(bl.loss.spec.targets[0].domain)
    history = {}
    if library == "xgboost":
        d = xgb.DMatrix(X, label=y)
        booster = sx.train(name, {"max_depth": 3, "nthread": 1}, d, 5, renew_leaves=True, evals=[(d, "t")],
                           evals_result=history, verbose_eval=False)
        margins = booster.predict(d, output_margin=True).astype(np.float64)
        tol = dict(rel=1e-5, abs=1e-6)  # XGBoost reports metrics as float32 text, six decimals
    else:
        ds = lgb.Dataset(X, y, free_raw_data=False)
        booster = sl.train(name, {"num_leaves": 7, "verbose": -1, "num_threads": 1}, ds, 5, renew_leaves=True,
                           valid_sets=[ds], valid_names=["t"], callbacks=[lgb.record_evaluation(history)])
        margins = booster.predict(X, raw_score=True)
        tol = dict(rel=1e-7)  # (the cached scores plus the correction, against predict: a few ulps apart)
    assert np.all(np.isfinite(margins))
    assert history["t"][bl.source.name][-1] == pytest.approx(bl.value(y, margins), **tol)
