"""A built-in spec's header, read without SymPy.

Calling a generated catalog kernel needs the spec's names, roles, domains and
parameter constraints, not its expression.  ``SpecHeader`` reads those from
the TOML file with the loader's own validators; anything else (``loss``,
``symbols``, ...) parses the full spec on first use, so code that derives
from it sees a complete :class:`~symloss.spec.model.LossSpec`.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from ..errors import SpecError
from .fields import _identifier, _inputs, _params
from .model import KINDS, LossSpec, Roles, RowInfo


class SpecHeader(Roles):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.source = str(path)
        try:
            table = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(self.source, "<file>", f"cannot read: {exc}") from None
        self.name = _identifier(table.get("name"), self.source, "name")
        self.kind = table.get("kind", "elementwise")
        if self.kind not in KINDS:
            raise SpecError(self.source, "kind", f"must be one of {KINDS}, got {self.kind!r}")
        self.title = table.get("title", self.name)
        self.description = table.get("description", "").strip()
        self.references = tuple(table.get("references", ()))
        self.inputs = _inputs(table.get("inputs"), self.source, self.kind)
        self.params = _params(table.get("params", {}), self.source)
        row = table.get("row", {})
        self.row = RowInfo(**{k: row[k] for k in ("index", "size", "mean_weight") if k in row},
                           symbols=_FullRowSymbols(self)) if self.kind == "row" else None

    @cached_property
    def full(self) -> LossSpec:
        from .load import load_spec

        return load_spec(self.path)

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr in ("full", "path"):  # no parse for protocol probes
            raise AttributeError(attr)
        return getattr(self.full, attr)

    def __repr__(self) -> str:
        return f"<SpecHeader {self.name} from {self.source}>"


class _FullRowSymbols(Mapping):
    """The row's SymPy objects (index, size, bases), from the full spec when first asked."""

    def __init__(self, header: SpecHeader):
        self._header = header

    def _symbols(self) -> Mapping:
        return self._header.full.row.symbols

    def __getitem__(self, key):
        return self._symbols()[key]

    def __iter__(self):
        return iter(self._symbols())

    def __len__(self) -> int:
        return len(self._symbols())


def full_spec(spec: LossSpec | SpecHeader) -> LossSpec:
    """The parsed LossSpec behind a header (or the spec itself)."""
    return spec.full if isinstance(spec, SpecHeader) else spec
