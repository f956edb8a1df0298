"""Bounded work (symloss.limits): every input finishes or is refused within seconds,
with an error naming the file, the field and the reason.  Parsing and
derivation only: no kernel is compiled here."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sympy as sp

from symloss import limits
from symloss.catalog import spec_paths
from symloss.derive import Derivation
from symloss.derive.row import RowDerivation
from symloss.errors import DerivationError, SpecError, SymlossError
from symloss.spec import load_spec, spec_from_table
from symloss.spec.expr_parser import ast_depth

SPECS = Path(__file__).resolve().parent.parent / "specs"
BUDGET = 5.0  # seconds any refusal may take


def table(loss: str, **extra) -> dict:
    return {"name": "t", "inputs": {"y": "target", "yhat": "prediction"}, "loss": loss, **extra}


def refused(make, error=SpecError, *words: str) -> Exception:
    """Run ``make()``; it must raise ``error`` within BUDGET seconds, naming every word."""
    start = time.monotonic()
    with pytest.raises(error) as info:
        make()
    took = time.monotonic() - start
    assert took < BUDGET, f"refusal took {took:.1f} s"
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return info.value


def parse(loss: str, **extra):
    return lambda: spec_from_table(table(loss, **extra), source="<expr>")


# -- exact numbers that would explode ------------------------------------------


@pytest.mark.parametrize("loss", [
    "yhat ** 10 ** 10 ** 10",
    "yhat * 2 ** (10 ** 9)",
    "yhat * (1/3) ** 100000",
    "(2 * yhat) ** (10 ** 9)",          # SymPy distributes: 2**(10**9) * yhat**(10**9)
    "(sqrt(2) * yhat) ** (10 ** 9)",    # sqrt(2)**(10**9) is 2**(5 * 10**8)
    "yhat * exp(10 ** 10 * log(2))",    # SymPy makes 2**(10**10) of it
    "yhat * " + " * ".join(["10**1000"] * 20),  # each fine, the product 66,000 bits
])
def test_exploding_exact_numbers_are_refused_before_they_are_computed(loss):
    refused(parse(loss), SpecError, "field 'loss'", "bits", "MAX_EXACT_BITS")


def test_the_issue_example_is_refused_by_loss_from_expr():
    from symloss import Loss

    refused(lambda: Loss.from_expr("yhat ** 10 ** 10 ** 10"), SpecError, "<expr>: field 'loss'", "MAX_EXACT_BITS")


def test_exponents_from_lets_and_parameter_defaults_are_refused_where_they_come_from():
    refused(parse("yhat * 10 ** a", let={"a": "10 ** 10"}), SpecError, "field 'loss'", "MAX_EXACT_BITS")
    refused(parse("yhat * a", let={"a": "2 ** (10 ** 9)"}), SpecError, "field 'let.a'", "MAX_EXACT_BITS")
    # the docs substitute a parameter's default exactly: 10**p at p = 1e10 is 10**(10**10)
    refused(parse("yhat * 10 ** p", params={"p": 1e10}), SpecError, "field 'params.p.default'", "MAX_EXACT_BITS")
    refused(parse("yhat * exp(p * log(2))", params={"p": 1e10}), SpecError, "params.p.default")
    # modest ones and symbolic bases parse: yhat**(10**9) stays a power, so does (1 + u)**p
    spec_from_table(table("yhat * 10 ** a + yhat ** (10 ** 9) + (1 + yhat**2) ** (p / 2) + 2**p",
                          let={"a": "300"}, params={"p": 100.0}), source="<expr>")


# -- text, literals, nesting -----------------------------------------------------


def test_a_10000_deep_expression_is_a_spec_error_not_a_recursion_error(monkeypatch):
    deep = "(" * 10_000 + "yhat" + ")" * 10_000
    refused(parse(deep), SpecError, "field 'loss'", "MAX_TEXT_LENGTH")  # over the text limit first
    monkeypatch.setattr(limits, "MAX_TEXT_LENGTH", 10**6)
    refused(parse(deep), SpecError, "field 'loss'", "nested 10000 deep", "MAX_DEPTH")
    # nesting without brackets: Python's own parser overflows (MemoryError) or the walk would
    refused(parse("-" * 10_000 + "yhat"), SpecError, "nested too deeply", "MAX_DEPTH")
    refused(parse("yhat" + " ** yhat" * 150), SpecError, "nested 151 deep", "MAX_DEPTH")
    refused(parse("exp(" * 150 + "yhat" + ")" * 150), SpecError, "MAX_DEPTH")


def test_depth_counts_sum_and_product_chains_once_so_long_sums_parse():
    import ast

    assert ast_depth(ast.parse(" + ".join(["yhat"] * 500), mode="eval").body) == 2
    # levels: - , * /, exp, exp, -, yhat
    assert ast_depth(ast.parse("exp(exp(yhat - y)) * 2 / y - 1", mode="eval").body) == 6
    # 3,000 operands: Python's own AST construction recurses once per operand
    spec = spec_from_table(table("yhat" + " - y" * 2999), source="<expr>")
    assert spec.loss == sp.Symbol("yhat", real=True) - 2999 * sp.Symbol("y", real=True)


def test_long_texts_and_literals_are_refused():
    refused(parse("yhat * 1" + "0" * 200), SpecError, "literal of 201 characters", "MAX_LITERAL_DIGITS")
    refused(parse("yhat * 1." + "0" * 200), SpecError, "MAX_LITERAL_DIGITS")
    refused(parse("yhat" + " + yhat" * 5000), SpecError, "field 'loss'", "characters", "MAX_TEXT_LENGTH")
    refused(parse("yhat", description="x" * 30_000), SpecError, "field 'description'", "MAX_TEXT_LENGTH")
    refused(parse("yhat", let={"a": "y" + " + y" * 6000}), SpecError, "field 'let.a'", "MAX_TEXT_LENGTH")


def test_table_sizes_and_piecewise_branches_are_bounded():
    many = {f"a{k}": "y" for k in range(100)}
    refused(parse("yhat", let=many), SpecError, "field 'let'", "100 entries", "MAX_LETS")
    refused(parse("yhat", params={f"p{k}": 1.0 for k in range(40)}), SpecError, "field 'params'", "MAX_PARAMS")
    inputs = {"yhat": "prediction", **{f"x{k}": "target" for k in range(20)}}
    refused(lambda: spec_from_table({"name": "t", "inputs": inputs, "loss": "yhat"}, source="<expr>"),
            SpecError, "field 'inputs'", "MAX_INPUTS")
    branches = ", ".join(f"(yhat * {k} - y, yhat < {k})" for k in range(400))
    refused(parse(f"Piecewise({branches}, (yhat, True))"), SpecError, "401 branches", "MAX_PIECEWISE_BRANCHES")


def test_lets_cannot_hide_a_huge_or_deep_tree():
    doubling = {"a0": "yhat - y", **{f"a{k}": f"a{k - 1} * a{k - 1} + a{k - 1}" for k in range(1, 20)}}
    refused(parse("a19", let=doubling), SpecError, "nodes", "MAX_NODES")  # 2**20 nodes from 20 short lets
    chain = {"a0": "yhat - y", **{f"a{k}": f"exp(exp(exp(exp(a{k - 1}))))" for k in range(1, 40)}}
    err = refused(parse("a39", let=chain), SpecError, "nested", "MAX_DEPTH")
    assert err.field.startswith("let.a")


def test_spec_file_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\nloss = "yhat"\n' + "# padding\n" * 40_000)
    refused(lambda: load_spec(path), SpecError, "big.toml", "field '<file>'", "MAX_SPEC_BYTES")


# -- derivation ---------------------------------------------------------------------


def nested_exps(n: int) -> str:
    return "exp(" * n + "yhat - y" + ")" * n


def test_sixty_nested_exps_are_refused_before_sympy_builds_their_hessian():
    # the gradient is 2,000 nodes, the Hessian would be 130,000 (minutes of rewrites)
    spec = spec_from_table(table(nested_exps(60)), source="<expr>")
    refused(lambda: Derivation(spec).stable, DerivationError, "<expr>: field 'loss'", "Hessian", "nodes",
            "MAX_NODES")
    refused(lambda: Derivation(spec).naive, DerivationError, "Hessian", "MAX_NODES")


def test_modest_nesting_and_a_60_branch_piecewise_derive_correctly():
    yhat, y = sp.symbols("yhat y", real=True)
    d = Derivation(spec_from_table(table(nested_exps(3)), source="<expr>"))
    point = {yhat: 0.3, y: -0.2}
    u = 0.5
    inner = [u]
    for _ in range(3):
        inner.append(float(sp.exp(inner[-1])))
    assert float(d.stable.grads[0].subs(point)) == pytest.approx(inner[1] * inner[2] * inner[3], rel=1e-12)

    branches = ", ".join(f"(yhat * {k} - y, yhat < {k})" for k in range(60))
    d = Derivation(spec_from_table(table(f"Piecewise({branches}, (-yhat, True))"), source="<expr>"))
    grad = d.stable.grads[0]
    assert float(grad.subs({yhat: 10.5, y: 1.0})) == 11.0  # the first true branch is yhat < 11
    assert float(grad.subs({yhat: 70.0, y: 1.0})) == -1.0


def test_a_long_sum_works_and_a_20000_term_sum_is_refused_cleanly(monkeypatch):
    refused(parse(" + ".join(f"(yhat - y * {k})**2" for k in range(20_000))), SpecError, "MAX_TEXT_LENGTH")
    spec = spec_from_table(table(" + ".join(f"(yhat - {k} * y)**2" for k in range(12))), source="<expr>")
    d = Derivation(spec)
    yhat, y = spec.symbols["yhat"], spec.symbols["y"]
    assert float(d.stable.grads[0].subs({yhat: 2.0, y: 0.5})) == pytest.approx(
        sum(2 * (2.0 - k * 0.5) for k in range(12)))
    assert d.stable.hessian[(0, 0)] == 24
    # within the text limit, 1,000 squares take the rewrites minutes: the clock refuses them
    monkeypatch.setattr(limits, "MAX_SECONDS", 1.0)
    long_sum = " + ".join(f"(yhat - {k}*y)**2" for k in range(900))
    refused(lambda: Derivation(spec_from_table(table(long_sum), source="<expr>")).stable, SymlossError,
            "field '", "longer than 1 s", "MAX_SECONDS")


def test_derived_depth_is_checked(monkeypatch):
    spec = spec_from_table(table(nested_exps(8)), source="<expr>")
    monkeypatch.setattr(limits, "MAX_DEPTH", 8)  # the loss is 9 deep after parsing
    refused(lambda: Derivation(spec).stable, DerivationError, "field 'loss'", "nested", "MAX_DEPTH")


def test_the_wall_clock_guard_stops_a_long_derivation_in_any_thread(monkeypatch):
    # parsed under the default limit: on a loaded CI machine parsing alone can pass 0.5 s
    spec = spec_from_table(table(nested_exps(60)), source="<expr>")
    monkeypatch.setattr(limits, "MAX_NODES", 10**7)  # let the size checks pass: only time can stop it
    monkeypatch.setattr(limits, "MAX_SECONDS", 0.5)
    limit = sys.getrecursionlimit()
    refused(lambda: Derivation(spec).stable, DerivationError, "field 'loss'", "longer than 0.5 s", "MAX_SECONDS")
    assert sys.getrecursionlimit() == limit
    time.sleep(0.5)  # the watchdog is stopped: nothing fires into later code
    assert sum(range(10**6)) > 0

    out = {}

    def work():
        start = time.monotonic()
        try:
            Derivation(spec).stable
        except DerivationError as exc:
            out["error"] = str(exc)
        out["took"] = time.monotonic() - start

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert "longer than 0.5 s" in out.get("error", "")
    assert out["took"] < BUDGET


def test_parsing_is_guarded_too(monkeypatch):
    monkeypatch.setattr(limits, "MAX_SECONDS", 0.05)
    long_sum = " + ".join(f"(yhat - {k}*y)**2" for k in range(900))  # about a second of SymPy
    refused(parse(long_sum), SpecError, "<expr>: field '<file>'", "parsing took longer than 0.05 s", "MAX_SECONDS")


def test_row_losses_have_the_same_bounds(monkeypatch):
    row = {"name": "r", "kind": "row", "inputs": {"y": "target", "z": "prediction"}}
    refused(lambda: spec_from_table({**row, "loss": "Sum(y[k] * z[k] ** 10 ** 10 ** 10, k)"}, source="<row>"),
            SpecError, "<row>: field 'loss'", "MAX_EXACT_BITS")
    refused(lambda: spec_from_table({**row, "loss": "Sum(" + "(" * 150 + "z[k]" + ")" * 150 + ", k)"},
                                    source="<row>"), SpecError, "MAX_DEPTH")
    deep = {**row, "loss": "Sum(y[k] * " + nested_exps(40).replace("yhat - y", "z[k]") + ", k)"}
    spec = spec_from_table(deep, source="<row>")
    refused(lambda: RowDerivation(spec).hessian_diags, DerivationError, "<row>: field 'loss'", "MAX_NODES")


# -- the catalog is far inside every limit ------------------------------------------------


def test_the_catalog_uses_a_small_fraction_of_each_limit():
    import tomllib

    paths = spec_paths(SPECS)
    assert len(paths) >= 30
    for path in paths:
        raw = tomllib.loads(path.read_text())
        assert path.stat().st_size * 20 < limits.MAX_SPEC_BYTES
        texts = [raw["loss"], *raw.get("let", {}).values(), raw.get("description", "")]
        assert max(len(t) for t in texts) * 10 < limits.MAX_TEXT_LENGTH, path.stem
        spec = load_spec(path)
        nodes, depth = limits.measure(spec.loss)
        assert nodes * 100 < limits.MAX_NODES and depth * 5 < limits.MAX_DEPTH, path.stem
        branches = max([len(p.args) for p in spec.loss.atoms(sp.Piecewise)] or [0])
        assert branches * 10 < limits.MAX_PIECEWISE_BRANCHES, path.stem
        assert len(spec.inputs) * 4 < limits.MAX_INPUTS and len(spec.params) * 8 < limits.MAX_PARAMS
    # derived: the two largest elementwise losses and a row loss
    for name in ("focal_binary", "general_robust"):
        d = Derivation(load_spec(SPECS / f"{name}.toml"))
        for e in (*d.stable.grads, *d.stable.hessian.values(), *d.stable.params, *d.naive.hessian.values()):
            nodes, depth = limits.measure(e)
            assert nodes * 10 < limits.MAX_NODES and depth * 5 < limits.MAX_DEPTH, name
        for g in d.stable.grads:  # the estimate that guards each Hessian entry
            assert limits.derivative_nodes(g, d.wrt[0]) * 10 < limits.MAX_NODES, name
    r = RowDerivation(load_spec(SPECS / "focal.toml"))
    for e in (*r.hessian_diags, *r.hvps):
        assert limits.measure(e)[0] * 10 < limits.MAX_NODES


def test_limits_are_read_from_the_environment():
    env = {**os.environ, "SYMLOSS_MAX_NODES": "123", "SYMLOSS_MAX_SECONDS": "2.5"}
    code = "import symloss.limits as L; print(L.MAX_NODES, L.MAX_SECONDS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["123", "2.5"], out.stderr


def test_a_swallowed_interrupt_still_refuses_a_late_stage():
    """The watchdog's interrupt can land where it is only printed (an exception raised in a gc
    callback, which hypothesis installs): a stage that then finishes past its deadline is refused
    all the same."""
    with pytest.raises(DerivationError, match="took longer than 0.05 s"):
        with limits.time_limit("the stage", seconds=0.05):
            end = time.monotonic() + 0.15  # before the watchdog's second try, 0.2 s after its first
            while time.monotonic() < end:
                try:
                    time.sleep(0.005)
                except BaseException:  # noqa: B036 - what a gc callback's caller does with it
                    pass
