"""Read and validate spec files (TOML) and in-memory spec tables."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import sympy as sp

from .. import limits
from ..errors import SpecError
from .expr_parser import DERIVATIVE_FUNCTIONS, parse_expression
from .fields import _TOP_KEYS, _identifier, _inputs, _params
from .model import KINDS, LossSpec, Param

def load_spec(path: str | Path) -> LossSpec:
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > limits.MAX_SPEC_BYTES:
            raise SpecError(source, "<file>", f"{size} bytes is too large ({limits.how_to_raise('MAX_SPEC_BYTES')})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, "<file>", f"cannot read: {exc.strerror}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "<file>", f"invalid TOML: {exc}") from None
    spec = spec_from_table(table, source=source)
    if spec.name != path.stem:
        raise SpecError(source, "name", f"'{spec.name}' must match the file name '{path.stem}'")
    return spec


# Names the generated modules put beside the spec's own names, in the functions that take them
# (templates/cpu, cuda, torch, jax, keras; tests/test_spec_names.py reads them off the rendered
# catalog): an input or parameter named like one would shadow it or repeat an argument, and the
# module would not compile or would compute something else.  (Their other locals start with "_",
# which spec names cannot.)
_GENERATED = {"w", "loss", "norm", "partials", "keep", "weighted", "cuda", "config",
              "value", "grad", "value_and_grad", "hessian", "grad_hessian", "param_grad",
              "block_sum", "weight_sum", "ordered_sum", "finish_sum", "finish_reciprocal", "fdiv",
              "quotient0",  # the row calculus' primitive
              # the CUDA row modules' reductions (rendered at run time)
              "total_sum", "warp_sum", "warp_max", "block_max", "sim_reduce", "index_weight_sum",
              # the torch and jax modules: autograd context, need flags, kept results, frameworks
              "ctx", "need", "kept", "preds", "params", "d", "torch", "jax", "jnp", "ops"}
_GENERATED_PREFIXES = ("d_", "g_", "h_", "p_", "dp_", "m_", "has_")
# the row modules' step functions: value_s0, hvp_s3, ...
_STEP = re.compile(r"(value|grad|value_and_grad|hessian|hessian_diag|grad_hessian|grad_hessian_diag|hvp)_s[0-9]+")
# the builtins the generated functions call beside the spec's names
_BUILTINS = frozenset({"abs", "all", "any", "bool", "dict", "enumerate", "float", "getattr", "hasattr", "int",
                       "isinstance", "len", "list", "max", "min", "range", "staticmethod", "str", "sum", "tuple",
                       "zip", "RuntimeError", "TypeError", "ValueError"})


def _not_generated(name: str, source: str, field: str) -> None:
    from ..derive.primitives import BY_NAME
    from ..mathlib import FUNCTIONS as LIBRARY

    if name in _BUILTINS:
        raise SpecError(source, field, f"'{name}' is a Python builtin the generated code uses; choose another name")
    if (name in _GENERATED or name in BY_NAME or name in LIBRARY or name.startswith(_GENERATED_PREFIXES)
            or name.endswith(("_", "_scalar")) or _STEP.fullmatch(name) or name.isupper()):
        raise SpecError(source, field, f"'{name}' is a name the generated kernels use; choose another name")


def _symbol(name: str, param: Param | None = None) -> sp.Symbol:
    if param is not None and param.positive:
        return sp.Symbol(name, positive=True)
    if param is not None and param.nonnegative:
        return sp.Symbol(name, nonnegative=True)
    return sp.Symbol(name, real=True)


def spec_from_table(table: dict, *, source: str) -> LossSpec:
    """Validate a parsed TOML table (or an equivalent dict) into a LossSpec.

    Parsing runs under the wall-clock guard of :func:`symloss.limits.time_limit`
    (the other limits keep it far below; the guard is the last line)."""
    if not isinstance(table, dict):
        raise SpecError(source, "<file>", "expected a table")
    with limits.time_limit("parsing", lambda problem: SpecError(source, "<file>", problem)):
        return _spec_from_table(table, source)


def _check_sizes(table: dict, source: str) -> None:
    """Text lengths and table sizes, before any parsing."""
    for key in ("name", "title", "description", "loss"):
        limits.check_text(table.get(key), source, key)
    refs = table.get("references")
    if isinstance(refs, list):
        for k, ref in enumerate(refs):
            limits.check_text(ref, source, f"references[{k}]")
    for key in ("let", "derivatives"):
        if isinstance(table.get(key), dict):
            for name, text in table[key].items():
                limits.check_text(text, source, f"{key}.{name}")
    limits.check_count(table.get("let"), "MAX_LETS", source, "let")
    limits.check_count(table.get("inputs"), "MAX_INPUTS", source, "inputs")
    limits.check_count(table.get("params"), "MAX_PARAMS", source, "params")


def _check_param_powers(exprs: dict[str, sp.Basic], params: tuple[Param, ...], symbols: dict, source: str) -> None:
    """Powers whose exponent is made of parameters, at the parameters' defaults
    (the docs substitute them exactly): 10**p with p = 1e10 is refused here."""
    defaults = {symbols[p.name]: p.default for p in params}
    for field, expr in exprs.items():
        problem = limits.param_power(expr, defaults)
        if problem:
            name, what = problem
            raise SpecError(source, f"params.{name}.default", f"{what} in field '{field}'")


def _spec_from_table(table: dict, source: str) -> LossSpec:
    _check_sizes(table, source)
    unknown = set(table) - _TOP_KEYS
    if unknown:
        raise SpecError(source, sorted(unknown)[0], "unknown field")
    for required in ("name", "inputs", "loss"):
        if required not in table:
            raise SpecError(source, required, "missing required field")
    name = _identifier(table["name"], source, "name")
    title = table.get("title", name)
    kind = table.get("kind", "elementwise")
    if kind not in KINDS:
        raise SpecError(source, "kind", f"must be one of {KINDS}, got {kind!r}")
    for text_field in ("title", "description"):
        if not isinstance(table.get(text_field, ""), str):
            raise SpecError(source, text_field, "expected a string")
    refs = table.get("references", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise SpecError(source, "references", "expected a list of strings")

    inputs = _inputs(table["inputs"], source, kind)
    params = _params(table.get("params", {}), source)
    names = [i.name for i in inputs] + [p.name for p in params]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SpecError(source, "params", f"name(s) {sorted(dupes)} declared twice")
    for i in inputs:
        _not_generated(i.name, source, f"inputs.{i.name}")
    for p in params:
        _not_generated(p.name, source, f"params.{p.name}")
    if kind == "row":
        for p in params:
            if p.differentiable:
                raise SpecError(source, f"params.{p.name}.differentiable", "only elementwise losses differentiate in a parameter")
        if "derivatives" in table:
            raise SpecError(source, "derivatives", "only elementwise losses differentiate in a parameter")
        from .row_parser import parse_row

        loss, symbols, row = parse_row(table, inputs, params, source=source, symbol=_symbol, identifier=_identifier)
        _check_param_powers({"loss": loss}, params, symbols, source)
        return LossSpec(
            name=name, title=title, kind=kind, inputs=inputs, params=params, loss_text=table["loss"], loss=loss,
            symbols=symbols, description=table.get("description", "").strip(), references=tuple(refs),
            source=source, row=row,
        )
    if "row" in table:
        raise SpecError(source, "row", "only kind = \"row\" specs have a [row] table")

    scope: dict[str, sp.Basic] = {i.name: _symbol(i.name) for i in inputs}
    scope.update({p.name: _symbol(p.name, p) for p in params})
    symbols = dict(scope)

    lets = table.get("let", {})
    if not isinstance(lets, dict):
        raise SpecError(source, "let", "expected a table of name = expression")
    for let_name, let_text in lets.items():
        field = f"let.{let_name}"
        _identifier(let_name, source, field)
        if let_name in scope:
            raise SpecError(source, field, f"'{let_name}' is already declared")
        scope[let_name] = parse_expression(let_text, scope, source=source, field=field)

    loss_text = table["loss"]
    loss = parse_expression(loss_text, scope, source=source, field="loss")
    used = loss.free_symbols
    if not any(symbols[i.name] in used for i in inputs if i.differentiable):
        raise SpecError(source, "loss", "the loss does not depend on any prediction input")
    derivatives = _param_derivatives(table.get("derivatives", {}), params, scope, source)
    _check_param_powers({"loss": loss, **{f"derivatives.{k}": v for k, v in derivatives.items()}},
                        params, symbols, source)
    return LossSpec(
        name=name,
        title=title,
        kind=kind,
        inputs=inputs,
        params=params,
        loss_text=loss_text,
        loss=loss,
        symbols=symbols,
        description=table.get("description", "").strip(),
        references=tuple(refs),
        source=source,
        param_derivatives=derivatives,
    )


def _param_derivatives(raw: Any, params: tuple[Param, ...], scope: dict, source: str) -> dict[str, sp.Basic]:
    """``[derivatives]``: param = a stable closed form of d loss / d param."""
    if not isinstance(raw, dict):
        raise SpecError(source, "derivatives", "expected a table of parameter = expression")
    by_name = {p.name: p for p in params}
    out = {}
    for name, text in raw.items():
        field = f"derivatives.{name}"
        if name not in by_name:
            raise SpecError(source, field, f"'{name}' is not a declared parameter")
        if not by_name[name].differentiable:
            raise SpecError(source, field, f"parameter '{name}' is not declared differentiable = true")
        out[name] = parse_expression(text, scope, source=source, field=field, functions=DERIVATIVE_FUNCTIONS)
    return out
