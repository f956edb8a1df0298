"""Held-out quality of symloss's non-smooth objectives against the leaf-renewing built-ins.

The built-in L1 and quantile objectives of XGBoost and LightGBM renew each leaf
to the residuals' median or quantile after the tree is grown.  This prints, on
scikit-learn's diabetes data (70/30 splits, one per seed), the held-out loss of
symloss's objective divided by the built-in's:

* LightGBM ``symloss.lightgbm.train`` with leaf renewal (the default for these
  losses) and without it (``renew_leaves=False``);
* XGBoost ``symloss.xgboost.train`` the same two ways (its renewed leaves are
  written into the model when training ends).

A quality benchmark, not a timing: the numbers are deterministic.

Usage: python bench/bench_gbm_quality.py [--seeds 4] [--rounds 60]
"""
from __future__ import annotations

import argparse

import numpy as np

LGB = {"num_leaves": 7, "learning_rate": 0.1, "num_threads": 1, "verbose": -1, "min_data_in_leaf": 10,
       "deterministic": True, "force_row_wise": True}
XGB = {"max_depth": 3, "eta": 0.1, "nthread": 1}
CASES = [  # (symloss loss, its parameters, LightGBM built-in, XGBoost built-in)
    ("mae", {}, {"objective": "l1"}, {"objective": "reg:absoluteerror"}),
    ("quantile", {"tau": 0.9}, {"objective": "quantile", "alpha": 0.9},
     {"objective": "reg:quantileerror", "quantile_alpha": 0.9}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()

    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.datasets import load_diabetes

    import symloss
    import symloss.lightgbm as sl
    import symloss.xgboost as sx

    X, y = load_diabetes(return_X_y=True)
    print("loss      seed  LightGBM renewed  LightGBM plain  XGBoost renewed  XGBoost plain"
          "   (held-out loss / the built-in's)")
    for name, params, lgb_builtin, xgb_builtin in CASES:
        L = symloss.load(name)
        for seed in range(args.seeds):
            idx = np.random.default_rng(seed).permutation(len(y))
            tr, te = idx[:300], idx[300:]

            def held_out(pred):
                return float(L.value(y[te], pred, **params))

            lgb_ref = held_out(lgb.train({**LGB, **lgb_builtin}, lgb.Dataset(X[tr], y[tr]), args.rounds)
                               .predict(X[te]))
            renewed = sl.train(name, LGB, lgb.Dataset(X[tr], y[tr]), args.rounds, loss_params=params)
            plain = sl.train(name, LGB, lgb.Dataset(X[tr], y[tr]), args.rounds, loss_params=params,
                             renew_leaves=False)
            dtr, dte = xgb.DMatrix(X[tr], y[tr]), xgb.DMatrix(X[te])
            xgb_ref = held_out(xgb.train({**XGB, **xgb_builtin}, dtr, args.rounds).predict(dte))
            xgb_renewed, xgb_plain = (
                sx.train(name, XGB, dtr, args.rounds, loss_params=params, metric=False, renew_leaves=renew)
                .predict(dte, output_margin=True) for renew in ("auto", False))
            print(f"{name:<9} {seed:>4}  {held_out(renewed.predict(X[te])) / lgb_ref:>16.3f}"
                  f"  {held_out(plain.predict(X[te])) / lgb_ref:>14.3f}"
                  f"  {held_out(xgb_renewed) / xgb_ref:>15.3f}  {held_out(xgb_plain) / xgb_ref:>13.3f}")

if __name__ == "__main__":
    main()
