"""The parts of a spec that need no SymPy: names, inputs, parameters.

The spec loader validates with these, and :mod:`symloss.spec.header` reads a
built-in spec's header with them, so loading a generated catalog kernel never
imports SymPy.
"""
from __future__ import annotations

import keyword
import math
from typing import Any

from ..errors import SpecError
from .model import DOMAINS, ROLES, SHAPES, Input, Param

_TOP_KEYS = {"name", "title", "kind", "description", "references", "inputs", "params", "let", "loss", "row", "derivatives"}
_ROW_INPUT_KEYS = {"role", "domain", "shape", "indices", "default"}  # kind = "row" only
_PARAM_KEYS = {"default", "positive", "nonnegative", "min", "max", "description", "differentiable"}
_RESERVED = {"T", "out", "reduction", "sample_weight", "math", "np", "numba", "i", "n", "total", "scale"}


# The expression language's callables and constants (spec/expr_parser.py checks its
# tables against these at import), reserved here without importing SymPy.
FUNCTION_NAMES = frozenset({
    "exp", "log", "log1p", "expm1", "sqrt", "abs", "Abs", "sign", "max", "Max", "min", "Min",
    "tanh", "cosh", "sinh", "sigmoid", "softplus", "xlogy",
})
CONSTANT_NAMES = frozenset({"pi", "E"})


def _identifier(value: Any, source: str, field: str) -> str:
    # ASCII only: Python reads the source NFKC-normalised, so a fullwidth 'ｗ' would become
    # the kernels' own 'w'; lookalike letters would also make names that read alike differ
    if not isinstance(value, str) or not value.isascii() or not value.isidentifier() or keyword.iskeyword(value):
        raise SpecError(source, field, f"{value!r} is not a valid Python identifier (ASCII letters, digits, _)")
    if value in _RESERVED or value in FUNCTION_NAMES or value in CONSTANT_NAMES or value.startswith("_"):
        raise SpecError(source, field, f"'{value}' is reserved; choose another name")
    return value


def _number(value: Any, source: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(source, field, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a TOML integer past float64
        number = math.inf
    if not math.isfinite(number):  # it would be printed into generated code as a bare name
        raise SpecError(source, field, f"expected a finite number, got {value!r}")
    return number


def _inputs(raw: Any, source: str, kind: str = "elementwise") -> tuple[Input, ...]:
    if not isinstance(raw, dict) or not raw:
        raise SpecError(source, "inputs", "expected a table of symbol = role")
    inputs = []
    for name, value in raw.items():
        field = f"inputs.{name}"
        _identifier(name, source, field)
        if isinstance(value, str):
            value = {"role": value}
        if not isinstance(value, dict):
            raise SpecError(source, field, "expected a role string or a table {role, domain}")
        unknown = set(value) - (_ROW_INPUT_KEYS if kind == "row" else {"role", "domain"})
        if unknown:
            raise SpecError(source, field, f"unknown key(s) {sorted(unknown)}")
        role = value.get("role")
        if role not in ROLES:
            raise SpecError(source, field, f"role must be one of {ROLES}, got {role!r}")
        domain = value.get("domain", "real")
        if domain not in DOMAINS:
            raise SpecError(source, field, f"domain must be one of {DOMAINS}, got {domain!r}")
        if kind == "row":
            inputs.append(_row_input(name, role, domain, value, source, field))
            continue
        if domain == "simplex":
            raise SpecError(source, field, "domain 'simplex' is for vector inputs of row losses")
        inputs.append(Input(name, role, domain))
    if not any(i.differentiable for i in inputs):
        raise SpecError(source, "inputs", "at least one input must have role 'prediction'")
    return tuple(inputs)


def _row_input(name: str, role: str, domain: str, value: dict, source: str, field: str) -> Input:
    shape = value.get("shape", "vector")
    if shape not in SHAPES:
        raise SpecError(source, f"{field}.shape", f"must be one of {SHAPES}, got {shape!r}")
    indices = value.get("indices", False)
    if not isinstance(indices, bool):
        raise SpecError(source, f"{field}.indices", "expected true or false")
    if indices and (shape != "vector" or role != "target"):
        raise SpecError(source, f"{field}.indices", "only a vector target can be given as class indices")
    if domain == "simplex" and shape != "vector":
        raise SpecError(source, f"{field}.domain", "'simplex' is for vector inputs")
    if shape != "vector" and role != "target":
        raise SpecError(source, f"{field}.role", f"a {shape} input must be a target (gradients are per class)")
    default = None
    if shape == "class":
        if "default" not in value:
            raise SpecError(source, field, "a class input needs a 'default' (its value when omitted)")
        default = _number(value["default"], source, f"{field}.default")
    elif "default" in value:
        raise SpecError(source, f"{field}.default", "only class inputs have a default")
    return Input(name, role, domain, shape=shape, indices=indices, default=default)


def _params(raw: Any, source: str) -> tuple[Param, ...]:
    if not isinstance(raw, dict):
        raise SpecError(source, "params", "expected a table of name = {default = ...}")
    params = []
    for name, value in raw.items():
        field = f"params.{name}"
        _identifier(name, source, field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {"default": value}
        if not isinstance(value, dict) or "default" not in value:
            raise SpecError(source, field, "expected a table with a 'default'")
        unknown = set(value) - _PARAM_KEYS
        if unknown:
            raise SpecError(source, field, f"unknown key(s) {sorted(unknown)}")
        for flag in ("positive", "nonnegative", "differentiable"):
            if not isinstance(value.get(flag, False), bool):
                raise SpecError(source, f"{field}.{flag}", "expected true or false")
        param = Param(
            name,
            _number(value["default"], source, f"{field}.default"),
            positive=value.get("positive", False),
            nonnegative=value.get("nonnegative", False),
            min=_number(value["min"], source, f"{field}.min") if "min" in value else None,
            max=_number(value["max"], source, f"{field}.max") if "max" in value else None,
            differentiable=value.get("differentiable", False),
        )
        problem = param.violation(param.default)
        if problem:
            raise SpecError(source, f"{field}.default", f"default {problem}")
        params.append(param)
    return tuple(params)
