"""The start score: the constant raw margin that minimises the weighted loss.

Boosters' built-in objectives start from the loss's optimal constant (the mean
for L2, the log-odds of the mean for logistic, the median for L1); custom
objectives start from 0 and spend their first trees getting there.  The
solvers here find that constant from symloss's own gradient and Hessian, given
only a ``stats`` callable that sums them over the data for one constant, so
the same solver runs on one array or over the partitions of a Dask
collection (one small reduction per iteration).

* one margin: safeguarded Newton inside a sign-change bracket of the summed
  gradient (rtsafe): Newton where the step stays inside the bracket, bisection
  otherwise, so losses with a zero Hessian (mae, quantile) still converge (to
  the weighted median or quantile).
* a class axis: damped Newton on the K x K summed Hessian (a small ridge,
  because softmax losses are invariant to a shift of every class) with a
  backtracking line search on the summed loss.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import InputError

def is_auto(start) -> bool:
    """The wrappers' ``start="auto"``: compute the start score from the data."""
    return isinstance(start, str) and start == "auto"


def yield_to(start, why: str | None):
    """The start score to use where training starts from something of the caller's (``why`` says
    what: a model to continue, their own init_score or baseline; None: nothing): none then, and a
    start score given alongside it is an error."""
    if why is None or start is None:
        return start
    if not is_auto(start):
        raise ValueError(f"{why}: start must be 'auto' or None")
    return None


def constant_margins(start, n: int) -> np.ndarray:
    """``start`` repeated for ``n`` samples: (n,), or (n, K) for a class axis."""
    start = np.asarray(start, dtype=np.float64)
    return np.full(n, float(start)) if start.ndim == 0 else np.tile(start, (n, 1))


GRAD_TOL = 1e-12  # |mean gradient| below this is converged
MAX_ITER = 200
# past this margin a loss whose gradient has all but vanished is taken to have its infimum at
# infinity; one still pulling as hard (data far out: labels of 1e5) is followed further
MAX_MARGIN = 1e4
FLAT = 1e-6  # "all but vanished": the summed gradient below this fraction of the one at 0


def newton_1d(stats: Callable[[float], tuple[float, float, float]], name: str, rtol: float = 1e-12) -> float:
    """argmin over a constant c; ``stats(c)`` gives (sum of w*dL/dc, sum of w*d2L/dc2, sum of w).
    ``rtol``: the bracket's final width relative to max(1, |c|) (where the gradient has no
    root, as a step function's: the median's case)."""
    steps = newton_1d_steps(name, rtol)
    c = next(steps)
    try:
        while True:
            c = steps.send(stats(c))
    except StopIteration as done:
        return done.value


def newton_1d_lockstep(stats: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]], n: int,
                       name: str, rtol: float = 1e-12) -> np.ndarray:
    """``n`` independent :func:`newton_1d` problems solved in lockstep: ``stats(c)`` gives the three
    sums of every problem at its constant ``c[j]`` in one call (one pass over data holding all of
    them, one reduction across machines).  NaN where a problem has no finite minimiser or no
    weight."""
    out = np.full(n, np.nan)
    c = np.zeros(n)
    live = {}
    for j in range(n):
        live[j] = newton_1d_steps(name, rtol)
        c[j] = next(live[j])
    while live:
        g, h, w = stats(c)
        for j in list(live):
            try:
                c[j] = live[j].send((float(g[j]), float(h[j]), float(w[j])))
            except StopIteration as done:
                out[j] = c[j] = done.value
                del live[j]
            except InputError:
                del live[j]
    return out


def newton_1d_steps(name: str, rtol: float = 1e-12):
    """:func:`newton_1d` as a generator: it yields each constant to evaluate, is sent its
    ``(g, h, wsum)`` and returns the minimiser, so one solver can drive many at once."""
    c = 0.0
    g, h, wsum = yield c
    if not wsum > 0:
        raise InputError(f"{name}: the sample weights sum to {wsum}; there is nothing to fit a start score to")
    tol_g = GRAD_TOL * wsum

    def converged(g):
        return abs(g) <= tol_g

    if converged(g):
        return c
    # bracket the sign change of the gradient, stepping downhill (Newton-sized where the Hessian allows)
    step = min(abs(g / h), MAX_MARGIN) if h > 0 else 1.0
    step = max(step, 1e-3)
    a, ga = c, g
    while True:
        b = a - math.copysign(step, ga)
        gb, hb, _ = yield b
        if converged(gb):
            return b
        if not math.isfinite(gb):
            raise InputError(f"{name}: the loss's gradient is not finite at the constant margin {b:g}")
        if (gb > 0) != (ga > 0):
            break
        a, ga = b, gb
        step *= 2.0
        if abs(b) > MAX_MARGIN and (abs(gb) <= FLAT * abs(g) or abs(b) > 1e300):
            raise InputError(f"{name}: the loss keeps decreasing as the constant margin goes to "
                             f"{'+' if b > 0 else '-'}infinity (e.g. every label is the same class); "
                             "pass a start score yourself")
    lo, hi = (a, b) if ga < 0 else (b, a)  # g(lo) < 0 < g(hi)
    x, gx, hx = b, gb, hb
    for _ in range(MAX_ITER):
        newton = x - gx / hx if hx > 0 else math.nan
        x = newton if lo < newton < hi else 0.5 * (lo + hi)
        gx, hx, _ = yield x
        if converged(gx):
            return x
        if gx < 0:
            lo = x
        else:
            hi = x
        if hi - lo <= rtol * max(1.0, abs(x)):
            return 0.5 * (lo + hi)
    return x


def newton_nd(stats: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray, float]], k: int,
              name: str) -> np.ndarray:
    """argmin over a constant vector c of K margins; ``stats(c)`` gives
    (sum of w*L, summed gradient (K,), summed Hessian (K, K), sum of w)."""
    c = np.zeros(k)
    value, g, H, wsum = stats(c)
    if not wsum > 0:
        raise InputError(f"{name}: the sample weights sum to {wsum}; there is nothing to fit a start score to")
    for _ in range(MAX_ITER):
        if np.max(np.abs(g)) <= 1e-10 * wsum:
            break
        ridge = 1e-9 * max(np.trace(H) / k, 1e-300) + 1e-12 * wsum
        try:
            d = np.linalg.solve(H + ridge * np.eye(k), -g)
        except np.linalg.LinAlgError:
            d = -g / wsum
        if not np.all(np.isfinite(d)) or g @ d >= 0:  # not a descent direction: gradient step
            d = -g / max(np.abs(np.diag(H)).max(), wsum * 1e-6)
        t = 1.0
        while t > 1e-10:
            trial = c + t * d
            v2, g2, H2, _ = stats(trial)
            if np.isfinite(v2) and v2 <= value + 1e-4 * t * (g @ d):
                break
            t *= 0.5
        else:
            break  # no decrease along d: as good as it gets in floating point
        c, value, g, H = trial, v2, g2, H2
        if np.max(np.abs(c)) > MAX_MARGIN:
            raise InputError(f"{name}: the loss keeps decreasing as a class's constant margin grows without "
                             "bound (a class that never occurs?); pass a start score yourself")
    return c
