"""Import generated kernel modules by file path, and build modules for ad-hoc specs."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .._paths import cache_dir
from ..derive import Derivation
from ..render.cpu import render_module
from ..render.write import write_atomic

_LOADED: dict[Path, ModuleType] = {}


def import_path(path: Path) -> ModuleType:
    path = Path(path).resolve()
    if path in _LOADED:
        return _LOADED[path]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"_symloss_kernels_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # numba's cache looks the module up by name
    spec.loader.exec_module(module)
    _LOADED[path] = module
    return module


def cache_source(name: str, source: str) -> Path:
    """Write generated ``source`` into the cache folder, named by the code's own hash.

    The same expression gives the same file name in every process, so Numba's
    cache beside it is reused across runs.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}_{digest}.py"
    if not path.exists():
        write_atomic(path, source)
    return path


def cached_module(derivation: Derivation) -> Path:
    return cache_source(derivation.spec.name, render_module(derivation))
