"""Row specs: expressions with a class index, still parsed without eval.

A row loss is one number per row of (N, K) arrays.  Its expression may use

* ``z[k]``: class ``k`` of a vector input (or of a ``class`` input, or of a
  per-class ``let``), only inside a reduction over ``k``;
* ``Sum(expr, k)``, ``Max(expr, k)``, ``Min(expr, k)``: reductions over the
  classes (the second argument is the declared index; ``Max(a, b)`` with any
  other second argument is the ordinary two-argument maximum);
* scalar (per-row) inputs, parameters and ``K``, the number of classes, anywhere.

The whitelist of :mod:`.expr_parser` is extended by exactly these forms: a
subscript must be a declared vector name indexed by the declared index.
"""
from __future__ import annotations

import ast
from collections.abc import Mapping

import sympy as sp

from ..errors import SpecError
from .expr_parser import _Walker, parse_expression
from .model import Input, Param, RowInfo
from .rowexpr import RowMax, RowSum, free_class_terms

_ROW_KEYS = {"index", "size", "mean_weight"}
_REDUCERS = {"Sum": "sum", "Max": "max", "max": "max", "Min": "min", "min": "min"}


class _RowWalker(_Walker):
    def __init__(self, names, source, field, text, *, index: sp.Symbol, bases: Mapping[str, sp.IndexedBase],
                 class_lets: Mapping[str, sp.Basic], free_class: bool):
        super().__init__(names, source, field, text)
        self.index = index
        self.bases = bases
        self.class_lets = class_lets
        self.free_class = free_class  # may z[k] appear outside a reduction (a per-class let)?
        self.depth = 0

    def _is_index(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == self.index.name

    def expr(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Name):
            k = self.index.name
            if node.id in self.bases or node.id in self.class_lets:
                raise self.fail(node, f"'{node.id}' has one value per class: write {node.id}[{k}] inside Sum(..., {k})")
            if node.id == k:
                raise self.fail(node, f"the index '{k}' can only subscript a vector, as in z[{k}]")
        return super().expr(node)

    def subscript(self, node: ast.Subscript) -> sp.Basic:
        k = self.index.name
        if not isinstance(node.value, ast.Name):
            raise self.fail(node, "only a declared vector input can be subscripted")
        name = node.value.id
        if name not in self.bases and name not in self.class_lets:
            raise self.fail(node, f"'{name}' is not a vector input or per-class let; only those take [{k}]")
        if not self._is_index(node.slice):
            raise self.fail(node, f"subscript with the index '{k}' only, as in {name}[{k}]")
        if self.depth == 0 and not self.free_class:
            raise self.fail(node, f"{name}[{k}] outside a reduction: wrap it in Sum(..., {k}) or Max(..., {k})")
        if name in self.class_lets:
            return self.class_lets[name]
        return self.bases[name][self.index]

    def call(self, node: ast.Call) -> sp.Basic:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        reducer = _REDUCERS.get(name)
        over_index = len(node.args) == 2 and self._is_index(node.args[1])
        if reducer and (over_index or name == "Sum"):
            if node.keywords:
                raise self.fail(node, "keyword arguments are not supported")
            if not over_index:
                raise self.fail(node, f"{name} takes (expression, {self.index.name}): a sum over the class index")
            self.depth += 1
            try:
                body = self.expr(node.args[0])
            finally:
                self.depth -= 1
            if reducer == "sum":
                return RowSum(body, self.index)
            if reducer == "max":
                return RowMax(body, self.index)
            return -RowMax(-body, self.index)
        return super().call(node)


def _parse(text, scope, source, field, **row) -> sp.Basic:
    return parse_expression(text, scope, source=source, field=field,
                            walker=lambda *args: _RowWalker(*args, **row))


def _row_names(raw, source: str, taken: set[str], identifier) -> RowInfo:
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise SpecError(source, "row", "expected a table {index, size, mean_weight}")
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise SpecError(source, "row", f"unknown key(s) {sorted(unknown)}")
    index = identifier(raw.get("index", "k"), source, "row.index")
    size = identifier(raw.get("size", "K"), source, "row.size")
    for field, value in (("row.index", index), ("row.size", size)):
        if value in taken:
            raise SpecError(source, field, f"'{value}' is already declared as an input or parameter")
    if index == size:
        raise SpecError(source, "row.size", "the index and the class count need different names")
    mean_weight = raw.get("mean_weight")
    if mean_weight is not None and not isinstance(mean_weight, str):
        raise SpecError(source, "row.mean_weight", "expected the name of a class input")
    return RowInfo(index=index, size=size, mean_weight=mean_weight)


def parse_row(table: dict, inputs: tuple[Input, ...], params: tuple[Param, ...], *, source: str,
              symbol, identifier) -> tuple[sp.Basic, dict[str, sp.Symbol], RowInfo]:
    """The loss, the symbol table and the RowInfo of a ``kind = "row"`` table.

    ``symbol`` and ``identifier`` are load.py's helpers (assumptions from
    parameter constraints; identifier validation).
    """
    names = {i.name for i in inputs} | {p.name for p in params}
    info = _row_names(table.get("row"), source, names, identifier)
    by_name = {i.name: i for i in inputs}
    indexed = [i.name for i in inputs if i.indices]
    if len(indexed) > 1:
        raise SpecError(source, f"inputs.{indexed[1]}.indices", "only one input can be given as class indices")
    if info.mean_weight is not None and (info.mean_weight not in by_name
                                         or by_name[info.mean_weight].shape != "class"):
        raise SpecError(source, "row.mean_weight", f"'{info.mean_weight}' is not a class input")
    index = sp.Symbol(info.index, integer=True)
    size = sp.Symbol(info.size, positive=True)
    bases = {i.name: sp.IndexedBase(i.name, real=True) for i in inputs if i.shape in ("vector", "class")}

    # the symbol table: the per-class symbol of every input (derive.row uses it
    # for "class j"), per-row inputs, parameters and the class count
    symbols: dict[str, sp.Symbol] = {i.name: sp.Symbol(i.name, real=True) for i in inputs}
    symbols.update({p.name: symbol(p.name, p) for p in params})
    symbols[info.size] = size
    scope: dict[str, sp.Basic] = {i.name: symbols[i.name] for i in inputs if i.shape == "scalar"}
    scope.update({p.name: symbols[p.name] for p in params})
    scope[info.size] = size
    class_lets: dict[str, sp.Basic] = {}

    lets = table.get("let", {})
    if not isinstance(lets, dict):
        raise SpecError(source, "let", "expected a table of name = expression")
    for let_name, let_text in lets.items():
        field = f"let.{let_name}"
        identifier(let_name, source, field)
        if let_name in scope or let_name in bases or let_name in class_lets or let_name in (info.index, info.size):
            raise SpecError(source, field, f"'{let_name}' is already declared")
        value = _parse(let_text, scope, source, field, index=index, bases=bases, class_lets=class_lets,
                       free_class=True)
        if free_class_terms(value):
            class_lets[let_name] = value
        else:
            scope[let_name] = value

    loss = _parse(table["loss"], scope, source, "loss", index=index, bases=bases, class_lets=class_lets,
                  free_class=False)
    used = {e.base.label.name for e in loss.atoms(sp.Indexed)}
    if not any(i.name in used for i in inputs if i.differentiable):
        raise SpecError(source, "loss", "the loss does not depend on any prediction input")
    info = RowInfo(index=info.index, size=info.size, mean_weight=info.mean_weight,
                   symbols={"index": index, "size": size, "bases": bases})
    return loss, symbols, info

