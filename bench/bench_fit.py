"""Fitting benchmark: symloss's estimators against scikit-learn, glum and skglm on the same objective.

    python bench/bench_fit.py                      # n = 1M, p = 50 and n = 100k, p = 500 (minutes, GBs)
    python bench/bench_fit.py --sizes 100000x50    # a quick run

Same data, same objective (weighted mean half deviance / log-loss / squared error
+ alpha * elastic net), tol 1e-8 where the library's rule is a gradient norm
(scikit-learn's newton-cholesky and lbfgs, glum's gradient_tol, ours);
ElasticNet and skglm stop on their duality gap at tol.  Each fit is timed once
after a warm-up fit on a 70k-row slice (imports, Numba loading).  The table
prints the seconds, iterations and each solution's objective minus the best
one found (a solver that stops early shows it there).  glum and skglm are
optional: `pip install glum skglm`.  ``--threads N`` caps every library's BLAS
and OpenMP pools (threadpoolctl): on a shared machine an oversubscribed
OpenBLAS makes a Gram matrix 100x slower, which times the machine, not the solver.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from symloss.sklearn import LossClassifier, LossRegressor

ALPHA = 1e-4


def make_data(n, p, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) / np.sqrt(p)
    w = rng.standard_normal(p)
    eta = X @ w
    return {
        "X": X,
        "poisson": rng.poisson(np.exp(0.5 * eta)).astype(float),
        "logistic": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
        "enet": X @ (w * (rng.random(p) < 0.3)) + 0.5 * rng.standard_normal(n),
    }


def objective(kind, X, y, coef, intercept, alpha, l1_ratio=0.0):
    z = X @ coef + intercept
    if kind == "poisson":
        data = np.mean(np.exp(z) - y * z)
    elif kind == "logistic":
        data = np.mean(np.logaddexp(0, z) - y * z)
    else:
        data = np.mean((y - z) ** 2) / 2  # ElasticNet's convention; ours is twice it at twice alpha
    return data + alpha * (l1_ratio * np.abs(coef).sum() + (1 - l1_ratio) / 2 * coef @ coef)


def fitters(kind):
    """(label, build(alpha) -> estimator, n_iter getter) for one problem."""
    out = []
    if kind == "poisson":
        from sklearn.linear_model import PoissonRegressor

        out += [("symloss newton", lambda: LossRegressor("poisson_nll", alpha=ALPHA, tol=1e-8, solver="newton")),
                ("symloss lbfgs", lambda: LossRegressor("poisson_nll", alpha=ALPHA, tol=1e-8, solver="lbfgs",
                                                        max_iter=1000)),
                ("sklearn newton-cholesky", lambda: PoissonRegressor(alpha=ALPHA, solver="newton-cholesky", tol=1e-8)),
                ("sklearn lbfgs", lambda: PoissonRegressor(alpha=ALPHA, solver="lbfgs", tol=1e-8, max_iter=1000))]
        glum_family = "poisson"
    elif kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        out += [("symloss newton", lambda: LossClassifier("bce_logits", alpha=ALPHA, tol=1e-8, solver="newton")),
                ("symloss lbfgs", lambda: LossClassifier("bce_logits", alpha=ALPHA, tol=1e-8, solver="lbfgs",
                                                         max_iter=1000))]
        # C = 1 / (alpha n) is set at fit time (it depends on n)
        out += [("sklearn newton-cholesky", lambda: LogisticRegression(solver="newton-cholesky", tol=1e-8)),
                ("sklearn lbfgs", lambda: LogisticRegression(solver="lbfgs", tol=1e-8, max_iter=1000))]
        glum_family = "binomial"
    else:
        from sklearn.linear_model import ElasticNet

        out += [("symloss proximal", lambda: LossRegressor("mse", alpha=2 * ALPHA * 10, l1_ratio=0.5, tol=1e-8)),
                ("sklearn ElasticNet", lambda: ElasticNet(alpha=ALPHA * 10, l1_ratio=0.5, tol=1e-8, max_iter=10_000))]
        try:
            from skglm import ElasticNet as SkglmElasticNet

            out.append(("skglm ElasticNet", lambda: SkglmElasticNet(alpha=ALPHA * 10, l1_ratio=0.5, tol=1e-8)))
        except ImportError:
            pass
        glum_family = "normal"
    try:
        from glum import GeneralizedLinearRegressor

        a, l1 = (ALPHA * 10, 0.5) if kind == "enet" else (ALPHA, 0.0)
        out.append(("glum", lambda: GeneralizedLinearRegressor(family=glum_family, alpha=a, l1_ratio=l1,
                                                               gradient_tol=1e-8, max_iter=1000)))
    except ImportError:
        pass
    return out


def run(n, p, kinds, skip=()):
    data = make_data(n, p)
    X = data["X"]
    rows = []
    for kind in kinds:
        y = data[kind]
        results = []
        for label, build in fitters(kind):
            if label in skip:
                continue
            est = build()
            if label.startswith("sklearn") and kind == "logistic":
                est.set_params(C=1.0 / (ALPHA * n))
            # warm-up on more rows than symloss's parallel-kernel threshold (2^16), so
            # both kernel variants are loaded before the timed fit
            small = min(n, 70_000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                build().set_params(**({"C": 1.0 / (ALPHA * small)} if "C" in est.get_params() else {})).fit(
                    X[:small], y[:small])
                t = time.perf_counter()
                est.fit(X, y)
                seconds = time.perf_counter() - t
            coef = np.ravel(est.coef_)
            intercept = float(np.ravel(est.intercept_)[0])
            alpha, l1 = (ALPHA * 10, 0.5) if kind == "enet" else (ALPHA, 0.0)
            n_iter = np.max(getattr(est, "n_iter_", -1))
            results.append((label, seconds, int(n_iter), objective(kind, X, y, coef, intercept, alpha, l1)))
        best = min(r[3] for r in results)
        ours = next(r[1] for r in results if r[0].startswith("symloss"))
        for label, seconds, n_iter, obj in results:
            rows.append((f"{n}x{p}", kind, label, seconds, n_iter, obj - best, seconds / ours))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000x50,100000x500")
    parser.add_argument("--kinds", default="poisson,logistic,enet")
    parser.add_argument("--skip", default="", help="solver labels to leave out, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads for every library")
    args = parser.parse_args()
    if args.threads:
        import os

        from threadpoolctl import threadpool_limits

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # glum's tabmat reads it when its pool starts
        threadpool_limits(args.threads)
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # symloss's parallel kernels
    print("| n x p | problem | solver | seconds | iterations | objective - best | time / symloss |")
    print("|---|---|---|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        n, p = map(int, size.split("x"))
        for row in run(n, p, args.kinds.split(","), [s for s in args.skip.split(",") if s]):
            print("| {} | {} | {} | {:.2f} | {} | {:.1e} | {:.2f} |".format(*row), flush=True)


if __name__ == "__main__":
    main()
