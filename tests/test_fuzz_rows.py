"""Property-based fuzzing of row losses: random per-class terms (the spec grammar of
tests/fuzz_strategies.py over ``yhat[k]``, ``y[k]`` and a parameter) inside the row forms
users write: sums over the classes, log-sum-exp, maxima, norms, products of sums.

Every case is either refused with a SpecError or DerivationError, or it derives and every
registered backend renders it (CPU Numba, torch, jax; CUDA Numba, rendered at run time) to Python that
parses, and its LaTeX is written; nothing else may be raised and nothing may hang (the
render limits apply).  The
kernels of rendered row losses are checked numerically by tests/test_row_kernels.py (the
catalog and the from_expr table); compiling each fuzzed module here would cost minutes.
Derandomized, no example database: CI sees the same expressions every run.
"""
from __future__ import annotations

import re

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from fuzz_strategies import expression, param_decl
from symloss.backends.numba_cuda.render_row import render_row_module as render_cuda_row
from symloss.derive.row import RowDerivation
from symloss.errors import DerivationError, SpecError
from symloss.generate import render_spec_files
from symloss.spec import spec_from_table

EXAMPLES = 150
FUZZ = dict(deadline=None, database=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck))
FORMS = [
    "Sum({a}, k)",
    "log(Sum(exp({a}), k)) - Sum(y[k] * yhat[k], k)",
    "Max({a}, k) + Sum({b}, k)",
    "sqrt(Sum(({a})**2, k))",
    "Sum({a}, k) / K",
    "Sum({a}, k) * Sum({b}, k)",
    "log(1 + Sum(exp({a}), k))",
    "(Sum({a}, k))**2 + Sum(y[k] * {b}, k)",
]
COUNT = {"rendered": 0, "refused": 0}


@st.composite
def row_cases(draw) -> dict:
    inputs = {"y": {"role": "target", "domain": draw(st.sampled_from(["simplex", "real", "unit_closed", "positive"]))},
              "yhat": {"role": "prediction", "domain": draw(st.sampled_from(["real", "real", "positive"]))}}
    params = {"pa": draw(param_decl())} if draw(st.booleans()) else {}
    names = ["yhat[k]", "y[k]", *params]
    a, b = draw(expression(names, 2, leaf=False)), draw(expression(names, 2, leaf=False))
    expr = draw(st.sampled_from(FORMS)).format(a=a, b=b)
    if not re.search(r"\byhat\[k\]", expr):
        expr += " + Sum(yhat[k]**2, k)"
    return {"name": "fuzz_row", "kind": "row", "inputs": inputs, "params": params, "loss": expr}


@settings(max_examples=EXAMPLES, **FUZZ)
@given(row_cases())
@example({"name": "fuzz_row", "kind": "row",  # a term weighed by a parameter alone: a Piecewise whose
          "inputs": {"y": {"role": "target", "domain": "positive"}, "yhat": "prediction"},  # pair was hoisted
          "params": {"pa": {"default": 0.25, "min": 0.0, "max": 1.0}},
          "loss": "Sum(((pa + y[k]))**4, k) * Sum(((yhat[k] * pa))**4, k)"})
def test_row_expressions_render_everywhere_or_are_refused(table):
    try:
        spec = spec_from_table(table, source="<fuzz>")
        files = render_spec_files(spec)
    except (SpecError, DerivationError):
        COUNT["refused"] += 1
        return
    COUNT["rendered"] += 1
    d = RowDerivation(spec)
    try:  # rendered at run time, on a GPU's first call; argmax steps are refused there, clearly
        files["cuda/fuzz_row.py"] = render_cuda_row(d)
    except DerivationError as e:
        assert "argmax" in str(e)
    assert {"fuzz_row.py", "torch/fuzz_row.py", "jax/fuzz_row.py"} <= set(files)
    for path, source in files.items():
        compile(source, f"<fuzz>/{path}", "exec")
    assert all(isinstance(v, str) and v for v in d.latex.values())  # the docs' formulas


def test_the_row_fuzz_renders_most_cases():
    """The strategy is not vacuous: most drawn losses derive and render (refusals are the
    grammar's domain errors and non-differentiable forms)."""
    if COUNT["rendered"] + COUNT["refused"] == 0:
        test_row_expressions_render_everywhere_or_are_refused()
    assert COUNT["rendered"] >= COUNT["refused"], COUNT
