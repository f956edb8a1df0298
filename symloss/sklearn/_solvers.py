"""Solvers over an Objective.  Each returns (theta, n_iter, converged) and fills a History.

"Converged" means the infinity norm of the (minimum-norm sub)gradient of the
objective is at most ``tol``, except for ``lp`` (HiGHS reports an optimal
vertex) and for ``lbfgs`` (scipy's own stopping rules: projected gradient
below ``tol``, or no further decrease of F).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning

from ._heads import PIECEWISE_LINEAR

ARMIJO = 1e-4


class History:
    """Objective, optimality (gradient norm) and step length per iteration."""

    def __init__(self, verbose: int = 0, max_iter: int = 0, label: str = "fit"):
        self.data = {"objective": [], "grad_norm": [], "step": [], "time": []}
        self.start = time.perf_counter()
        self.bar = None
        if verbose:
            try:  # tqdm is optional: a bar when it is installed, nothing otherwise
                from tqdm.auto import tqdm

                self.bar = tqdm(total=max_iter, desc=label, delay=3.0)  # only fits longer than 3 s
            except ImportError:
                self.bar = None

    def record(self, objective, grad_norm, step):
        self.data["objective"].append(float(objective))
        self.data["grad_norm"].append(float(grad_norm))
        self.data["step"].append(float(step))
        self.data["time"].append(time.perf_counter() - self.start)
        if self.bar is not None:
            # refresh=False: the postfix must not draw the bar before tqdm's delay has passed
            self.bar.set_postfix(objective=f"{objective:.6g}", grad=f"{grad_norm:.2e}", refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _chol_solve(H, g, rcond=1e-13):
    """Solve H d = -g by Cholesky.  Fallbacks where H is not positive definite:

    - singular but positive semidefinite (a softmax's shift; p > n without L2;
      a Cholesky pivot below sqrt(rcond) times the largest): the minimum-norm
      step -pinv(H) g, eigenvalues below rcond * the largest dropped.  From a
      start in the row space this reaches the minimum-norm minimiser, as a
      least-squares solver does, so zero weights and removed rows fit alike;
    - indefinite (a non-convex loss): add tau * I with tau from
      1e-10 * mean(diag H) upward by 10x until it factors."""
    try:
        c, low = scipy.linalg.cho_factor(H, check_finite=False)
        piv = np.abs(np.diag(c))
        if piv.size == 0 or piv.min() ** 2 > rcond * piv.max() ** 2:
            return -scipy.linalg.cho_solve((c, low), g, check_finite=False)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        pass
    lam, V = np.linalg.eigh(H)
    top = max(float(np.max(np.abs(lam))), np.finfo(float).tiny) if lam.size else 1.0
    if lam.size and lam.min() >= -rcond * top:
        keep = lam > rcond * top
        return -V[:, keep] @ ((V[:, keep].T @ g) / lam[keep])
    tau = max(1e-10 * float(np.mean(np.abs(np.diag(H)))), 1e-12)
    eye = np.eye(H.shape[0])
    while tau < 1e10:
        try:
            return -scipy.linalg.cho_solve(scipy.linalg.cho_factor(H + tau * eye, check_finite=False), g)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            tau *= 10.0
    return -g


def _armijo(F, theta, f0, slope, d, t=1.0, shrink=0.5, max_halvings=40):
    """Backtracking line search: largest t = shrink^k with F(theta + t d) <= f0 + c t slope.
    A relative slack of a few ulps of f0 lets it accept steps at float64's resolution."""
    slack = 64 * np.finfo(float).eps * abs(f0)
    for _ in range(max_halvings):
        f = F(theta + t * d)
        if f <= f0 + ARMIJO * t * slope + slack:
            return t, f
        t *= shrink
    return 0.0, f0


def newton(obj, theta, max_iter, tol, hist, **_):
    """Exact Newton: H = X^T diag(h) X / sum(w) + l2 I, Cholesky, Armijo backtracking.

    In memory (``_newton_outputs``) it works on the outputs Z = X theta.  On Dask the full step's Hessian is computed with its value (one round trip):
    accepted, it serves the next iteration.  In memory it is computed only when
    the step's gradient shows another iteration is needed."""
    if hasattr(obj.data, "outputs"):
        return _newton_outputs(obj, theta, max_iter, tol, hist)
    order = 2 if obj.data.speculative else 1
    f, g, H = obj.smooth(theta, 2)
    for it in range(max_iter + 1):
        gn = obj.optimality(theta, g)
        if not np.isfinite(f) or gn <= tol or it == max_iter:
            hist.record(f, gn, 0.0)
            return theta, it, gn <= tol
        if H is None:
            H = obj.smooth(theta, 2)[2]
        d = _chol_solve(H, g)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: fall back to the gradient
            d, slope = -g, -float(g @ g)
        f1, g1, H1 = obj.smooth(theta + d, order)
        if f1 <= f + ARMIJO * slope + 64 * np.finfo(float).eps * abs(f):
            t = 1.0
        else:
            t, _ = _armijo(lambda th: obj.smooth(th, 0)[0], theta, f, slope, d, t=0.5)
            if t == 0.0:  # no decrease possible at float64 resolution
                hist.record(f, gn, 0.0)
                return theta, it + 1, False
            f1, g1, H1 = obj.smooth(theta + t * d, order)
        hist.record(f, gn, t * float(np.linalg.norm(d)))
        theta = theta + t * d
        f, g, H = f1, g1, H1
    return theta, max_iter, False


def _newton_outputs(obj, theta, max_iter, tol, hist):
    """Newton on in-memory data, with the passes over X counted: per iteration one
    X D for the direction (trial steps then cost O(n) each: Z + t X D), one X^T G
    and one Gram matrix (syrk), the gradient and per-sample Hessian from one
    kernel call at the accepted Z.  In the quadratic phase (a full step that cut
    the gradient 100-fold) the next steps reuse that Hessian while each cuts the
    gradient 10-fold; the stopping rule is the exact gradient's, as everywhere."""
    data, head, S = obj.data, obj.head, obj.data.weight_sum
    shape, pen, l2 = obj.shape, obj.pen, obj.l2

    def value(Z, th):
        obj.n_evals += 1
        wp = pen * th
        return data.value_at(head, Z) / S + 0.5 * l2 * float(wp @ wp)

    def grad(Z, th):
        gz, Hz = data.grad_at(head, Z)
        return gz.ravel() / S + l2 * pen * th, Hz

    Z = data.outputs(theta.reshape(shape))
    f = value(Z, theta)
    g, Hz = grad(Z, theta)
    slack = 64 * np.finfo(float).eps
    H, last_gn, full = None, np.inf, False
    for it in range(max_iter + 1):
        gn = obj.optimality(theta, g)
        if not np.isfinite(f) or gn <= tol or it == max_iter:
            hist.record(f, gn, 0.0)
            return theta, it, gn <= tol
        # A full step that cut the gradient 100-fold is Newton's quadratic phase: the
        # Hessian has barely moved, so the next step reuses it (the Gram matrix is most
        # of an iteration's cost; a step on a kept one costs about a tenth of it).  The
        # kept Hessian stays while each of its full steps cuts the gradient 10-fold
        # (the chord method, converging linearly and fast); otherwise a fresh one.
        if H is None or not (full and gn <= (1e-2 if fresh else 1e-1) * last_gn):
            H = obj.gram(Hz)
            fresh = True
        else:
            fresh = False
        last_gn = gn
        d = _chol_solve(H, g)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: fall back to the gradient
            d, slope = -g, -float(g @ g)
        Zd = data.outputs(d.reshape(shape))
        t = 1.0
        for _ in range(40):
            f1 = value(Z + t * Zd, theta + t * d)
            if f1 <= f + ARMIJO * t * slope + slack * abs(f):
                break
            t *= 0.5
        else:  # no decrease possible at float64 resolution
            if not fresh:  # on a kept Hessian: once more on a fresh one
                full = False
                continue
            hist.record(f, gn, 0.0)
            return theta, it + 1, False
        hist.record(f, gn, t * float(np.linalg.norm(d)))
        theta, Z, f = theta + t * d, Z + t * Zd, f1
        g, Hz = grad(Z, theta)
        full = t == 1.0
    return theta, max_iter, False


def lbfgs(obj, theta, max_iter, tol, hist, **_):
    """scipy's L-BFGS-B on F (smooth part only: no L1 here)."""
    last = {}

    def fun(th):
        f, g, _ = obj.smooth(th, 1)
        last.update(f=f, g=g, x=th.copy())
        return f, g

    def callback(intermediate_result):
        x = intermediate_result.x
        g = last["g"] if np.array_equal(last.get("x"), x) else obj.smooth(x, 1)[1]
        prev = callback.x
        hist.record(intermediate_result.fun, obj.optimality(x, g), float(np.linalg.norm(x - prev)))
        callback.x = x.copy()

    callback.x = theta.copy()
    f0, g0 = fun(theta)
    hist.record(f0, obj.optimality(theta, g0), 0.0)
    res = scipy.optimize.minimize(
        fun, theta, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxcor": 30},
    )
    return res.x, int(res.nit), bool(res.success)


def gd(obj, theta, max_iter, tol, hist, learning_rate=None, **_):
    """Gradient descent, the textbook method: theta -= lr * grad.

    ``learning_rate=None``: Armijo backtracking from twice the last accepted step.
    A number: that fixed step (a subgradient method on non-smooth losses, which
    approaches the optimum to within O(lr)).  With L1 each step is followed by
    the soft-threshold (proximal gradient, ISTA)."""
    t = 1.0
    for it in range(max_iter + 1):
        f, g, _ = obj.smooth(theta, 1)
        gn = obj.optimality(theta, g)
        if not np.isfinite(f) or gn <= tol or it == max_iter:
            hist.record(f + obj.l1_term(theta), gn, 0.0)
            return theta, it, gn <= tol
        if learning_rate is None:
            t, _ = _armijo(lambda th: obj.smooth(th, 0)[0], theta, f, -float(g @ g), -g, t=min(2 * t, 1e6))
            if t == 0.0:
                hist.record(f, gn, 0.0)
                return theta, it, False
        else:
            t = float(learning_rate)
        new = theta - t * g
        if obj.l1 > 0:  # proximal gradient (ISTA): soft-threshold the penalised coefficients
            shrink = t * obj.l1 * obj.pen
            new = np.sign(new) * np.maximum(np.abs(new) - shrink, 0.0)
        hist.record(f + obj.l1_term(theta), gn, float(np.linalg.norm(new - theta)))
        theta = new
    return theta, max_iter, False


def _cd_quadratic(g, H, theta, pen, l1, sweeps, tol):
    """Coordinate descent on the proximal-Newton model
    q(u) = g.(u - theta) + 1/2 (u - theta) H (u - theta) + l1 ||pen * u||_1."""
    return _cd_kernel()(g, H, theta.copy(), pen, l1, sweeps, tol)


_CD = None


def _cd_kernel():
    global _CD
    if _CD is None:
        import numba

        @numba.njit(cache=True)
        def cd(g, H, u, pen, l1, sweeps, tol):
            n = u.size
            r = np.zeros(n)  # H (u - theta), kept up to date
            for _ in range(sweeps):
                biggest = 0.0
                for j in range(n):
                    a = H[j, j]
                    if a <= 0.0:
                        continue
                    z = u[j] - (g[j] + r[j]) / a
                    if pen[j] > 0.0:
                        thr = l1 / a
                        z = z - thr if z > thr else (z + thr if z < -thr else 0.0)
                    delta = z - u[j]
                    if delta != 0.0:
                        u[j] = z
                        for i in range(n):
                            r[i] += H[i, j] * delta
                        biggest = max(biggest, abs(delta))
                if biggest <= tol:
                    break
            return u

        _CD = cd
    return _CD


def proximal(obj, theta, max_iter, tol, hist, **_):
    """Proximal Newton for L1 (and elastic net): each step minimises the smooth
    part's quadratic model plus the exact L1 term by coordinate descent (Numba),
    then backtracks on F (Lee, Sun & Saunders 2014; glmnet's outer/inner loops)."""
    pen = obj.pen.astype(float)
    F = obj.total
    lazy = hasattr(obj.data, "outputs")  # in memory a pass is cheap: the Hessian only where a step follows
    for it in range(max_iter + 1):
        f, g, H = obj.smooth(theta, 1 if lazy else 2)
        gn = obj.optimality(theta, g)
        Fv = f + obj.l1_term(theta)
        if not np.isfinite(f) or gn <= tol or it == max_iter:
            hist.record(Fv, gn, 0.0)
            return theta, it, gn <= tol
        if H is None:
            H = obj.hessian(theta)
        u = _cd_quadratic(g, H, theta, pen, obj.l1, 1000, min(tol, 1e-10) * 1e-2)
        d = u - theta
        slope = float(g @ d) + obj.l1_term(u) - obj.l1_term(theta)
        if slope >= 0:
            hist.record(Fv, gn, 0.0)
            return theta, it, False
        t, _ = _armijo(F, theta, Fv, slope, d)
        hist.record(Fv, gn, t * float(np.linalg.norm(d)))
        if t == 0.0:
            return theta, it + 1, False
        theta = theta + t * d
    return theta, max_iter, False


def lp(obj, theta, max_iter, tol, hist, **_):
    """Piecewise-linear losses (mae, quantile, hinge) with L1 or no penalty, as a
    linear program solved exactly by scipy's HiGHS (as scikit-learn's
    QuantileRegressor): z = X w + b + u - v = t with u, v >= 0 costing lo, hi."""
    head, data = obj.head, obj.data
    if obj.l2 != 0.0:
        raise ValueError("solver='lp' takes L1 or no penalty (l1_ratio=1 or alpha=0); use 'lbfgs' or 'gd'")
    X, sw = data.design(), data.sw / data.weight_sum
    n, p1 = X.shape
    Y = data.Y if data.Y.ndim == 2 else data.Y[:, None]
    pen = obj.pen.reshape(obj.shape)[:, 0] > 0
    Xp, Xf = X[:, pen], X[:, ~pen]
    q = Xp.shape[1]
    out = np.zeros(obj.shape)
    ok = True
    for j in range(obj.shape[1]):
        t, lo, hi = PIECEWISE_LINEAR[head.loss.name](Y[:, j].astype(float), head.params)
        c = np.concatenate([np.full(2 * q, obj.l1), np.zeros(Xf.shape[1]), sw * lo, sw * hi])
        eye = scipy.sparse.eye(n, format="csc")
        A = scipy.sparse.hstack([scipy.sparse.csc_matrix(Xp), scipy.sparse.csc_matrix(-Xp),
                                 scipy.sparse.csc_matrix(Xf), eye, -eye], format="csc")
        bounds = [(0, None)] * (2 * q) + [(None, None)] * Xf.shape[1] + [(0, None)] * (2 * n)
        res = scipy.optimize.linprog(c, A_eq=A, b_eq=t, bounds=bounds, method="highs",
                                     options={"maxiter": max(max_iter, 10000)})
        ok &= res.status == 0
        if res.x is None:
            raise ValueError(f"linear program failed: {res.message}")
        out[pen, j] = res.x[:q] - res.x[q:2 * q]
        out[~pen, j] = res.x[2 * q:2 * q + Xf.shape[1]]
    theta = out.ravel()
    hist.record(obj.total(theta), 0.0, float(np.linalg.norm(theta)))
    return theta, 1, bool(ok)


SOLVERS = {"newton": newton, "lbfgs": lbfgs, "gd": gd, "proximal": proximal, "lp": lp}


def choose(head, obj, requested: str) -> str:
    """'auto': LP for piecewise-linear losses (mae, quantile, hinge) without L2;
    L-BFGS for other non-smooth losses (a kink found by symloss's derived
    properties) and for those with L2 (it stops where its line search can
    no longer decrease F: near, not at, a kinked optimum); proximal gradient
    (gd) for non-smooth losses with L1 and L2; proximal Newton with any L1; Newton while the Hessian is small (<= 2000
    coefficients); L-BFGS beyond."""
    if requested != "auto":
        if requested not in SOLVERS:
            raise ValueError(f"solver must be 'auto' or one of {sorted(SOLVERS)}, got {requested!r}")
        if requested == "lbfgs" and obj.l1 > 0:
            raise ValueError("solver='lbfgs' cannot take an L1 penalty; use 'proximal'")
        return requested
    if not head.smooth:
        name = getattr(getattr(head, "loss", None), "name", None)
        if obj.l2 == 0.0 and hasattr(obj.data, "X") and name in PIECEWISE_LINEAR:
            return "lp"
        return "lbfgs" if obj.l1 == 0 else "gd"
    if obj.l1 > 0:
        return "proximal"
    return "newton" if obj.pen.size <= 2000 else "lbfgs"


def run(solver, obj, theta, max_iter, tol, verbose=0, learning_rate=None):
    hist = History(verbose, max_iter, solver)
    try:
        theta, n_iter, ok = SOLVERS[solver](obj, theta, max_iter, tol, hist, learning_rate=learning_rate)
    finally:
        hist.close()
    if not ok:
        warnings.warn(f"symloss solver '{solver}' did not converge in {max_iter} iterations "
                      f"(tol={tol}); the last gradient norm is in history_['grad_norm']", ConvergenceWarning)
    return theta, n_iter, hist.data
