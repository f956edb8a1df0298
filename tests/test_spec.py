"""Spec files are data: parsed without eval, every malformation named."""
import sympy as sp
import pytest

from symloss.errors import SpecError
from symloss.spec import load_spec, spec_from_table
from symloss.spec.expr_parser import parse_expression

NAMES = {"y": sp.Symbol("y", real=True), "yhat": sp.Symbol("yhat", real=True)}


def table(**over):
    t = {"name": "t", "inputs": {"y": "target", "yhat": "prediction"}, "loss": "(yhat - y)**2"}
    t.update(over)
    return t


def test_parses_arithmetic_functions_and_piecewise():
    e = parse_expression("Piecewise((abs(yhat - y)**2/2, yhat > y and y > 0), (log(1 + exp(-y)), True))", NAMES,
                         source="s", field="loss")
    y, yhat = NAMES["y"], NAMES["yhat"]
    assert e.subs({y: 1, yhat: 3}) == 2
    assert sp.simplify(e.subs({y: -1, yhat: -3}) - sp.log(1 + sp.E)) == 0


@pytest.mark.parametrize(
    "text, needle",
    [
        ("__import__('os').system('true')", "plain function names"),
        ("__import__('os')", "unknown function '__import__'"),
        ("eval('1')", "unknown function 'eval'"),
        ("yhat.__class__", "Attribute"),
        ("(lambda: 1)()", "plain function names"),
        ("y[0]", "Subscript"),
        ("'abc'", "unsupported constant"),
        ("exp(x=y)", "keyword"),
        ("foo(y)", "unknown function 'foo'"),
        ("z + y", "unknown name 'z'"),
        ("y < yhat", "only appear inside Piecewise"),
        ("Piecewise((y, y > 0))", "default branch"),
        ("Piecewise((y, y < yhat < 1), (0, True))", "one comparison"),
        ("y +", "syntax error"),
        ("", "non-empty"),
        ("1/0 + y", "undefined"),
        ("True", "unsupported constant"),
    ],
)
def test_rejects_anything_outside_the_whitelist(text, needle):
    with pytest.raises(SpecError) as err:
        parse_expression(text, NAMES, source="my.toml", field="loss")
    msg = str(err.value)
    assert msg.startswith("my.toml: field 'loss'") and needle in msg


def test_error_names_the_offending_token():
    with pytest.raises(SpecError, match="at 'foo'"):
        parse_expression("y + foo(yhat)", NAMES, source="s", field="loss")


@pytest.mark.parametrize(
    "over, field, needle",
    [
        ({"name": "1bad"}, "name", "identifier"),
        ({"name": "T"}, "name", "reserved"),
        ({"kind": "weird"}, "kind", "must be one of"),
        ({"inputs": {"y": "target"}}, "inputs", "prediction"),
        ({"inputs": {"y": "output", "yhat": "prediction"}}, "inputs.y", "role"),
        ({"inputs": {"y": {"role": "target", "domain": "blue"}, "yhat": "prediction"}}, "inputs.y", "domain"),
        ({"params": {"delta": {"positive": True}}}, "params.delta", "default"),
        ({"params": {"delta": {"default": -1.0, "positive": True}}}, "params.delta.default", "> 0"),
        ({"params": {"delta": {"default": "one"}}}, "params.delta.default", "number"),
        ({"params": {"delta": {"default": 1.0, "colour": 1}}}, "params.delta", "unknown key"),
        ({"params": {"y": 1.0}}, "params", "declared twice"),
        ({"loss": "y**2"}, "loss", "does not depend on any prediction"),
        ({"extra": 1}, "extra", "unknown field"),
        ({"references": "x"}, "references", "list of strings"),
        ({"let": {"r": "yhat - q"}}, "let.r", "unknown name 'q'"),
    ],
)
def test_bad_tables_name_the_field(over, field, needle):
    with pytest.raises(SpecError) as err:
        spec_from_table(table(**over), source="f.toml")
    assert err.value.field == field and needle in err.value.problem


def test_missing_required_field():
    t = table()
    del t["loss"]
    with pytest.raises(SpecError, match="'loss': missing required field"):
        spec_from_table(t, source="f.toml")


def test_load_spec_file_errors(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = 'broken'\nloss = \n")
    with pytest.raises(SpecError, match=r"broken.toml: field '<file>': invalid TOML"):
        load_spec(bad)
    other = tmp_path / "other.toml"
    other.write_text('name = "different"\nloss = "yhat"\n[inputs]\nyhat = "prediction"\n')
    with pytest.raises(SpecError, match="must match the file name"):
        load_spec(other)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_let_definitions_and_params_become_symbols():
    spec = spec_from_table(
        table(params={"delta": {"default": 2.0, "positive": True}}, let={"r": "yhat - y"}, loss="delta*r**2"),
        source="f",
    )
    assert spec.symbols["delta"].is_positive
    assert spec.loss == spec.symbols["delta"] * (spec.symbols["yhat"] - spec.symbols["y"]) ** 2
    assert [p.name for p in spec.params] == ["delta"] and spec.params[0].default == 2.0
