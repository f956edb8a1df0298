"""The kernels' own vectorisable math library.

Numba has no SIMD math library: a call to libm's ``exp`` or ``log1p`` keeps a
loop scalar.  These functions are straight-line Numba code (range reduction,
a minimax polynomial from ``fit.py``, 2^k by a bit cast, edge cases by selects)
that LLVM inlines and vectorises, so transcendental kernels run at memory
bandwidth.  Each is emitted as *source text* into the generated modules, which
stay vendorable (they import only math, numpy and numba).

Public functions, all called as ``name(x, T)`` from numba-compiled code, where
``T`` is the kernel's float class (``np.float32`` or ``np.float64``):

=============  =====================  ==========================================
name           computes               notes
=============  =====================  ==========================================
``fexp``       e**x                   inf above ~709.78, 0 below ~-745.13
``fexpm1``     e**x - 1               exact near 0
``flog``       log(x)                 -inf at 0, NaN below 0, subnormals exact
``flog1p``     log(1 + x)             -inf at -1, NaN below -1
``ftanh``      tanh(x)
``fsigmoid``   1/(1 + e**-x)          exp only of -|x|
``fsoftplus``  log(1 + e**x)          exact for every finite x
``flogcosh``   log(cosh(x))           exact near 0 and for large |x|
``fsech2``     1/cosh(x)**2
=============  =====================  ==========================================

API for the code generator::

    from symloss import mathlib
    text = mathlib.source(["fexp", "fsoftplus"])  # their code + every dependency,
                                                   # in emission order, once each
    mathlib.dependencies("fsoftplus")             # ('_ml_jit', ..., 'fexp', '_ml_log1pu')
    mathlib.SOURCES["fexp"]                       # one entry's expanded text
    mathlib.FUNCTIONS                             # public names -> one-line docs

``symloss/mathlib/kernels.py`` is ``source(FUNCTIONS)`` as an importable module
(regenerate with ``python -m symloss.mathlib``; tests check it is current).

How a function is built (see ``library.py``): ``fexp(x, T)`` is a plain
Python stub (numpy fallback, used only outside compiled code) with a
``numba.extending.overload`` that returns ``_ml_fexp_f32`` or ``_ml_fexp_f64``
according to ``T`` at typing time; the implementations are compiled with
``_ML_JIT`` (``error_model="numpy"``, ``fastmath={"contract"}``,
``forceinline=True``).  Callers need nothing else, but to vectorise, the
functions must end up inlined into the loop: a caller's scalar kernel that
is not small needs ``forceinline=True`` too.
"""
from __future__ import annotations

import ast
import re

from . import coefficients as _C
from .library import ENTRIES as _ENTRIES

__all__ = ["FUNCTIONS", "SOURCES", "DEPENDS", "HEADER", "source", "dependencies", "module_text"]

FUNCTIONS: dict[str, str] = {
    "fexp": "e**x",
    "fexpm1": "e**x - 1",
    "flog": "log(x)",
    "flog1p": "log(1 + x)",
    "ftanh": "tanh(x)",
    "fsigmoid": "1/(1 + e**-x)",
    "fsoftplus": "log(1 + e**x)",
    "flogcosh": "log(cosh(x))",
    "fsech2": "1/cosh(x)**2",
}

# The imports the emitted text needs (the generated modules already have them).
HEADER = "import math\n\nimport numba\nimport numba.extending\nimport numpy as np\n"


def _literal(name: str) -> str:
    value = getattr(_C, name)
    if name.endswith("_F32"):
        return f"T({_f32_repr(value)})"
    return repr(float(value))


def _f32_repr(value: float) -> str:
    """Shortest decimal that T() turns back into the same float32."""
    import numpy as np

    short = repr(float(str(np.float32(value))))
    return short if float(np.float32(float(short))) == value else repr(float(value))


def _poly(name: str, var: str) -> str:
    coeffs = getattr(_C, name)
    f32 = name.endswith("_F32")
    lit = [f"T({_f32_repr(c)})" if f32 else repr(float(c)) for c in coeffs]
    expr = lit[-1]
    for c in reversed(lit[:-1]):
        expr = f"{c} + {var} * ({expr})" if expr is not lit[-1] else f"{c} + {var} * {expr}"
    return f"({expr})"


def _estrin(name: str, powers: list[str]) -> str:
    """Estrin's scheme: pairs c_i + c_{i+1} x combined with x^2, x^4, x^8...

    Its dependency chain is log2(n) multiply-adds long instead of Horner's n,
    which is what bounds these loops (many independent elements, long chains).
    ``powers`` names x, x^2, x^4, ... (the template computes them).
    """
    coeffs = getattr(_C, name)
    f32 = name.endswith("_F32")
    lit = [f"T({_f32_repr(c)})" if f32 else repr(float(c)) for c in coeffs]

    def rec(cs: list[str], level: int) -> str:
        if len(cs) == 1:
            return cs[0]
        half = 1 << level
        while half * 2 < len(cs):
            level += 1
            half <<= 1
        if level >= len(powers):
            raise ValueError(f"{name}: needs x^{half}; give more power names")
        lo, hi = rec(cs[:half], 0), rec(cs[half:], 0)
        hi = hi if len(cs) - half == 1 else f"({hi})"
        return f"{lo} + {powers[level]} * {hi}"

    return f"({rec(lit, 0)})"


_PLACEHOLDER = re.compile(r"\{\{(poly|const|estrin) (\w+)((?: \w+)*)\}\}")


def _expand(template: str) -> str:
    def sub(m: re.Match) -> str:
        kind, name, args = m.groups()
        args = args.split()
        if kind == "poly":
            return _poly(name, args[0])
        if kind == "estrin":
            return _estrin(name, args)
        return _literal(name)

    text = _PLACEHOLDER.sub(sub, template).strip("\n") + "\n"
    if "{{" in text:
        raise ValueError(f"unexpanded placeholder in math library source:\n{text}")
    return text


def _defined(text: str) -> set[str]:
    tree = ast.parse(text)
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


_TABLES: tuple | None = None


def _tables():
    """(SOURCES, DEPENDS, order), expanded on first use (so that fit.py can
    run, and write new coefficients, before the templates that need them)."""
    global _TABLES
    if _TABLES is None:
        sources = {name: _expand(t) for name, t in _ENTRIES.items()}
        order = list(sources)
        owner = {d: name for name, text in sources.items() for d in _defined(text)}
        depends = {}
        for name, text in sources.items():
            used = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
            deps = {owner[u] for u in used if u in owner} - {name}
            depends[name] = tuple(sorted(deps, key=order.index))
        _TABLES = (sources, depends, order)
    return _TABLES


def __getattr__(name):  # SOURCES and DEPENDS, lazily
    if name == "SOURCES":
        return _tables()[0]
    if name == "DEPENDS":
        return _tables()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dependencies(name: str) -> tuple[str, ...]:
    """Every entry ``name`` needs (transitively), in emission order, without itself."""
    _, depends, order = _tables()
    seen: set[str] = set()
    stack = [name]
    while stack:
        for d in depends[stack.pop()]:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return tuple(sorted(seen, key=order.index))


def source(names) -> str:
    """The text defining ``names`` and their dependencies, each once, in order.

    Unknown names raise KeyError.  The text assumes ``math``, ``numba``,
    ``numba.extending`` and ``numpy as np`` are imported (see HEADER).
    """
    sources, _, order = _tables()
    wanted: set[str] = set()
    for name in names:
        if name not in sources:
            raise KeyError(f"the math library has no function {name!r}; it has {sorted(FUNCTIONS)}")
        wanted.add(name)
        wanted.update(dependencies(name))
    return "\n\n".join(sources[n] for n in order if n in wanted)


def module_text() -> str:
    """kernels.py: the whole library as one importable module."""
    return (
        '"""The symloss math library as one module: generated by `python -m symloss.mathlib`; do not edit."""\n'
        + HEADER
        + "\n\n"
        + source(FUNCTIONS)
    )
