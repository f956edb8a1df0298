"""specs/ -> generated/: the `symloss generate` job."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..catalog import spec_paths
from ..derive import Derivation
from ..spec import load_spec
from ..backends.torch import render as torch_backend
from ..backends.numba_cuda import render as cuda
from ..backends.numba_cpu.render import render_module
from .write import write_tree


def render_catalog(specs_dir: Path, progress: Callable[[str], None] = lambda s: None) -> dict[str, str]:
    """Render every spec in memory (any error aborts before anything is written)."""
    files: dict[str, str] = {}
    paths = spec_paths(specs_dir)
    for k, path in enumerate(paths, 1):
        progress(f"[{k}/{len(paths)}] {path.stem}")
        spec = load_spec(path)
        if spec.kind == "row":  # one loss per row: render/cpu_row.py
            from ..derive.row import RowDerivation
            from ..backends.numba_cpu.render_row import render_row_module

            row = RowDerivation(spec)
            files[f"{spec.name}.py"] = render_row_module(row)
            files[f"torch/{spec.name}.py"] = torch_backend.render_row_module(row)
            continue
        derivation = Derivation(spec)
        files[f"{derivation.spec.name}.py"] = render_module(derivation)
        files[f"torch/{derivation.spec.name}.py"] = torch_backend.render_module(derivation)
        if cuda.supports(derivation.spec):
            files[f"cuda/{derivation.spec.name}.py"] = cuda.render_module(derivation)
    return files


def generate(specs_dir: Path, out_dir: Path, progress: Callable[[str], None] = lambda s: None) -> list[str]:
    files = render_catalog(specs_dir, progress)
    return write_tree(out_dir, files)
