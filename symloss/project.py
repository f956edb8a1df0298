"""A user's project: ``[tool.symloss]`` in the nearest pyproject.toml.

::

    [tool.symloss]
    specs = "losses"          # the project's spec folder
    out = "src/pkg/kernels"   # where `symloss generate` writes kernel modules
    docs = "docs/losses"      # where `symloss docs` writes pages

Paths are relative to the pyproject.toml that holds them.  Without such a
table the commands act on the built-in catalog, as before.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SymlossError

_KEYS = ("specs", "out", "docs")


@dataclass(frozen=True)
class Project:
    root: Path | None = None  # folder of the pyproject.toml, None without [tool.symloss]
    specs: Path | None = None
    out: Path | None = None
    docs: Path | None = None


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_project(start: Path | None = None) -> Project:
    """The ``[tool.symloss]`` settings of the nearest pyproject.toml above ``start`` (default: cwd)."""
    pyproject = find_pyproject(Path(start or Path.cwd()).resolve())
    if pyproject is None:
        return Project()
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("symloss")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SymlossError(f"{pyproject}: not valid TOML: {exc}") from None
    if table is None:
        return Project()
    if not isinstance(table, dict):
        raise SymlossError(f"{pyproject}: [tool.symloss] must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise SymlossError(f"{pyproject}: [tool.symloss]: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    root = pyproject.parent
    paths = {}
    for key in _KEYS:
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise SymlossError(f"{pyproject}: [tool.symloss]: '{key}' must be a non-empty path string")
        paths[key] = root / value
    return Project(root=root, **paths)
