"""specs -> generated/: the `symloss generate` job, over every registered backend.

Each spec is parsed and derived once; every backend renders its module from
that derivation (symloss/backends/__init__.py lists them and their output
folders).  Everything is rendered in memory first: any error aborts before a
byte is written, and ``write_tree`` then replaces files atomically.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from . import backends
from .catalog import spec_paths
from .limits import generating
from .render.write import write_tree


def render_spec_files(spec, names: Sequence[str] | None = None) -> dict[str, str]:
    """relative path -> source, for one spec and each backend (default: all registered)."""
    from .derive import derive

    d = derive(spec)
    files = {}
    with generating(spec.source):
        for name in names or backends.names():
            source = backends.renderer(name)(d)
            if source is not None:
                folder = backends.folder(name)
                files[f"{folder}/{spec.name}.py" if folder else f"{spec.name}.py"] = source
    return files


def render_catalog(specs: Path | Sequence[Path], progress: Callable[[str], None] = lambda s: None,
                   names: Sequence[str] | None = None) -> dict[str, str]:
    """Render every spec of a folder (or the given spec files) in memory."""
    from .spec import load_spec

    files: dict[str, str] = {}
    paths = spec_paths(specs)
    for k, path in enumerate(paths, 1):
        progress(f"[{k}/{len(paths)}] {path.stem}")
        files.update(render_spec_files(load_spec(path), names))
    return files


def generate(specs: Path | Sequence[Path], out_dir: Path, progress: Callable[[str], None] = lambda s: None,
             names: Sequence[str] | None = None) -> list[str]:
    """Write the modules; a whole folder also removes modules of specs that are gone,
    a list of spec files (or a subset of backends) leaves the rest of ``out_dir`` alone."""
    files = render_catalog(specs, progress, names)
    whole = not isinstance(specs, (list, tuple)) and not names
    return write_tree(out_dir, files, prune=whole)
