"""Import generated kernel modules by file path, and build modules for ad-hoc specs.

Modules for ``Loss.from_expr`` and spec paths live in the cache folder
(``symloss._paths.cache_dir``), named ``<loss>_<digest>.py`` where the digest
is the first 16 hex digits of the SHA-256 of the file's bytes.  The bytes are
checked against that digest (and against the code symloss would write) before
they run: a truncated, edited or symlinked cache file is rebuilt, or removed
and reported, never imported.  The checked bytes are what is executed, so the
file cannot change between check and import.

Numba caches compiled kernels beside a module (``__pycache__``).  Where that
folder is not writable (a read-only install of the catalog), symloss points
Numba at ``<cache folder>/numba`` while the module's kernels are declared,
unless ``NUMBA_CACHE_DIR`` is set, which then wins.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType

from ._paths import cache_dir, cache_dirs_in_use
from .errors import SymlossError
from .render.write import read_regular, real_dirs, write_atomic

_LOADED: dict[Path, ModuleType] = {}
_WRITABLE: dict[Path, bool] = {}
_LOCK = threading.RLock()  # one import at a time: numba's CACHE_DIR is process-wide while we set it
_DIGEST = re.compile(r"_([0-9a-f]{16})\.py$")


class CacheFileError(SymlossError):
    """A cache file did not match its digest (it has been removed; loading again rebuilds it)."""


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def import_path(path: Path) -> ModuleType:
    """Import the kernel module at ``path`` (once per process), verifying cache files first."""
    path = Path(path)
    path = path.parent.resolve() / path.name  # the file itself is not resolved: a link is not silently trusted
    with _LOCK:
        if path not in _LOADED:
            _LOADED[path] = _execute(path, _checked_bytes(path))
        return _LOADED[path]


def cache_source(name: str, source: str, subdir: str | None = None) -> Path:
    """Write generated ``source`` into the cache folder, named by the code's own hash.

    The same code gives the same file name in every process, so Numba's cache
    beside it is reused across runs.  A file already there is kept only if its
    bytes are exactly ``source``; otherwise (truncated, edited, a planted link)
    it and Numba's entries for it are discarded and the file is rewritten.
    """
    raw = source.encode("utf-8")
    root = cache_dir()
    path = (root / subdir if subdir else root) / f"{name}_{digest_of(raw)}.py"
    if read_regular(path) == raw:
        return path
    if os.path.lexists(path):  # present but wrong (a concurrent writer's file is complete: it is renamed in)
        _purge_compiled(path)
        warnings.warn(f"symloss: cache file {path} was truncated or modified; rebuilt it", RuntimeWarning, stacklevel=2)
    write_atomic(path, raw, root=root)
    return path


# --- internals -----------------------------------------------------------------------------------
def _is_cache_file(path: Path) -> bool:
    if not _DIGEST.search(path.name):
        return False
    return any(path.is_relative_to(root.resolve()) for root in cache_dirs_in_use())


def _checked_bytes(path: Path) -> bytes:
    if not _is_cache_file(path):
        return path.read_bytes()  # an installed or user-given module
    raw = read_regular(path)
    if raw is None or digest_of(raw) != _DIGEST.search(path.name).group(1):
        with contextlib.suppress(OSError):
            path.unlink()
        _purge_compiled(path)
        raise CacheFileError(
            f"{path}: cache file was truncated, modified or replaced by a link (its SHA-256 does not match "
            "its name); removed it, load the loss again to rebuild it"
        )
    return raw


def _execute(path: Path, raw: bytes) -> ModuleType:
    tag = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"_symloss_kernels_{path.stem}_{tag}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    code = compile(raw, str(path), "exec", dont_inherit=True)  # numba finds the file (its cache) by this name
    sys.modules[mod_name] = module  # numba's cache looks the module up by name
    try:
        with _numba_cache_for(path.parent):
            exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


@contextlib.contextmanager
def _numba_cache_for(folder: Path):
    """Numba's cache for kernels declared now: beside the module if writable, else our cache folder."""
    from numba.core import config

    if config.CACHE_DIR or _pycache_writable(folder):  # the user's NUMBA_CACHE_DIR, or numba's default
        yield
        return
    root = cache_dir()
    target = root / "numba"
    real_dirs(root, target)
    previous, config.CACHE_DIR = config.CACHE_DIR, str(target)  # read as each cache=True function is decorated
    try:
        yield
    finally:
        config.CACHE_DIR = previous


def _pycache_writable(folder: Path) -> bool:
    """What numba's in-tree cache locator will find: can ``folder/__pycache__`` be created and written?"""
    if folder not in _WRITABLE:
        try:
            pycache = folder / "__pycache__"
            pycache.mkdir(exist_ok=True)
            tempfile.TemporaryFile(dir=pycache).close()
            _WRITABLE[folder] = True
        except OSError:
            _WRITABLE[folder] = False
    return _WRITABLE[folder]


def _purge_compiled(path: Path) -> None:
    """Drop Numba's (and Python's) cache entries of ``path`` ("<stem>.<function>-<line>.py311.nbi" ...).

    Recent Numba (0.68) stamps entries with the source's SHA-256, so entries built from
    a tampered file cannot match the rebuilt one; older Numba stamps them with mtime and
    size, which a rewrite could collide with.  Removing them settles both.
    """
    pycache = path.parent / "__pycache__"
    for entry in pycache.glob(f"{path.stem}.*") if pycache.is_dir() else ():
        with contextlib.suppress(OSError):
            entry.unlink()
