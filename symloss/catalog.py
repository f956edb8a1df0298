"""The built-in catalog: finding specs by name and their generated modules."""
from __future__ import annotations

from pathlib import Path

from ._paths import generated_dir, specs_dir
from .errors import SymlossError


def spec_paths(directory: Path | None = None) -> list[Path]:
    directory = Path(directory) if directory is not None else specs_dir()
    if not directory.is_dir():
        raise SymlossError(f"spec directory not found: {directory}")
    return sorted(directory.glob("*.toml"))


def names() -> list[str]:
    return [p.stem for p in spec_paths()]


def spec_path(name: str) -> Path:
    path = specs_dir() / f"{name}.toml"
    if not path.is_file():
        raise SymlossError(f"unknown loss '{name}'; built-in losses: {', '.join(names())}")
    return path


def module_path(name: str) -> Path:
    return generated_dir() / f"{name}.py"
