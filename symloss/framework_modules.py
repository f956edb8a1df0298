"""Find or build a framework backend's generated module of a loss (torch, jax).

Catalog losses import ``generated/<backend>/<name>.py`` when it is there
(written by ``symloss generate``), else render it.  Spec files and expressions
are rendered into the cache through symloss/modules.py, so they get the same
guarantees as the Numba modules: named by the code's hash, verified before
import, rebuilt when tampered with.  Importing this imports no framework.
"""
from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

from . import catalog
from ._paths import generated_dir
from .modules import cache_source, import_path
from .spec.model import LossSpec


class FrameworkModules:
    """The modules of one backend (its registry name is also its generated/ and cache subfolder)."""

    def __init__(self, backend: str):
        self.backend = backend
        self._lock = threading.RLock()
        self._by_name: dict[str, tuple[LossSpec, ModuleType]] = {}

    def module_for_spec(self, spec: LossSpec) -> ModuleType:
        """Render (or reuse) the backend's module of any spec."""
        from . import backends
        from .generate import render_spec_files

        (source,) = render_spec_files(spec, [self.backend]).values()
        with self._lock:
            return import_path(cache_source(spec.name, source, subdir=backends.folder(self.backend)))

    def resolve(self, name_or_path) -> tuple[LossSpec, ModuleType]:
        """(spec, module) of a catalog name or a spec file's path."""
        from .spec import load_spec

        text = str(name_or_path)
        hit = self._by_name.get(text)  # no lock for a resolved name: torch.compile cannot trace one
        if hit is not None and not text.endswith(".toml"):
            return hit
        with self._lock:
            if text.endswith(".toml") or Path(text).is_file():
                spec = load_spec(text)
                return spec, self.module_for_spec(spec)
            if text not in self._by_name:
                spec = load_spec(catalog.spec_path(text))
                path = generated_dir() / self.backend / f"{text}.py"
                self._by_name[text] = (spec, import_path(path) if path.is_file() else self.module_for_spec(spec))
            return self._by_name[text]
