"""A spec's names and numbers reach generated code only where they cannot change it.

Every backend's generated functions put their own names beside the spec's inputs and
parameters; the spec loader refuses a spec name equal to any of them.  The first test reads
those names off the rendered catalog of every backend, so a template that starts using a new
name fails here until the loader refuses it."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

from symloss import Loss, catalog
from symloss.errors import DerivationError, SpecError
from symloss.spec.fields import _identifier
from symloss.spec.load import _not_generated, load_spec, spec_from_table

GENERATED = Path(__file__).resolve().parent.parent / "generated"
BACKENDS = ("", "cuda", "torch", "jax", "keras")
CSE_TEMPORARY = re.compile(r"t[0-9]+")  # elementwise CSE names, renumbered past any spec name


def _scope_names(fn: ast.FunctionDef) -> set[str]:
    """The names a function binds or reads itself (not inside nested functions)."""
    names = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name):
            names.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _refused(name: str) -> bool:
    try:
        _identifier(name, "s", "f")
        _not_generated(name, "s", "f")
    except SpecError:
        return True
    return False


def _sources(name: str, spec) -> dict[str, str]:
    """The catalog's generated modules of every backend, and the CUDA row module (rendered at run time)."""
    out = {sub or "numba": (GENERATED / sub / f"{name}.py").read_text()
           for sub in BACKENDS if (GENERATED / sub / f"{name}.py").exists()}
    if spec.kind == "row":
        from symloss.backends.numba_cuda.render_row import render_row_module, supports
        from symloss.derive.row import RowDerivation

        d = RowDerivation(spec)
        if supports(spec):
            out["cuda row"] = render_row_module(d)
    return out


def test_every_name_beside_a_spec_name_in_generated_code_is_refused_as_a_spec_name():
    unguarded: dict[str, set[str]] = {}
    checked = 0
    for name in catalog.names():
        spec = load_spec(catalog.spec_path(name))
        inputs = {i.name for i in spec.inputs}
        own = inputs | {p.name for p in spec.params}
        for backend, source in _sources(name, spec).items():
            for fn in ast.walk(ast.parse(source)):
                if not isinstance(fn, ast.FunctionDef):
                    continue
                args = {a.arg for a in fn.args.args}
                if not (inputs <= args or len(inputs & args) >= 2):  # not a kernel (a helper's own scope)
                    continue
                checked += 1
                for n in _scope_names(fn) - own:
                    if not n.startswith("_") and not CSE_TEMPORARY.fullmatch(n) and not _refused(n):
                        unguarded.setdefault(backend, set()).add(n)
    assert checked > 500  # the walk found the kernels of every backend
    assert not unguarded, f"names the generated code uses that a spec may also use: {unguarded}"


ELEMENTWISE = {"name": "t", "inputs": {"y": "target", "yhat": "prediction"}, "loss": "(yhat - y)**2 / s"}
ROW = {"name": "r", "kind": "row", "inputs": {"y": "target", "z": "prediction"},
       "loss": "log(Sum(exp(z[k]), k)) - Sum(y[k] * z[k], k) / s"}


@pytest.mark.parametrize("name", ["ctx", "need", "kept", "preds", "params", "torch", "jnp", "tuple",
                                  "isinstance", "range", "value_s0", "hvp_s3", "m_yhat", "has_y", "quotient0", "w"])
@pytest.mark.parametrize("table", [ELEMENTWISE, ROW], ids=["elementwise", "row"])
def test_a_parameter_named_like_generated_code_is_refused_for_both_kinds(table, name):
    spec = {**table, "params": {name: {"default": 1.5}}, "loss": table["loss"].replace("/ s", f"/ {name}")}
    with pytest.raises(SpecError, match=rf"params\.{name}'.*(generated|builtin)"):
        spec_from_table(spec, source="<spec>")


@pytest.mark.parametrize("name", ["input", "target", "s", "t", "row", "x_s1", "id", "type"])
def test_ordinary_names_stay_allowed(name):
    # torch's own argument names, short names, a builtin no template uses, a name ending like a step
    for table in (ELEMENTWISE, ROW):
        spec_from_table({**table, "params": {name: {"default": 1.5}}, "loss": table["loss"].replace("/ s", f"/ {name}")},
                        source="<spec>")


@pytest.mark.parametrize("default", [math.nan, math.inf, -math.inf, 10**400])
def test_parameter_defaults_and_bounds_must_be_finite(default):
    with pytest.raises(SpecError, match=r"params\.s\.default'.*finite"):
        spec_from_table({**ELEMENTWISE, "params": {"s": {"default": default}}}, source="<spec>")
    with pytest.raises(SpecError, match=r"params\.s\.max'.*finite"):
        spec_from_table({**ELEMENTWISE, "params": {"s": {"default": 1.0, "max": default}}}, source="<spec>")


@pytest.mark.parametrize("expr, words", [
    ("(yhat - y)**2 * 1e300 * 1e300", "outside the float64 range"),
    ("exp(800.0) * (yhat - y)**2", "outside the float64 range"),
    ("2**2000 * (yhat - y)**2", "outside the float64 range"),
    ("sqrt(-1) * yhat + (yhat - y)**2", "not real-valued"),
    ("log(-2) * yhat + (yhat - y)**2", "not real-valued"),
    ("(-1)**(1/3) * yhat + (yhat - y)**2", "not real-valued"),
])
def test_a_constant_that_is_not_a_real_float64_is_refused_when_parsed(expr, words):
    with pytest.raises(SpecError, match=words):
        Loss.from_expr(expr, name="c")


def test_a_derived_constant_past_float64_is_refused_when_the_kernels_are_built():
    # the loss's constant is fine; its Hessian's is 1e400
    with pytest.raises(DerivationError, match=r"field 'loss'.*h_yhat_yhat.*outside the float64 range"):
        Loss.from_expr("exp(1e200 * yhat) - y * yhat", name="c").value(np.zeros(2), np.zeros(2))


def test_an_integer_past_int64_is_written_as_a_float():
    # Numba cannot type the literal 2**70; T(1.18e21) is what a float kernel computes anyway
    loss = Loss.from_expr("2**70 * (yhat - y)**2", name="c")
    y, yhat = np.zeros(3), np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(loss.value(y, yhat, reduction="none"), 2.0**70 * yhat**2, rtol=1e-15)
    np.testing.assert_allclose(loss.grad(y, yhat), 2.0**71 * yhat / 3, rtol=1e-15)
