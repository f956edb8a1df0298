"""Backend registry: a backend name -> the function rendering a spec's module for it.

Backends live in their own folders (``symloss/backends/<name>/``) with their
printer, template model and primitive implementations.  ``require`` is the
generate-time check that every primitive an expression uses has an
implementation in a backend: a missing one is a loud error naming both,
never fallback code.  ``symloss generate`` (symloss/generate.py) writes every
registered backend's module for each spec, in the backend's output folder.

A backend's render module has ``render_derivation(d) -> str | None``: the
module for a Derivation or RowDerivation, or None for a loss kind it does not
emit (the CUDA backend's row kernels are built on demand at run time).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from ..errors import DerivationError

# name -> (module path of the backend's render entry point, attribute, output folder, primitives table)
_REGISTRY: dict[str, tuple[str, str, str, str]] = {
    "numba_cpu": ("symloss.backends.numba_cpu.render", "render_derivation", "", "symloss.backends.numba_cpu.primitives"),
    "numba_cuda": ("symloss.backends.numba_cuda.render", "render_derivation", "cuda",
                   "symloss.backends.numba_cuda.primitives"),
    "torch": ("symloss.backends.torch.render", "render_derivation", "torch", "symloss.backends.torch.primitives"),
    "jax": ("symloss.backends.jax.render", "render_derivation", "jax", "symloss.backends.jax.primitives"),
    "keras": ("symloss.backends.keras.render", "render_derivation", "keras", "symloss.backends.keras.primitives"),
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def renderer(name: str) -> Callable:
    """The backend's ``render_derivation(d) -> str | None``; importing it imports no framework."""
    if name not in _REGISTRY:
        raise DerivationError(f"unknown backend {name!r}; backends: {', '.join(names())}")
    module, attribute, _, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), attribute)


def folder(name: str) -> str:
    return _REGISTRY[name][2]


def implemented(name: str) -> set[str]:
    """Names of the primitives the backend implements."""
    return set(importlib.import_module(_REGISTRY[name][3]).SOURCES)


def primitives_in(exprs: Iterable) -> set[str]:
    import sympy as sp  # the runtime imports backends' glue without SymPy

    from ..derive.primitives import Primitive

    out: set[str] = set()
    for e in exprs:
        out |= {type(f).__name__ for f in sp.preorder_traversal(e) if isinstance(f, Primitive)}
    return out


def require(name: str, exprs: Iterable, what: str = "") -> None:
    """Raise naming the backend and the primitive if ``exprs`` use one it lacks."""
    lacking = sorted(primitives_in(exprs) - implemented(name))
    if lacking:
        raise DerivationError(f"the {name} backend has no implementation of the primitive(s) "
                              f"{', '.join(lacking)}{f' (needed by {what})' if what else ''}")
