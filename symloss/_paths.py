"""Where the templates, the built-in specs, the generated catalog and the cache live.

In a source checkout (editable install, or running from the repository) the
first three are the top-level folders beside ``symloss/``; an installed wheel
carries them inside the package as ``symloss/_data/`` (see pyproject.toml),
which may be read-only (a container image): symloss never writes there.

Everything symloss writes at run time (modules for ``Loss.from_expr`` and
spec paths, and Numba's cache of read-only catalog modules, in ``numba/``)
goes to one per-user cache folder: ``$SYMLOSS_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/symloss``, else ``~/.cache/symloss``.
"""
from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import threading
import warnings
from pathlib import Path

from .errors import SymlossError

_PACKAGE = Path(__file__).resolve().parent


class CacheDirError(SymlossError):
    """The cache folder symloss was told to use cannot be used safely."""


def data_root() -> Path:
    installed = _PACKAGE / "_data"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent


def templates_dir() -> Path:
    return data_root() / "templates"


def specs_dir() -> Path:
    return data_root() / "specs"


def generated_dir() -> Path:
    return data_root() / "generated"


def configured_cache_dir() -> Path:
    """The cache folder the environment asks for (nothing is created or checked)."""
    env = os.environ.get("SYMLOSS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry (some containers)
            raise CacheDirError("no home directory to hold ~/.cache/symloss") from None
    return Path(base) / "symloss"


# configured folder -> the folder in use (itself, or a private fallback)
_READY: dict[Path | None, Path] = {}  # None: no home directory
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The cache folder, created (mode 0700) and checked on first use in this process.

    Checked: it is a directory we can write to, owned by us (or root) and not
    writable by others (anyone who can write there could plant a Numba cache
    pickle, which runs on load).  An explicit ``SYMLOSS_CACHE_DIR`` that fails
    is an error; the default folder failing (e.g. a read-only or missing home)
    falls back to a private temporary folder for this process, with a warning.
    """
    with _LOCK:
        try:
            configured = configured_cache_dir()
        except CacheDirError as exc:
            configured, problem = None, exc
        ready = _READY.get(configured)
        if ready is None:
            try:
                if configured is None:
                    raise problem
                _prepare(configured)
                ready = configured
            except (OSError, CacheDirError) as exc:
                if os.environ.get("SYMLOSS_CACHE_DIR"):
                    raise CacheDirError(
                        f"SYMLOSS_CACHE_DIR={configured} cannot be used: {exc}; "
                        "point it at a folder you own and can write"
                    ) from None
                ready = _private_fallback()
                warnings.warn(
                    f"symloss: cache folder {configured} cannot be used ({exc}); using {ready} for "
                    "this process (kernels are recompiled in each process). Set SYMLOSS_CACHE_DIR "
                    "to a writable folder to keep them.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            _READY[configured] = ready
    return ready


def cache_dirs_in_use() -> tuple[Path, ...]:
    """The configured cache folder and any folder actually used in this process (no side effects)."""
    with _LOCK:
        try:
            configured = (configured_cache_dir(),)
        except CacheDirError:
            configured = ()
        return (*configured, *_READY.values())


def _prepare(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirError(f"{path} is not a directory")
    if hasattr(os, "geteuid"):  # POSIX ownership and mode checks
        if st.st_uid not in (os.geteuid(), 0):
            raise CacheDirError(f"{path} belongs to another user (uid {st.st_uid})")
        if st.st_mode & stat.S_IWOTH:
            raise CacheDirError(f"{path} is writable by every user")
    tempfile.TemporaryFile(dir=path).close()  # writable? (the mode bits alone do not say, e.g. read-only mounts)


def _private_fallback() -> Path:
    try:
        path = Path(tempfile.mkdtemp(prefix="symloss-cache-"))  # mode 0700, ours
    except OSError as exc:
        raise CacheDirError(
            f"no writable cache folder (the default one and the temporary folder both fail: {exc}); "
            "set SYMLOSS_CACHE_DIR to a folder you own and can write"
        ) from None
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
