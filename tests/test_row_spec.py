"""Row specs: class-index expressions parsed without eval, every malformation named."""
import pytest
import sympy as sp

from symloss.errors import SpecError
from symloss.spec import spec_from_table
from symloss.spec.rowexpr import RowMax, RowSum, free_class_terms


def row_table(**over):
    t = {
        "name": "t",
        "kind": "row",
        "inputs": {"y": {"role": "target", "domain": "simplex", "indices": True}, "z": "prediction",
                   "cw": {"role": "target", "shape": "class", "default": 1.0},
                   "s": {"role": "target", "shape": "scalar"}},
        "params": {"eps": {"default": 0.1, "min": 0.0}},
        "loss": "log(Sum(exp(z[k]), k)) - Sum(y[k] * z[k], k)",
    }
    t.update(over)
    return t


def test_sums_max_subscripts_and_class_count():
    spec = spec_from_table(row_table(loss="s * Sum(cw[k] * (y[k] + eps / K) * z[k], k) + Max(z[k], k) - Min(z[k], k)"),
                           source="f")
    sums = spec.loss.atoms(RowSum)
    maxes = spec.loss.atoms(RowMax)
    assert len(sums) == 1 and len(maxes) == 2
    assert not free_class_terms(spec.loss)
    assert spec.row.index == "k" and spec.row.size == "K"
    assert [i.shape for i in spec.inputs] == ["vector", "vector", "class", "scalar"]
    assert spec.inputs[0].indices and spec.inputs[2].default == 1.0
    assert "\\sum_{k}" in sp.latex(spec.loss) and "\\max_{k}" in sp.latex(spec.loss)


def test_per_class_and_per_row_lets():
    spec = spec_from_table(row_table(let={"p": "exp(z[k]) / Sum(exp(z[k]), k)", "mass": "Sum(y[k], k)"},
                                     loss="-Sum(y[k] * log(p[k]), k) / mass"), source="f")
    k, z = spec.row.symbols["index"], spec.row.symbols["bases"]["z"]
    softmax_sum = RowSum(sp.exp(z[k]), k)
    outer = [r for r in spec.loss.atoms(RowSum) if r != softmax_sum and r.has(softmax_sum)]
    assert outer  # the softmax's sum sits inside the outer sum's summand
    with pytest.raises(SpecError, match="one value per class"):
        spec_from_table(row_table(let={"p": "exp(z[k])"}, loss="Sum(p, k)"), source="f")


def test_custom_index_and_size_names():
    spec = spec_from_table(row_table(row={"index": "c", "size": "C"}, loss="Sum(z[c] / C, c)"), source="f")
    assert spec.row.index == "c" and spec.row.size == "C"


@pytest.mark.parametrize(
    "loss, needle",
    [
        ("z[k]", "outside a reduction"),
        ("Sum(z, k)", "one value per class"),
        ("Sum(z[j], k)", "subscript with the index 'k' only"),
        ("Sum(z[0], k)", "subscript with the index 'k' only"),
        ("Sum(q[k], k)", "'q' is not a vector input"),
        ("Sum(s[k], k)", "'s' is not a vector input"),
        ("Sum(z[k])", "takes (expression, k)"),
        ("Sum(z[k], j)", "takes (expression, k)"),
        ("k * Sum(z[k], k)", "can only subscript"),
        ("Sum(z[k], k) + z[k]", "outside a reduction"),
        ("Sum(z[k].real, k)", "Attribute"),
        ("Sum(z[k][k], k)", "only a declared vector"),
        ("Sum(__import__('os')[k], k)", "only a declared vector"),
        ("Sum(exp(x=z[k]), k)", "keyword"),
        ("Sum(z[k], k=1)", "keyword"),
        ("Sum(y[k], k)", "does not depend on any prediction"),
    ],
)
def test_rejects_everything_outside_the_row_whitelist(loss, needle):
    with pytest.raises(SpecError) as err:
        spec_from_table(row_table(loss=loss), source="my.toml")
    assert str(err.value).startswith("my.toml: field 'loss'") and needle in str(err.value)


@pytest.mark.parametrize(
    "over, field, needle",
    [
        ({"inputs": {"z": {"role": "prediction", "shape": "matrix"}}}, "inputs.z.shape", "must be one of"),
        ({"inputs": {"z": "prediction", "y": {"role": "target", "indices": "yes"}}}, "inputs.y.indices", "true or false"),
        ({"inputs": {"z": {"role": "prediction", "indices": True}}}, "inputs.z.indices", "vector target"),
        ({"inputs": {"z": "prediction", "s": {"role": "prediction", "shape": "scalar"}}}, "inputs.s.role", "target"),
        ({"inputs": {"z": "prediction", "cw": {"role": "target", "shape": "class"}}}, "inputs.cw", "default"),
        ({"inputs": {"z": "prediction", "y": {"role": "target", "default": 1.0}}}, "inputs.y.default", "class inputs"),
        ({"inputs": {"z": "prediction", "s": {"role": "target", "shape": "scalar", "domain": "simplex"}}},
         "inputs.s.domain", "vector"),
        ({"row": {"index": "z"}}, "row.index", "already declared"),
        ({"row": {"index": "k", "size": "k"}}, "row.size", "different names"),
        ({"row": {"colour": 1}}, "row", "unknown key"),
        ({"row": {"mean_weight": "z"}}, "row.mean_weight", "not a class input"),
        ({"let": {"z": "1"}}, "let.z", "already declared"),
        ({"inputs": {"y": {"role": "target", "indices": True}, "z": "prediction",
                     "u": {"role": "target", "indices": True}}}, "inputs.u.indices", "only one"),
    ],
)
def test_bad_row_tables_name_the_field(over, field, needle):
    with pytest.raises(SpecError) as err:
        spec_from_table(row_table(**over), source="f.toml")
    assert err.value.field == field and needle in err.value.problem


def test_elementwise_specs_keep_their_rules():
    base = {"name": "e", "inputs": {"y": "target", "yhat": "prediction"}, "loss": "(yhat - y)**2"}
    with pytest.raises(SpecError, match="Subscript"):
        spec_from_table(dict(base, loss="yhat[k]"), source="f")
    with pytest.raises(SpecError, match="unknown function 'Sum'"):
        spec_from_table(dict(base, loss="Sum(yhat, k)"), source="f")
    with pytest.raises(SpecError, match="only kind = \"row\""):
        spec_from_table(dict(base, row={"index": "k"}), source="f")
    with pytest.raises(SpecError, match="unknown key"):
        spec_from_table(dict(base, inputs={"y": {"role": "target", "shape": "vector"}, "yhat": "prediction"}),
                        source="f")
    with pytest.raises(SpecError, match="simplex"):
        spec_from_table(dict(base, inputs={"y": {"role": "target", "domain": "simplex"}, "yhat": "prediction"}),
                        source="f")
    spec = spec_from_table(base, source="f")
    assert spec.row is None and spec.inputs[0].shape == "element"
