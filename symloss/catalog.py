"""The built-in catalog: finding specs by name and their generated modules."""
from __future__ import annotations

from pathlib import Path

from ._paths import generated_dir, specs_dir
from .errors import SymlossError


def spec_paths(directory: Path | list[Path] | None = None) -> list[Path]:
    """The spec files of a folder (default: the built-in catalog), or a given list of them, sorted."""
    if isinstance(directory, (list, tuple)):
        return sorted((Path(p) for p in directory), key=lambda p: (p.stem, str(p)))
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


def is_builtin_dir(directory: Path) -> bool:
    return Path(directory).resolve() == specs_dir().resolve()


def resolve(item: str, user_specs: Path | None = None) -> Path:
    """A loss named on the command line: a spec file's path, a name in the user's
    spec folder, or a built-in name (in that order)."""
    path = Path(item)
    if item.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise SymlossError(f"spec file not found: {item}")
        return path
    if user_specs is not None and (Path(user_specs) / f"{item}.toml").is_file():
        return Path(user_specs) / f"{item}.toml"
    where = f" in {user_specs} or" if user_specs is not None else ""
    if not (specs_dir() / f"{item}.toml").is_file():
        raise SymlossError(f"unknown loss '{item}': no {item}.toml{where} among the built-in losses ({', '.join(names())})")
    return spec_path(item)


def check_shadowing(paths: list[Path], allow: bool = False) -> None:
    """A user's spec may not take a built-in loss's name unless asked (``--shadow``).

    A byte-identical copy of the built-in spec (the checkout's specs/ beside an
    installed package, or a vendored copy) is the same loss, not a shadow.
    """
    if allow:
        return
    builtin = set(names())
    clashes = [p for p in paths if p.stem in builtin and not is_builtin_dir(p.parent) and not _same_as_builtin(p)]
    if clashes:
        listed = ", ".join(str(p) for p in clashes)
        raise SymlossError(f"{listed}: a built-in loss has this name; rename the spec, "
                           "or pass --shadow to use yours in its place")


def _same_as_builtin(path: Path) -> bool:
    try:
        return Path(path).read_bytes() == spec_path(Path(path).stem).read_bytes()
    except OSError:
        return False
