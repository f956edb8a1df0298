"""Find or build the generated jax module of a loss.

Catalog losses import ``generated/jax/<name>.py`` when it is there (written by
``symloss generate``), else render it; spec files and expressions are
rendered once into symloss's cache folder under the source's own hash.
Importing this module imports neither jax nor SymPy.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

from .. import catalog
from .._paths import cache_dir, generated_dir
from ..render.write import write_atomic
from ..spec import LossSpec, load_spec

_LOCK = threading.RLock()
_BY_PATH: dict[Path, ModuleType] = {}
_BY_NAME: dict[str, tuple[LossSpec, ModuleType]] = {}


def _import(path: Path) -> ModuleType:
    path = path.resolve()
    if path not in _BY_PATH:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        name = f"_symloss_jax_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _BY_PATH[path] = module
    return _BY_PATH[path]


def module_for_spec(spec: LossSpec) -> ModuleType:
    """Render (or reuse) the jax module of any spec."""
    from ..backends.jax.render import render_spec

    source = render_spec(spec)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = cache_dir() / "jax" / f"{spec.name}_{digest}.py"
    with _LOCK:
        if not path.exists():
            write_atomic(path, source)
        return _import(path)


def resolve(name_or_path) -> tuple[LossSpec, ModuleType]:
    """(spec, jax module) of a catalog name or a spec file's path."""
    text = str(name_or_path)
    with _LOCK:
        if text.endswith(".toml") or Path(text).is_file():
            spec = load_spec(text)
            return spec, module_for_spec(spec)
        if text not in _BY_NAME:
            spec = load_spec(catalog.spec_path(text))
            path = generated_dir() / "jax" / f"{text}.py"
            _BY_NAME[text] = (spec, _import(path) if path.is_file() else module_for_spec(spec))
        return _BY_NAME[text]
