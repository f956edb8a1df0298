"""The CPU backend's runtime glue: render a spec's kernel module into the cache, ready to import.

Modules are named by their code's hash, so every process building the same
loss shares one file and Numba's cache beside it (symloss/modules.py).
"""
from __future__ import annotations

from pathlib import Path

from ...modules import cache_source


def cached_module(derivation) -> Path:
    """An elementwise loss's module (a Derivation) in the cache."""
    from ...limits import generating
    from .render import render_module

    with generating(derivation.spec.source):
        source = render_module(derivation)
    return cache_source(derivation.spec.name, source)


def render_row(spec) -> str:
    from ...derive.row import RowDerivation
    from ...limits import generating
    from .render_row import render_row_module

    with generating(spec.source):
        return render_row_module(RowDerivation(spec))


def cached_row_module(spec) -> Path:
    """A row loss's module (a LossSpec of kind "row") in the cache."""
    return cache_source(spec.name, render_row(spec))
