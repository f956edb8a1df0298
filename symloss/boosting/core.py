"""BoostLoss: one symloss loss as a boosting objective on raw margins, library-neutral.

Per sample, the derivatives of the *summed* loss (as the built-in objectives
give them, not divided by n), weighted by the sample weight, from one fused
``grad_hessian`` kernel call (row losses: ``grad_hessian_diag``, one softmax
per row), in the dtype the library hands over.  The library modules only
adapt signatures.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import link as _link
from . import policy as _policy
from . import start as _start

# Rows per full-Hessian chunk for the upper bound and the start score: bounded memory.
_HESSIAN_CHUNK_ENTRIES = 1 << 21


def resolve(loss):
    """A Loss or RowLoss from a catalog name, a spec path or a loss object."""
    from ..runtime import Loss, load
    from ..runtime.row_loss import RowLoss

    if isinstance(loss, (Loss, RowLoss)):
        return loss
    if isinstance(loss, (str, Path)):
        return load(loss)
    raise InputError(f"expected a loss name, a spec path or a symloss Loss, got {type(loss).__name__}")


def _check_structure(loss) -> None:
    spec = loss.spec
    if len(spec.predictions) != 1:
        names = ", ".join(p.name for p in spec.predictions)
        raise InputError(f"{loss.name} has {len(spec.predictions)} predictions ({names}); a boosting objective "
                         "has one raw margin per sample (or per class)")
    if loss.spec.kind == "row":
        vec_targets = [i for i in spec.inputs if i.role == "target" and i.shape == "vector"]
        pred = spec.predictions[0]
        if pred.shape != "vector" or len(vec_targets) != 1 or not vec_targets[0].indices \
                or len(loss.inputs) != 2:
            raise InputError(f"{loss.name} is a row loss without a class axis (boosting needs a class-index "
                             "target and one vector of class margins, as cross_entropy has)")
        if pred.domain != "real":
            raise InputError(f"{loss.name}: its prediction '{pred.name}' is a {pred.domain}, not class margins; "
                             f"use {_link.ALTERNATIVE.get(pred.domain, 'cross_entropy')}")


class BoostLoss:
    """``grad_hess``, ``value`` and ``start`` of one loss with fixed parameters and Hessian policy.

    ``link="auto"`` composes a loss on a probability or a positive mean with
    its link (see :mod:`symloss.boosting.link`); ``link=None`` refuses such losses.
    """

    def __init__(self, loss, hessian: str | None = None, link: str | None = "auto", **params):
        base = resolve(loss)
        self.source = base  # the loss the user named (before any link)
        _check_structure(base)
        if base.spec.kind != "row" and _link.needs_link(base):
            if link != "auto":
                dom = _link.needs_link(base)
                raise InputError(f"{base.name}: its prediction lives on the {dom} domain, not a raw margin; "
                                 f"use {_link.ALTERNATIVE.get(dom)} or link='auto'")
            base = _link.compose(base)
        self.loss = base
        self.row = base.spec.kind == "row"
        self.params = dict(params)
        self._check_params()
        if hessian is None:
            hessian, self.hessian_reason = _policy.default(base, self.params)
        else:
            self.hessian_reason = "chosen by the caller"
        self.hessian = _policy.check(hessian, self.row)
        self._ws = _Workspace()

    # pickling: worker processes (Dask) rebuild the kernels from the spec -----------------
    def __reduce__(self):
        return (_rebuild, (_portable(self.source), self.hessian, self.params))

    def __repr__(self) -> str:
        kw = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"BoostLoss({self.loss.name!r}, hessian={self.hessian!r}{kw})"

    @property
    def name(self) -> str:
        return self.loss.name

    def _check_params(self) -> None:
        spec = self.loss.spec
        known = {p.name for p in spec.params} | set(getattr(self.loss, "class_inputs", {}))
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise InputError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                             f"parameters: {', '.join(sorted(known)) or 'none'}")
        for p in spec.params:
            if p.name in self.params:
                problem = p.violation(float(self.params[p.name]))
                if problem:
                    raise InputError(f"{self.name}: parameter '{p.name}' {problem}")

    # inputs --------------------------------------------------------------------------------
    def labels(self, y, num_class: int | None = None) -> np.ndarray:
        """Checked labels: class indices (int64) for row losses, floats in the target's domain otherwise."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise InputError(f"{self.name}: labels must be one per sample, got shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise InputError(f"{self.name}: labels must be numeric, got dtype {y.dtype}")
        if self.row:
            return _check_indices(self.name, y, num_class)
        return _check_domain(self.loss, self.source.name, y)

    @staticmethod
    def weights(w, n: int) -> np.ndarray | None:
        if w is None:
            return None
        w = np.asarray(w)
        if w.size == 0:  # XGBoost's "no weights"
            return None
        if w.shape != (n,):
            raise InputError(f"sample weights have shape {w.shape}, expected ({n},) (one per sample)")
        return w

    def _margin(self, margin, n: int) -> np.ndarray:
        m = np.asarray(margin)
        if m.dtype not in (np.float32, np.float64):
            m = m.astype(np.float64)
        if self.row:
            if m.ndim != 2 or m.shape[0] != n or m.shape[1] < 2:
                raise InputError(f"{self.name}: margins have shape {m.shape}, expected ({n}, K) with K >= 2 "
                                 "classes (set num_class / a multi-class objective)")
        elif m.shape != (n,) and m.shape != (n, 1):
            raise InputError(f"{self.name}: margins have shape {m.shape}, expected ({n},) "
                             "(an elementwise loss gives one margin per sample; no num_class)")
        return m

    # the objective --------------------------------------------------------------------------
    def grad_hess(self, y, margin, weight=None, *, reuse: bool = False, layout: str | None = None):
        """Per-sample gradient and (policy-adjusted) Hessian of the summed weighted loss, margin's shape.

        ``reuse=True`` is the boosting libraries' path: the results are this
        thread's buffers, overwritten by its next reuse call (the libraries copy
        the gradients before they call the objective again), and the checked
        labels and weights are kept between calls and reused while the labels
        and weights passed equal them (compared against a private copy).
        ``layout="lightgbm"`` returns a class axis as LightGBM reads it: float32
        and F-contiguous (it flattens in F order and converts to float32 itself
        otherwise, in two more passes).

        The reuse path runs the kernels on the calling thread only: the
        boosters run their own OpenMP thread pool (another libgomp than
        Numba's), and a second pool on the same cores made training cost
        1.7-1.9x the built-in objective's CPU time against 1.0x with one
        thread (XGBoost, 100k rows, 2 cores; the objective is a small part of
        a round).
        """
        if reuse:
            with _one_thread():
                return self._grad_hess(y, margin, weight, self._ws, layout)
        return self._grad_hess(y, margin, weight, None, layout)

    def _grad_hess(self, y, margin, weight, ws, layout):
        y = np.asarray(y)
        n = y.shape[0] if y.ndim else 0
        m = self._margin(margin, n)
        k = m.shape[1] if self.row else None
        labels = self._checked(ws, "labels", y, m.dtype, k)
        w = self._checked(ws, "weights", weight, m.dtype, n)
        if (self.row and layout == "lightgbm" and self.hessian in ("exact", "clip")
                and hasattr(self.loss.module, "grad_hessian_diag_cm")):  # (a module generated before them: below)
            # LightGBM's own layout in and out: the class-major kernel reads its (F-ordered) margins
            # and writes float32 F-ordered results, floored in the same pass; no copies
            out = (_buffer(ws, "g_lgb", (k, n), np.float32).T, _buffer(ws, "h_lgb", (k, n), np.float32).T)
            floor = _policy.FLOOR if self.hessian == "clip" else -np.inf
            return self.loss.grad_hessian_diag_class_major(labels, m, out=out, sample_weight=w,
                                                           hessian_floor=floor, **self.params)
        if self.row:
            # the "clip" floor of an unweighted Hessian goes into LightGBM's layout copy: one pass less
            floor = _policy.FLOOR if layout == "lightgbm" and self.hessian == "clip" and w is None else None
            g, h = self._row_grad_hess(labels, m, w, ws, clip=floor is None)
            if layout == "lightgbm":
                from .layout import class_major_into

                g = class_major_into(g, _buffer(ws, "g_lgb", (k, n), np.float32))
                h = class_major_into(h, _buffer(ws, "h_lgb", (k, n), np.float32), floor)
            return g, h
        shape = m.shape
        flat = m.reshape(n)
        # kept buffers (ws): at 1M samples the first touch of two fresh results' pages costs
        # several times the kernel itself (3 to 20 ms against 1 to 2 ms)
        out = None if ws is None else (_buffer(ws, "g", (n,), m.dtype), _buffer(ws, "h", (n,), m.dtype))
        g, h = self.loss.grad_hessian(labels, flat, reduction="none", sample_weight=w, out=out, **self.params)
        if self.hessian == "fisher":
            values = self.loss.value(labels, flat, reduction="none", sample_weight=w, **self.params)
            _policy.fisher(h, g, values, w)
        else:
            _policy.apply(self.hessian, h, w)
        return g.reshape(shape), h.reshape(shape)

    def _checked(self, ws, what: str, a, dtype, size):
        """Checked labels (``size``: K for a class axis) or weights (``size``: n), in the kernels'
        dtype (class indices: int64); with a workspace, kept while the raw input stays equal."""
        if what == "weights":
            a = self.weights(a, size)
            if a is None:
                return None
        key = (what, np.dtype(dtype), size)
        if ws is not None:
            kept = ws.checked.get(key)
            if kept is not None and kept[0].shape == a.shape and kept[0].dtype == a.dtype \
                    and np.array_equal(kept[0], a):
                return kept[1]
        if what == "labels":
            out = self.labels(a, size) if self.row else self.labels(a).astype(dtype, copy=False)
        else:
            out = a.astype(dtype, copy=False)
        out = np.ascontiguousarray(out)
        if ws is not None:
            ws.checked[key] = (np.array(a, copy=True), out)
        return out

    def _row_grad_hess(self, labels, m, w, ws=None, clip: bool = True):
        """``clip=False``: the caller applies the "clip" policy's floor itself."""
        L, kw = self.loss, dict(reduction="none", sample_weight=w, **self.params)
        if ws is not None:
            # the row kernels read C rows: LightGBM's class-major margins are copied into a kept buffer
            if not m.flags.c_contiguous:
                buf = _buffer(ws, "m", m.shape, m.dtype)
                np.copyto(buf, m)
                m = buf
            out = (_buffer(ws, "g", m.shape, m.dtype), _buffer(ws, "h", m.shape, m.dtype))
        else:
            out = (None, None)
        wcol = None if w is None else w[:, None]
        if self.hessian == "constant":
            g = L.grad(labels, m, out=out[0], **kw)
            h = out[1] if out[1] is not None else np.empty_like(m)
            return g, _policy.apply("constant", h, wcol)
        # one fused pass: one softmax per row for both
        g, h = L.grad_hessian_diag(labels, m, out=out, **kw)
        if self.hessian == "fisher":
            values = L.value(labels, m, **kw)
            return g, _policy.fisher(h, g, values, None if w is None else np.broadcast_to(wcol, m.shape))
        if self.hessian == "upper_bound":
            h[...] = self._gershgorin(labels, m, h, kw)
            _policy.apply("clip", h, wcol)
        elif self.hessian == "clip" and clip:
            _policy.apply("clip", h, wcol)
        return g, h

    def _gershgorin(self, labels, m, diag, kw):
        """Each row's absolute Hessian row sums: 2 diag - H 1 where off-diagonals are <= 0 (softmax
        losses; checked on rows spread over the call), else from full per-row Hessians in chunks."""
        L, k = self.loss, m.shape[1]
        rows = np.unique(np.linspace(0, m.shape[0] - 1, min(m.shape[0], 256)).astype(np.int64))
        probe = L.hessian(labels[rows], m[rows], **{**kw, "sample_weight": None})
        off = probe * (1 - np.eye(k))
        if np.all(off <= 0):
            hv = L.hvp(labels, m, v=np.ones_like(m), **kw)
            return 2 * diag - hv
        out = np.empty_like(m)
        step = max(1, _HESSIAN_CHUNK_ENTRIES // (k * k))
        sw = kw["sample_weight"]
        for s in range(0, m.shape[0], step):
            H = L.hessian(labels[s:s + step], m[s:s + step],
                          **{**kw, "sample_weight": None if sw is None else sw[s:s + step]})
            out[s:s + step] = np.abs(H).sum(axis=2)
        return out

    def value(self, y, margin, weight=None) -> float:
        """The weighted mean loss at the margins (a metric)."""
        y = np.asarray(y)
        n = y.shape[0]
        m = self._margin(margin, n)
        w = self.weights(weight, n)
        if self.row:
            return float(self.loss.value(self.labels(y, m.shape[1]), m, sample_weight=w, **self.params))
        return float(self.loss.value(self.labels(y).astype(m.dtype, copy=False), m.reshape(n),
                                     sample_weight=w, **self.params))

    # the start score ------------------------------------------------------------------------
    def stats(self, y, weight, c):
        """Sums over samples at the constant margin ``c``, for the start-score solvers (float64):
        elementwise (g, h, w); row losses (value, g (K,), H (K, K), w)."""
        y = np.asarray(y)
        n = y.shape[0]
        w = self.weights(weight, n)
        wsum = float(n if w is None else np.sum(w, dtype=np.float64))
        if n == 0:
            return (0.0, 0.0, 0.0) if not self.row else (0.0, np.zeros(len(c)), np.zeros((len(c),) * 2), 0.0)
        w64 = None if w is None else w.astype(np.float64)
        if not self.row:
            m = np.full(n, float(c))
            g, h = self.loss.grad_hessian(self.labels(y).astype(np.float64), m, reduction="none",
                                          sample_weight=w64, **self.params)
            return float(g.sum()), float(h.sum()), wsum
        c = np.asarray(c, dtype=np.float64)
        k = c.shape[0]
        labels = self.labels(y, k)
        # at a constant margin a row's loss depends on its label alone (class-index target, no other
        # row input: _check_structure), so the sums are one row per class weighted by the class's
        # total weight: O(n) for the bincount instead of n full K x K Hessians per Newton iteration
        per_class = np.bincount(labels, weights=w64, minlength=k)
        present = np.flatnonzero(per_class)
        m = np.broadcast_to(c, (present.size, k))
        kw = dict(sample_weight=per_class[present], **self.params)
        v = float(self.loss.value(present, m, reduction="sum", **kw))
        g = self.loss.grad(present, m, reduction="none", **kw).sum(axis=0)
        H = self.loss.hessian(present, m, **kw).sum(axis=0)
        return v, g, H, wsum

    def start(self, y, weight=None, num_class: int | None = None):
        """The optimal constant raw margin: a float, or a (K,) array for a class axis."""
        y = np.asarray(y)
        if self.row:
            k = num_class or int(self.labels(y).max()) + 1
            return _start.newton_nd(lambda c: self.stats(y, weight, c), k, self.name)
        return _start.newton_1d(lambda c: self.stats(y, weight, c), self.name)


class _Workspace(threading.local):
    """One thread's kept buffers and checked inputs (``grad_hess(reuse=True)``): a model trained in
    several threads at once (joblib's threading backend) gets one set per thread."""

    def __init__(self):
        self.buffers: dict = {}
        self.checked: dict = {}


def _buffer(ws, name: str, shape, dtype) -> np.ndarray | None:
    """The workspace's buffer ``name`` of this shape and dtype (allocated on first use or change);
    a new array without a workspace."""
    if ws is None:
        return np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    b = ws.buffers.get(name)
    if b is None or b.shape != tuple(shape) or b.dtype != dtype:
        b = ws.buffers[name] = np.empty(shape, dtype)
    return b


@contextmanager
def _one_thread():
    """Numba's parallel kernels (and the layout copy) on the calling thread only, for this call."""
    import numba

    old = numba.get_num_threads()
    if old == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _check_indices(shown: str, y: np.ndarray, num_class: int | None = None) -> np.ndarray:
    """Class indices (int64) of a row loss, each an integer in [0, num_class) (``None``: >= 0), or an
    InputError naming the loss and the first bad label."""
    with np.errstate(invalid="ignore"):  # (NaN and inf cast to garbage, which the comparison catches)
        idx = y.astype(np.int64)
    bad = (idx != y) | (idx < 0) | ((idx >= num_class) if num_class else False)
    if np.any(bad):
        v = float(y[np.argmax(bad)])
        within = f" in [0, {num_class})" if num_class else ""
        raise InputError(f"{shown}: labels must be class indices{within}, got {v!r}")
    return idx


def _check_domain(loss, shown: str, y: np.ndarray) -> np.ndarray:
    """Labels inside the target's domain, or an InputError naming the loss and the first bad label.

    Checked with two reductions (min, max; NaN propagates into both) and, for the
    two-valued domains, one product, so a boosting round pays little for it."""
    dom = loss.spec.targets[0].domain
    if y.size == 0:
        return y
    lo, hi = y.min(), y.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"{shown}: labels must be finite (found NaN or inf)")
    want = None
    if dom == "positive":
        zero_ok = _zero_ok(loss)
        if lo < 0 or (lo == 0 and not zero_ok):
            want = "y >= 0" if zero_ok else "y > 0"
    elif dom == "unit" and (lo <= 0 or hi >= 1):
        want = "0 < y < 1"
    elif dom == "unit_closed" and (lo < 0 or hi > 1):
        want = "0 <= y <= 1"
    elif dom == "binary" and np.any(y * (1 - y)):
        want = "y in {0, 1}"
    elif dom == "sign" and np.any(y * y != 1):
        want = "y in {-1, 1} (map 0 labels to -1)"
    if want is not None:
        bad = {"positive": (y < 0) | ((y == 0) & (want == "y > 0")), "unit": (y <= 0) | (y >= 1),
               "unit_closed": (y < 0) | (y > 1), "binary": (y != 0) & (y != 1), "sign": (y != -1) & (y != 1)}[dom]
        raise InputError(f"{shown}: label {float(y[np.argmax(bad)])!r} is outside the loss's target domain ({want})")
    return y


_ZERO_OK: dict = {}


def _zero_ok(loss) -> bool:
    """May a 'positive' target be 0?  Yes where the loss stays bounded below in the margin at y = 0
    (Poisson counts); no where it does not (the gamma deviance at y = 0 has no minimiser)."""
    key = id(loss)
    if key not in _ZERO_OK:
        z = np.linspace(-700.0, 700.0, 29)
        v = loss.value(np.zeros_like(z), z, reduction="none")
        _ZERO_OK[key] = bool(np.all(np.isfinite(v)) and v.min() > -100.0)
    return _ZERO_OK[key]


def _portable(loss):
    """What rebuilds ``loss`` in another process: its catalog name, or its spec."""
    from ..runtime.loss import _BUILTIN

    if _BUILTIN.get(loss.name) is loss:
        return loss.name
    return loss.spec


_REBUILT: dict = {}


def _rebuild(source, hessian, params):
    """Unpickling: a catalog loss by name, any other from its spec (derived once per process)."""
    import sympy as sp

    from ..runtime import Loss

    if isinstance(source, str):
        return BoostLoss(source, hessian=hessian, **params)
    key = (source.name, sp.srepr(source.loss), source.inputs, source.params)
    if key not in _REBUILT:
        _REBUILT[key] = Loss.from_spec(source)
    return BoostLoss(_REBUILT[key], hessian=hessian, **params)
