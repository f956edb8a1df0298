"""Where the templates, the built-in specs and the generated catalog live.

In a source checkout (editable install, or running from the repository) they
are the top-level folders beside ``symloss/``; an installed wheel carries them
inside the package as ``symloss/_data/`` (see pyproject.toml).
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


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


def cache_dir() -> Path:
    """Where ``Loss.from_expr`` writes its modules (kept across processes)."""
    env = os.environ.get("SYMLOSS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "symloss"
