"""The CUDA backend's primitives.

numba-cuda compiles the CPU backend's scalar code as device functions: a
primitive prints as the same ``math`` call or ``helper`` source (not the CPU's
math-library variants, which are for SIMD loops).  Where a helper branches with
costly math on both sides, a warp whose lanes disagree runs both sides:
``DEVICE_HELPERS`` replaces those with selects that compute the costly part
once, returning bit for bit what the scalar helper returns (tests/test_cuda_sim.py).
"""
from __future__ import annotations

from ..numba_cpu.primitives import SOURCES as _CPU

# name -> GPU source of a helper (same name, arguments and results as the primitive's)
DEVICE_HELPERS = {
    "sign": '''
def sign(x, T):
    # sign with sign(0) = 0 and sign(NaN) = NaN, as selects
    return T(1) if x > T(0) else (T(-1) if x < T(0) else x * T(0))
''',
    "sigmoid": '''
def sigmoid(x, T):
    # 1/(1 + e^{-x}) = (1 or e^{-|x|}) / (1 + e^{-|x|}): one exp, no branch
    e = fexp(-abs(x), T)
    num = T(1) if x >= T(0) else e
    return fdiv(num, T(1) + e, T)
''',
    "softplus": '''
def softplus(x, T):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}): one exp, one log1p, no branch
    a = math.log1p(fexp(-abs(x), T))
    return x + a if x > T(0) else a
''',
    "logistic": '''
def logistic(u, k, T):
    # softplus(u) + k*u, grouped so the linear parts never cancel the softplus
    a = math.log1p(fexp(-abs(u), T))
    return (T(1) + k) * u + a if u > T(0) else k * u + a
''',
    "sigmoid_plus": '''
def sigmoid_plus(u, k, T):
    # sigmoid(u) + k, as (1 + k) - sigmoid(-u) for u > 0 (exact for k = -1)
    e = fexp(-abs(u), T)
    s = fdiv(e, T(1) + e, T)
    return (T(1) + k) - s if u > T(0) else s + k
''',
    "logcosh": '''
def logcosh(x, T):
    # near 0: log1p(2 sinh(x/2)^2); beyond: |x| + log1p(e^{-2|x|}) - log 2;
    # both arguments computed, one log1p
    a = abs(x)
    small = a < T(1)
    s = math.sinh(T(0.5) * a)
    r = math.log1p(T(2) * s * s if small else math.exp(T(-2) * a))
    return r if small else a + r - T(0.6931471805599453)
''',
}


# primitive name -> what the CUDA printer emits for it (the scalar code; see above)
SOURCES = {name: code for name, code in _CPU.items() if code.math_name or code.helper or name == "grouped"}
