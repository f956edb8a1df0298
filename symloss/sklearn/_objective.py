"""The objective every solver minimises, and its derivatives in the coefficients.

    F(theta) = sum_i s_i loss_i(x_i theta) / sum_i s_i
               + l2 / 2 * ||W_pen||_2^2 + l1 * ||W_pen||_1,     l1 = alpha * l1_ratio,
                                                                 l2 = alpha * (1 - l1_ratio)

theta is (p1, m): p feature rows plus an intercept row (unpenalised) when
fitted, one column per model output.  The data term is a sum over row blocks
of X^T g and X^T diag(h) X: one block in memory, one per chunk with Dask
(each chunk reduced where it lives; only p1*m-sized results travel).
"""
from __future__ import annotations

import numpy as np


def block_terms(head, X, Y, sw, W, order: int, intercept: bool):
    """Weighted loss sum (order 0), plus X^T G (1), plus the Hessian (2), for one block."""
    Z = outputs(X, W, intercept)
    if order == 0:
        return {"value": head.value(Y, Z, sw)}
    v, G = head.value_grad(Y, Z, sw)
    out = {"value": v, "grad": xt(X, G, intercept)}
    if order >= 2:
        _, H = head.grad_hess(Y, Z, sw)
        out["hess"] = hessian_blocks(head, X, H, W.shape, intercept)
    return out


# The intercept is theta's last row.  It is handled beside X, not as a column of ones
# appended to it: that copy of X cost as much as a Newton iteration (400 MB at 100k x 500,
# 1.2 s when the pages are fresh; bench/README.md).

def outputs(X, W, intercept: bool):
    """Z = [X 1] W."""
    if not intercept:
        return np.dot(X, W)  # np.dot: numpy's matmul is far slower on transposed operands here
    Z = np.dot(X, W[:-1])
    Z += W[-1]
    return Z


def xt(X, G, intercept: bool):
    """[X 1]^T G."""
    XG = np.dot(X.T, G)
    return np.vstack([XG, G.sum(axis=0, keepdims=True)]) if intercept else XG


def hessian_blocks(head, X, H, shape, intercept: bool):
    """The data Hessian in theta (p1 * m square) from the per-sample Hessian H in Z."""
    p1, m = shape
    big = np.zeros((p1, m, p1, m))
    for j in range(m):
        for k in range(j, m) if head.full_hessian else (j,):
            d = H[:, j, k] if head.full_hessian else H[:, j]
            B = _weighted_gram(X, np.ascontiguousarray(d), intercept)
            big[:, j, :, k] = B
            big[:, k, :, j] = B.T
    return big.reshape(p1 * m, p1 * m)


def _weighted_gram(X, d, intercept: bool, chunk=8192):
    """[X 1]^T diag(d) [X 1].  Where d >= 0: S^T S with S = sqrt(d) * X, which numpy's
    dot hands to BLAS syrk (half the flops of a product), a chunk of rows at a
    time so the scaled copy stays in cache and costs chunk * p memory, not n * p;
    the intercept's row is S^T sqrt(d) = X^T d.  (numpy's BLAS, not
    scipy.linalg.blas: scipy ships its own OpenBLAS with its own thread pool, one
    more to oversubscribe the cores.)"""
    p = X.shape[1]
    C = np.empty((p + 1, p + 1)) if intercept else np.empty((p, p))
    if not (d.size and d.min() >= 0):
        C[:p, :p] = np.dot(X.T, d[:, None] * X)
        if intercept:
            C[:p, p] = np.dot(X.T, d)
    else:
        A, v = np.zeros((p, p)), np.zeros(p)
        r = np.sqrt(d)
        # one buffer for every chunk: a fresh 32 MB chunk each time is new pages from the
        # OS each time (10% of the Gram at 100k x 500)
        buf = np.empty((min(chunk, X.shape[0]), p))
        for s in range(0, X.shape[0], chunk):
            e = min(s + chunk, X.shape[0])
            S = np.multiply(X[s:e], r[s:e, None], out=buf[:e - s])
            A += np.dot(S.T, S)
            if intercept:
                v += np.dot(S.T, r[s:e])
        C[:p, :p] = A
        if intercept:
            C[:p, p] = v
    if intercept:
        C[p, :p] = C[:p, p]
        C[p, p] = d.sum()
    return C


class InMemoryData:
    """numpy data; the intercept (theta's last row) beside X, not a column of it."""

    def __init__(self, X, Y, sw, intercept: bool):
        self.X, self.intercept = np.asarray(X, dtype=float), intercept
        self.Y, self.sw = Y, sw
        self.weight_sum = float(sw.sum())

    speculative = False  # a pass over the data is cheap here: Newton computes a Hessian only when needed

    def design(self):
        """[X 1] as one array (the LP solver's constraint matrix), made on request."""
        return np.hstack([self.X, np.ones((self.X.shape[0], 1))]) if self.intercept else self.X

    def reduce(self, head, W, order):
        return block_terms(head, self.X, self.Y, self.sw, W, order, self.intercept)

    # Newton in memory works on the model outputs Z = X W: a line search moves
    # Z + t X D (one product per direction, O(n) per trial step), and the
    # gradient and Hessian come from one kernel pass at the accepted Z.
    def outputs(self, W):
        return outputs(self.X, W, self.intercept)

    def value_at(self, head, Z):
        return head.value(self.Y, Z, self.sw)

    def grad_at(self, head, Z):
        """(X^T G, H): the unnormalised gradient and the per-sample Hessian in Z, one kernel pass."""
        G, H = head.grad_hess(self.Y, Z, self.sw)
        return xt(self.X, G, self.intercept), H

    def gram(self, head, H, shape):
        return hessian_blocks(head, self.X, H, shape, self.intercept)

    def intercept_start(self, head, m, tol, steps=30):
        """The best intercept with w = 0, by scalar Newton steps on each output's own
        curvature (O(n) passes, no Gram): the start scikit-learn's GLMs get from
        link(mean(y)), for any loss.  Zero where the curvature vanishes (mae)."""
        b = np.zeros(m)
        n = self.X.shape[0]
        for _ in range(steps):
            G, H = head.grad_hess(self.Y, np.broadcast_to(b, (n, m)).copy(), self.sw)
            g = G.sum(axis=0) / self.weight_sum
            h = (np.diagonal(H, axis1=1, axis2=2) if H.ndim == 3 else H).sum(axis=0) / self.weight_sum
            ok = h > 0
            if not ok.any() or np.max(np.abs(g[ok])) <= tol:
                break
            b[ok] -= np.clip(g[ok] / h[ok], -10.0, 10.0)
            if not np.all(np.isfinite(b)):
                return np.zeros(m)
        return b


class Objective:
    """F, its gradient and the smooth part's Hessian, on flattened theta (p1 * m,)."""

    def __init__(self, head, data, p1: int, m: int, alpha: float, l1_ratio: float, intercept: bool):
        self.head, self.data = head, data
        self.shape = (p1, m)
        self.l1 = float(alpha * l1_ratio)
        self.l2 = float(alpha * (1.0 - l1_ratio))
        mask = np.ones(self.shape)
        if intercept:
            mask[-1] = 0.0
        self.pen = mask.ravel()
        self.n_evals = 0

    def _data(self, theta, order):
        self.n_evals += 1
        r = self.data.reduce(self.head, theta.reshape(self.shape), order)
        S = self.data.weight_sum
        return {k: v / S for k, v in r.items()}

    def l1_term(self, theta):
        return self.l1 * float(np.abs(self.pen * theta).sum())

    def smooth(self, theta, order=1):
        """(f, grad, hess) of the smooth part: data + l2 penalty (grad/hess None below the order)."""
        r = self._data(theta, order)
        wp = self.pen * theta
        f = r["value"] + 0.5 * self.l2 * float(wp @ wp)
        g = r["grad"].ravel() + self.l2 * wp if order >= 1 else None
        H = r["hess"] + np.diag(self.l2 * self.pen) if order >= 2 else None
        return f, g, H

    def gram(self, Hz):
        """The smooth part's Hessian in theta from the per-sample Hessian Hz (in-memory data)."""
        return self.data.gram(self.head, Hz, self.shape) / self.data.weight_sum + np.diag(self.l2 * self.pen)

    def hessian(self, theta):
        """The smooth part's Hessian alone (in memory: one pass for the per-sample Hessian,
        then the Gram matrix, which is kept: where the per-sample Hessian comes out the
        same, as mse's constant 2 does, the kept one is returned; only while the per-sample
        Hessian is no bigger than X)."""
        data = self.data
        if not hasattr(data, "outputs"):
            return self.smooth(theta, 2)[2]
        Z = data.outputs(theta.reshape(self.shape))
        _, Hz = self.head.grad_hess(data.Y, Z, data.sw)
        kept = getattr(self, "_kept_hessian", None)
        if kept is not None and np.array_equal(kept[0], Hz):
            return kept[1]
        H = self.gram(Hz)
        # kept only where it costs no more memory than X (not a multinomial's (n, K, K))
        self._kept_hessian = (Hz, H) if Hz.nbytes <= data.X.nbytes else None
        return H

    def total(self, theta):
        return self.smooth(theta, 0)[0] + self.l1_term(theta)

    def optimality(self, theta, g):
        """Infinity norm of the minimum-norm subgradient of F (0 exactly at the optimum)."""
        if self.l1 == 0.0:
            return float(np.max(np.abs(g))) if g.size else 0.0
        pen = self.pen > 0
        v = g.copy()
        nz = pen & (theta != 0)
        v[nz] += self.l1 * np.sign(theta[nz])
        z = pen & (theta == 0)
        v[z] = np.maximum(np.abs(g[z]) - self.l1, 0.0)
        return float(np.max(np.abs(v)))
