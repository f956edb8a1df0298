"""Derive the math library's polynomial coefficients (run: ``python -m symloss.mathlib.fit``).

Every polynomial is a minimax fit found with the Remez exchange algorithm in
mpmath at 50 digits, then rounded to the target float type.  The output,
``coefficients.py``, is deterministic: same script, same bytes.  ``--check``
recomputes and compares instead of writing.

The reduced functions (``g`` is what the polynomial approximates, ``t`` its
argument) are chosen so that the leading terms of every kernel are exact and
the polynomial only supplies a small correction:

* ``EXPM1_Q`` - exp and expm1 after the Cody-Waite reduction x = k ln2 + r,
  |r| <= ln2/2:  expm1(r) = r + r^2 q(r),  q(r) = (expm1(r) - r) / r^2.
  exp(r) = 1 + (r + r^2 q(r)).
* ``LOGCOSH_G`` - log cosh for |x| < 3/4, where |x| - log 2 + log1p(e^-2|x|)
  cancels: log cosh(x) = w g(w), w = x^2, g(w) = log(cosh(sqrt w))/w.
* ``LOGCOSH_L`` - log cosh for |x| >= 3/4: |x| - log 2 + log1p(t), t = e^-2|x|
  <= e^-1.5, with log1p(t) = t + t^2 q(t), q(t) = (log1p(t) - t)/t^2; a
  polynomial, no division (unlike the general log1p).
* ``LOG_H`` - log after the reduction x = 2^e (1 + f), 1 + f in [sqrt(1/2), sqrt(2)):
  with s = f/(2+f), z = s^2:  log(1+f) = 2 atanh(s) = 2s + s z h(z),
  h(z) = (2 atanh(s)/s - 2)/z = sum_{k>=1} 2 z^(k-1)/(2k+1).
  |s| <= 3 - 2 sqrt(2), so z <= (3 - 2 sqrt(2))^2 = 0.0294.

The error weights: q and h are fitted in absolute error.  expm1's relative error
from q is |r| err(q) <= 0.35 err(q); exp's is r^2 err(q) <= 0.12 err(q); log's
is about z err(h)/2 <= 0.015 err(h).  Rounding in the float type adds to that;
tests/test_mathlib.py measures the end-to-end errors against mpmath.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mpmath
import numpy as np

mp = mpmath.mp
DPS = 50
MARGIN = mpmath.mpf(1) + mpmath.mpf(2) ** -12  # the reductions can overshoot a little


def _q_expm1(r):
    """(expm1(r) - r) / r^2 by its series (no cancellation)."""
    total, term, k = mpmath.mpf(0), mpmath.mpf(1) / 2, 2
    while True:
        total += term
        k += 1
        term = term * r / k
        if abs(term) < mpmath.mpf(10) ** (-DPS - 5):
            return total


def _h_log(z):
    """(2 atanh(sqrt z)/sqrt z - 2)/z = sum_{k>=1} 2 z^(k-1)/(2k+1)."""
    total, zk, k = mpmath.mpf(0), mpmath.mpf(1), 1
    while True:
        term = 2 * zk / (2 * k + 1)
        total += term
        if abs(term) < mpmath.mpf(10) ** (-DPS - 5):
            return total
        zk *= z
        k += 1


def _g_logcosh(w):
    """log(cosh(sqrt w)) / w (1/2 at 0); log1p(2 sinh^2(a/2)) keeps every digit."""
    if w == 0:
        return mpmath.mpf(1) / 2
    a = mpmath.sqrt(w)
    return mpmath.log1p(2 * mpmath.sinh(a / 2) ** 2) / w


def _q_log1p(t):
    """(log1p(t) - t) / t^2 (-1/2 at 0)."""
    if t == 0:
        return -mpmath.mpf(1) / 2
    return (mpmath.log1p(t) - t) / t**2


def remez(g, a, b, degree, iterations=40, grid=1000):
    """Minimax polynomial of ``degree`` for g on [a, b] in absolute error.

    Returns (coefficients c0..cn as mpf, levelled error |E|).
    """
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    n = degree
    # dense grid, Chebyshev-clustered, for locating the error's extrema
    xs = [(a + b) / 2 - (b - a) / 2 * mpmath.cos(mpmath.pi * i / (grid - 1)) for i in range(grid)]
    gs = [g(x) for x in xs]
    # initial reference: extrema of the Chebyshev polynomial T_{n+1}
    ref = [(a + b) / 2 - (b - a) / 2 * mpmath.cos(mpmath.pi * i / (n + 1)) for i in range(n + 2)]
    E = mpmath.mpf(0)
    for _ in range(iterations):
        A = mpmath.matrix(n + 2, n + 2)
        rhs = mpmath.matrix(n + 2, 1)
        for i, x in enumerate(ref):
            for j in range(n + 1):
                A[i, j] = x**j
            A[i, n + 1] = (-1) ** i
            rhs[i] = g(x)
        sol = mpmath.lu_solve(A, rhs)
        c = [sol[j] for j in range(n + 1)]
        E = abs(sol[n + 1])

        def err(x, gx):
            p = mpmath.mpf(0)
            for cj in reversed(c):
                p = p * x + cj
            return gx - p

        es = [err(x, gx) for x, gx in zip(xs, gs)]
        # local extrema of the error on the grid, merged into alternating runs
        ext = []
        for i in range(grid):
            left = es[i - 1] if i > 0 else None
            right = es[i + 1] if i < grid - 1 else None
            e = es[i]
            if (left is None or abs(e) >= abs(left)) and (right is None or abs(e) >= abs(right)):
                if ext and mpmath.sign(es[ext[-1]]) == mpmath.sign(e):
                    if abs(e) > abs(es[ext[-1]]):
                        ext[-1] = i
                else:
                    ext.append(i)
        # keep n+2 alternating points containing the largest error
        while len(ext) > n + 2:
            if abs(es[ext[0]]) < abs(es[ext[-1]]):
                ext.pop(0)
            else:
                ext.pop()
        if len(ext) < n + 2:
            raise RuntimeError("Remez: lost alternation")
        emax = max(abs(es[i]) for i in ext)
        ref = [xs[i] for i in ext]
        if emax <= E * (1 + mpmath.mpf(10) ** -6):
            break
    return c, E


# name -> (function, interval, {float type: degree})
HALF_LN2 = mpmath.log(2) / 2
ZMAX = (3 - 2 * mpmath.sqrt(2)) ** 2
LOGCOSH_SMALL = mpmath.mpf(3) / 4  # flogcosh's polynomial branch: |x| < 3/4
FITS = {
    "EXPM1_Q": (_q_expm1, (-HALF_LN2 * MARGIN, HALF_LN2 * MARGIN), {"f64": 9, "f32": 4}),
    "LOG_H": (_h_log, (0, ZMAX * MARGIN), {"f64": 6, "f32": 2}),
    "LOGCOSH_G": (_g_logcosh, (0, LOGCOSH_SMALL**2), {"f64": 11, "f32": 5}),
    "LOGCOSH_L": (_q_log1p, (0, mpmath.exp(-2 * LOGCOSH_SMALL) * MARGIN), {"f64": 11, "f32": 4}),
}


def _round(c, kind):
    v = float(c)  # nearest double (mpmath rounds to nearest)
    if kind == "f32":
        v = float(np.float32(float(mpmath.mpf(c))))
        # np.float32(double) rounds the already-rounded double; redo it exactly
        lo, hi = np.nextafter(np.float32(v), np.float32(-np.inf)), np.nextafter(np.float32(v), np.float32(np.inf))
        v = min((float(lo), v, float(hi)), key=lambda t: abs(mpmath.mpf(t) - c))
    return v


def fit_all():
    """{name: {kind: (coefficients as floats, levelled minimax error)}}."""
    mp.dps = DPS
    out = {}
    for name, (g, (a, b), degrees) in FITS.items():
        out[name] = {}
        for kind, degree in degrees.items():
            c, E = remez(g, a, b, degree)
            out[name][kind] = ([_round(ci, kind) for ci in c], float(E))
    return out


def constants():
    """Cody-Waite splits of ln 2: hi has few enough bits that k * hi is exact
    (|k| <= 1077 in float64: 32 bits; |k| <= 150 in float32: 16 bits)."""
    mp.dps = DPS
    ln2 = mpmath.log(2)
    out = {}
    for kind, bits in (("F64", 32), ("F32", 16)):
        hi = mpmath.nint(ln2 * 2**bits) / 2**bits
        out[f"LN2_HI_{kind}"] = float(hi)
        out[f"LN2_LO_{kind}"] = _round(ln2 - hi, kind.lower())
        out[f"LN2_{kind}"] = _round(ln2, kind.lower())
        out[f"LOG2E_{kind}"] = _round(1 / ln2, kind.lower())
    return out


def render(fits) -> str:
    lines = [
        '"""Polynomial coefficients of the math library: generated by `python -m symloss.mathlib.fit`; do not edit.',
        "",
        "Each entry: (c0, c1, ..., cn) lowest degree first, rounded to the float type,",
        "and the minimax error of the unrounded fit (absolute, on the reduced function).",
        '"""',
        "",
    ]
    for name, value in constants().items():
        lines.append(f"{name} = {value!r}")
    lines.append("")
    for name in sorted(fits):
        for kind in sorted(fits[name]):
            coeffs, E = fits[name][kind]
            lines.append(f"{name}_{kind.upper()} = (")
            lines.extend(f"    {c!r}," for c in coeffs)
            lines.append(")")
            lines.append(f"{name}_{kind.upper()}_MINIMAX_ERROR = {float(f'{E:.3g}')!r}")
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with coefficients.py instead of writing it")
    args = ap.parse_args(argv)
    text = render(fit_all())
    path = Path(__file__).with_name("coefficients.py")
    if args.check:
        if path.read_text() != text:
            print(f"{path} is out of date: run python -m symloss.mathlib.fit", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
