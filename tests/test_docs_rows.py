"""Docs for row losses and long formulas: derived properties against known answers, the index showing
them, and long derivatives split into named sub-expressions that fit a line and add up to the original."""
import re
import shutil
from pathlib import Path

import pytest
import sympy as sp

from symloss import catalog
from symloss._paths import specs_dir
from symloss.derive import Derivation
from symloss.docs import row_properties as R
from symloss.docs.properties import NUMERIC, SYMBOLIC
from symloss.docs.render import render_docs
from symloss.docs.split import LIMIT, split, width
from symloss.spec import load_spec

ROWS = [n for n in catalog.names() if load_spec(catalog.spec_path(n)).kind == "row"]


def spec(name):
    return load_spec(catalog.spec_path(name))


# convex by the composition rules (proved, no sampling), and not provable by them
PROVEN_CONVEX = {"cross_entropy", "categorical_cross_entropy", "kl_divergence", "nll", "categorical_hinge"}
NOT_BY_RULES = {"triplet", "dice", "tversky", "focal", "contrastive", "cosine_embedding"}
# smoothness in the predictions, from the expression
SMOOTHNESS = {
    "cross_entropy": "C∞", "categorical_cross_entropy": "C∞", "kl_divergence": "C∞", "nll": "C∞",
    "dice": "C∞", "tversky": "C∞", "focal": "C∞", "poly1_cross_entropy": "C∞",
    "categorical_hinge": "C0", "triplet": "C0", "contrastive": "C0", "cosine_embedding": "C0",
}


@pytest.mark.parametrize("name", [n for n in ROWS if n in PROVEN_CONVEX | NOT_BY_RULES])
def test_composition_rules_prove_exactly_the_convex_ones(name):
    x = R._Expr(spec(name))
    c = R.curvature(x.expr, x)
    if name in PROVEN_CONVEX:
        assert c in (R.CONVEX, R.AFFINE), c
    else:
        assert c not in (R.CONVEX, R.AFFINE, R.CONST), c


def test_curvature_rules_catch_a_concave_loss():
    """-log-sum-exp is concave: the rules must say so, not call it convex."""
    s = spec("cross_entropy")
    x = R._Expr(s)
    lse = next(a for a in sp.preorder_traversal(x.expr) if isinstance(a, sp.log))
    assert R.curvature(lse, x) == R.CONVEX
    assert R.curvature(-lse, x) == R.CONCAVE
    assert R.curvature(lse * (-lse), x) is None


@pytest.mark.parametrize("name", [n for n in ROWS if n in SMOOTHNESS])
def test_smoothness_and_kinks_from_the_expression(name):
    ks = R.kinks(R._Expr(spec(name)))
    expected = SMOOTHNESS[name]
    assert (f"C{min(k.order for k in ks)}" if ks else "C∞") == expected, [k.text for k in ks]
    if name == "contrastive":  # max(margin - d, 0)^2: C1 at d = margin; the norm d: C0 where x1 = x2
        jumps = {k.text: k.what_jumps for k in ks}
        assert jumps == {"where margin - sqrt(sum_k((x1[k] - x2[k])**2)) = 0": "Hessian",
                         "where sum_k((x1[k] - x2[k])**2) = 0": "gradient"}, jumps


# numeric verdicts with the generated row kernels (value, grad, hessian at K = 4)
# (convex, smoothness, growth, bounded gradient, Hessian 0 on a set of positive measure)
KNOWN = {
    "cross_entropy": (True, "C∞", "linear", True, False),
    "dice": (False, "C∞", "bounded", True, False),
    "triplet": (False, "C0", "quadratic", False, True),
    "categorical_hinge": (True, "C0", "linear", True, True),
}


@pytest.mark.parametrize("name", [n for n in KNOWN if n in ROWS])
def test_row_properties_match_the_known_answers(name):
    p = R.row_properties(spec(name))
    got = (p.convex, p.smoothness, p.growth.split()[0], p.bounded_gradient, p.hessian_vanishes)
    assert got == KNOWN[name], p.lines()
    if name in PROVEN_CONVEX:
        assert p.convex_method == SYMBOLIC
    if not p.convex:  # a counterexample, found by sampling
        assert p.convex_method == NUMERIC and ("eigenvalue" in p.convex_detail or "midpoint" in p.convex_detail)
    if name == "categorical_hinge":  # piecewise linear: the Hessian is 0 on every sampled row
        assert "100%" in p.hessian_detail


def _catalog(tmp_path: Path, names) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for n in names:
        shutil.copy(specs_dir() / f"{n}.toml", folder / f"{n}.toml")
    return folder


def _index_row(md: str, name: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| [`{name}`]"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_index_shows_decided_properties_for_row_losses(tmp_path):
    names = [n for n in ("cross_entropy", "dice", "triplet") if n in ROWS]
    files = render_docs(_catalog(tmp_path, names))
    md = files["index.md"]
    for name in names:
        cells = _index_row(md, name)[3:]  # convex, smoothness, growth, bounded gradient, Hessian 0
        assert "—" not in cells, cells
        convex, smooth, growth, bounded, hzero = KNOWN[name]
        assert cells == ["yes" if convex else "no", smooth, growth, "yes" if bounded else "no",
                         "yes" if hzero else "no"], cells
    assert "shown with formulas only" not in md
    html = files["index.html"]
    assert '<td class="yes">yes</td><td>C∞</td><td>linear</td>' in html  # cross_entropy
    page = files["losses/cross_entropy.md"]
    assert "| Convex in the vector z | yes |" in page and "symbolic" in page
    assert "Derived properties" in files["losses/triplet.html"] and "<math" in files["losses/triplet.html"]


def test_long_derivative_is_split_into_named_parts_that_fit_and_add_up():
    if "focal_binary" not in catalog.names():
        pytest.skip("no focal_binary in the catalog")
    d = Derivation(spec("focal_binary"))
    h = d.stable.hessian[(0, 0)]
    assert width(h) > 3 * LIMIT  # three screen-wide lines before
    main, parts = split(h)
    assert len(parts) >= 3
    assert width(main) <= LIMIT and all(width(e) <= LIMIT for _, e in parts)
    assert [s.name for s, _ in parts] == [f"t{k}" for k in range(len(parts))]
    # each part uses only names defined before it; substituting back gives the Hessian
    for k, (_, e) in enumerate(parts):
        assert {s.name for s in e.free_symbols if s.name.startswith("t")} <= {f"t{i}" for i in range(k)}
    back = main
    for s, e in reversed(parts):
        back = back.xreplace({s: e})
    assert not any(s.name.startswith("t") for s in back.free_symbols)
    assert back == h  # the same expression tree, not merely the same values
    short = d.stable.grads[0] * 0 + sp.Symbol("z") ** 2
    assert split(short) == (short, [])


def test_long_formulas_render_with_where_lines(tmp_path):
    names = [n for n in ("focal_binary", "mse", "cosine_embedding") if n in catalog.names()]
    files = render_docs(_catalog(tmp_path, names), analyse=False)
    if "focal_binary" in names:
        md = files["losses/focal_binary.md"]
        formulas = md.split("## Formulas", 1)[1].split("## Inputs", 1)[0]
        assert "\nwhere\n" in formulas and "$$\nt_{0} = " in formulas
        blocks = re.findall(r"\$\$\n(.*?)\n\$\$", formulas, re.S)
        assert max(len(b) for b in blocks) > LIMIT  # the loss itself: its cases stack on three lines
        for block in blocks:
            lines = block.split(" = ", 1)[1].split("\\\\")  # a case per line
            assert max(len(ln) for ln in lines) <= LIMIT + 40, block  # + "\begin{cases}", "& \text{for}"
        html = files["losses/focal_binary.html"]
        assert html.count('<div class="where">') >= 2 and "<msub><mi>t</mi><mi>0</mi></msub>" in html
    if "mse" in names:  # short formulas stay as they were
        assert "where" not in files["losses/mse.md"].split("## Formulas", 1)[1].split("## Inputs", 1)[0]
    if "cosine_embedding" in names:
        assert "\nwhere\n" in files["losses/cosine_embedding.md"]


def test_row_formula_names_never_capture_the_summation_index():
    """A name for z_k inside sum_k would lose the k it depends on: only whole reductions get named."""
    from symloss.derive.row import RowDerivation
    from symloss.docs.render import _row_gradients
    from symloss.docs.split import _free_index

    if "cosine_embedding" not in ROWS:
        pytest.skip("no cosine_embedding in the catalog")
    s = spec("cosine_embedding")
    k = s.row.symbols["index"]
    g = _row_gradients(RowDerivation(s))["x1"]
    main, parts = split(g, index=k)
    assert parts and width(main) <= LIMIT
    assert not any(_free_index(e, k) for _, e in parts)
    assert not _free_index(g, k)  # the check itself: k is bound in the gradient
    assert _free_index(sp.Indexed(sp.IndexedBase("z"), k), k)
