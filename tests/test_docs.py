"""Docs: derived properties against known answers, the rendered catalog up to date and deterministic,
HTML with real MathML, the `docs`/`show` commands, and a headless-browser screenshot when one exists."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symloss import catalog
from symloss._paths import generated_dir, specs_dir
from symloss.docs.properties import ALL_PARAMS, NUMERIC, SYMBOLIC, properties
from symloss.docs.render import HEADER_MARK, render_docs, write_docs
from symloss.spec import load_spec

DOCS = generated_dir() / "docs"
ROOT = Path(__file__).resolve().parent.parent

# The textbook answers, at the default parameters:
# (convex, smoothness, growth for large errors, bounded gradient, Hessian 0 on a set of positive measure)
KNOWN = {
    "mse": (True, "C∞", "quadratic", False, False),
    "mae": (True, "C0", "linear", True, True),
    "huber": (True, "C1", "linear", True, True),
    "smooth_l1": (True, "C1", "linear", True, True),
    "pseudo_huber": (True, "C∞", "linear", True, False),
    "log_cosh": (True, "C∞", "linear", True, False),
    "fair": (True, "C2", "linear", True, False),
    "quantile": (True, "C0", "linear", True, True),
    "cauchy": (False, "C∞", "logarithmic", True, False),
    "general_robust": (True, "C∞", "linear", True, False),  # alpha = 1: pseudo-Huber
    "tukey": (False, "C2", "bounded", True, True),
    "hinge": (True, "C0", "linear", True, True),
    "squared_hinge": (True, "C1", "quadratic", False, True),
    "soft_margin": (True, "C∞", "linear", True, False),
    "exponential": (True, "C∞", "exponential", False, False),
    "bce": (True, "C∞", "logarithmic", False, False),
    "bce_logits": (True, "C∞", "linear", True, False),
    "focal_binary": (False, "C∞", "linear", True, False),
    "poisson_nll": (True, "C∞", "exponential", False, False),
    "gamma_nll": (True, "C∞", "exponential", False, False),
    "tweedie": (True, "C∞", "exponential", False, False),
    # jointly in (mu, var): not convex; the clamp max(var, eps) is a kink, below it d2L/dvar2 = 0
    "gaussian_nll": (False, "C0", "quadratic", False, True),
}
# Convexity that SymPy must prove, not merely sample.
PROVEN_CONVEX = {"mse", "mae", "huber", "log_cosh", "quantile", "hinge", "bce", "bce_logits", "fair",
                 "pseudo_huber", "general_robust", "squared_hinge", "soft_margin", "exponential", "poisson_nll"}
PRESENT = [n for n in KNOWN if n in catalog.names()]


def props(name):
    return properties(load_spec(catalog.spec_path(name)))


@pytest.mark.parametrize("name", PRESENT)
def test_derived_properties_match_the_known_answers(name):
    p = props(name)
    convex, smooth, growth, bounded, vanishes = KNOWN[name]
    got = (p.convex, p.smoothness, p.growth.split()[0], p.bounded_gradient, p.hessian_vanishes)
    assert got == (convex, smooth, growth, bounded, vanishes), p.lines()
    if name in PROVEN_CONVEX:
        assert p.convex_method == SYMBOLIC, p.lines()
    if not convex:
        assert p.convex_method == NUMERIC and ("near" in p.convex_detail or "fails" in p.convex_detail)


def test_catalog_has_no_unreviewed_elementwise_loss():
    """A new elementwise spec gets its known answers added above (its properties are still computed)."""
    unknown = [n for n in catalog.names() if n not in KNOWN and load_spec(catalog.spec_path(n)).kind == "elementwise"]
    for name in unknown:
        props(name)  # must not fail
    if unknown:
        pytest.skip(f"no known answers recorded for {unknown}")


def test_kinks_are_located_symbolically():
    if "huber" in PRESENT:
        p = props("huber")
        assert p.smoothness_scope == ALL_PARAMS
        [k] = p.kinks
        assert k.text == "yhat = -delta + y or yhat = delta + y" and k.what_jumps == "Hessian"
        assert [t for _, _, t in p.hessian_zero_where] == ["delta < |y - yhat|"]
    if "mae" in PRESENT:
        [k] = props("mae").kinks
        assert k.text == "yhat = y" and k.what_jumps == "gradient"
    if "tukey" in PRESENT:
        [k] = props("tukey").kinks
        assert k.order == 2 and k.what_jumps == "derivative 3"
    if "mse" in PRESENT:
        assert props("mse").kinks == ()


def test_growth_and_symmetry_by_direction():
    if "quantile" in PRESENT:
        p = props("quantile")
        assert p.residual_based and p.symmetric is False
    if "huber" in PRESENT:
        assert props("huber").symmetric is True
    if "hinge" in PRESENT:
        rates = {g.direction: g.rate for g in props("hinge").growth_by_direction}
        assert rates["yhat → −∞ (y = 1)"] == "linear" and rates["yhat → +∞ (y = 1)"] == "bounded"


def _committed() -> dict[str, bytes]:
    return {p.relative_to(DOCS).as_posix(): p.read_bytes() for p in sorted(DOCS.rglob("*")) if p.is_file()}


def test_docs_are_up_to_date(update_generated):
    """generated/docs/ is byte-identical to a fresh render (`pytest --update-generated` rewrites it)."""
    files = render_docs()
    if update_generated:
        write_docs(DOCS)
    committed = _committed()
    fresh = {rel: (d.encode() if isinstance(d, str) else d) for rel, d in files.items()}
    stale = sorted(rel for rel in fresh if committed.get(rel) != fresh[rel])
    extra = sorted(rel for rel in committed if rel not in fresh)
    assert not stale and not extra, (
        f"generated/docs is out of date: changed {stale}, not produced any more {extra}; "
        "run `symloss docs` (or pytest --update-generated)")


def test_every_generated_file_carries_the_mark():
    for rel, data in _committed().items():
        assert HEADER_MARK in data[:200].decode("utf-8", errors="replace"), rel


def test_html_pages_use_mathml_not_raw_latex():
    pages = sorted(DOCS.glob("losses/*.html"))
    assert pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<math" in html and "</math>" in html, page.name
        text = re.sub(r"<math.*?</math>", "", html, flags=re.S)
        assert not re.search(r"\\(frac|left|right|begin|partial|hat|operatorname|delta)\b", text), page.name
        assert "http://" not in text.replace('xmlns="http://www.w3.org/1998/Math/MathML"', "")
        assert "https://" not in text


def test_markdown_pages_use_display_math_and_link_their_plots():
    md = (DOCS / "losses" / "huber.md").read_text(encoding="utf-8") if "huber" in PRESENT else None
    if md is not None:
        assert "$$\nL = " in md and "![huber" in md and (DOCS / "losses" / "huber.png").is_file()
        assert "| Convex in yhat | yes |" in md
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert all(f"[`{n}`](losses/{n}.md)" in index for n in catalog.names())


def test_guide_and_comparison_pages_come_from_the_properties():
    guide = (DOCS / "guide.md").read_text(encoding="utf-8")
    assert "## Regression" in guide and "## Classification" in guide
    if "tukey" in PRESENT:
        assert "not convex: the result depends on the starting point" in guide
    compare = (DOCS / "compare.md").read_text(encoding="utf-8")
    if {"mse", "mae", "huber"} <= set(PRESENT):
        assert "compare_classic.png" in compare and (DOCS / "compare_classic.png").is_file()
    if {"bce_logits", "hinge"} <= set(PRESENT):
        assert "compare_classification.png" in compare


def _small_catalog(tmp_path: Path, names) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    for n in names:
        shutil.copy(specs_dir() / f"{n}.toml", specs / f"{n}.toml")
    return specs


def test_rerender_removes_pages_of_removed_specs_and_keeps_other_files(tmp_path):
    specs, out = _small_catalog(tmp_path, ["mse", "mae"]), tmp_path / "docs"
    write_docs(out, specs)
    assert {"losses/mae.md", "losses/mae.html", "losses/mae.png"} <= {
        p.relative_to(out).as_posix() for p in out.rglob("*")}
    (out / "notes.md").write_text("# mine\n")
    mtime = (out / "losses" / "mse.png").stat().st_mtime_ns
    (specs / "mae.toml").unlink()
    changed = write_docs(out, specs)
    assert {"losses/mae.md", "losses/mae.html", "losses/mae.png"} <= set(changed)
    assert not (out / "losses" / "mae.png").exists() and (out / "notes.md").exists()
    assert (out / "losses" / "mse.png").stat().st_mtime_ns == mtime


def test_rendering_is_deterministic_across_processes(tmp_path):
    specs = _small_catalog(tmp_path, ["huber", "quantile", "triplet"])  # triplet: row properties, split formulas
    code = ("import hashlib, sys; from pathlib import Path; from symloss.docs.render import render_docs;"
            f"f = render_docs(Path({str(specs)!r}));"
            "print(hashlib.sha256(b''.join(k.encode() + (v.encode() if isinstance(v, str) else v)"
            " for k, v in sorted(f.items()))).hexdigest())")
    digests = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        digests.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert len(digests) == 1


@pytest.mark.parametrize("name", [n for n in ("mse", "huber", "bce", "gaussian_nll") if n in catalog.names()])
def test_usage_snippets_run(name):
    page = (DOCS / "losses" / f"{name}.md").read_text(encoding="utf-8")
    snippet = page.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, f"<{name} usage>", "exec"), namespace)
    assert "value" in namespace and namespace["h"].shape in ((3,), (2, 2, 3))
    assert len(namespace["out"]) == 1 + len(load_spec(catalog.spec_path(name)).predictions)


def test_show_prints_derived_properties():
    out = subprocess.run([sys.executable, "-m", "symloss", "show", "mae"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "properties:" in out.stdout
    assert "convex: yes (symbolic" in out.stdout and "smoothness: C0" in out.stdout
    assert "docs" in subprocess.run([sys.executable, "-m", "symloss", "--help"], capture_output=True,
                                    text=True).stdout


def test_headless_chromium_screenshot(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import screenshot_docs
    finally:
        sys.path.pop(0)
    browser = screenshot_docs.find_browser()
    if browser is None:
        pytest.skip("no Chromium installed")
    shot = screenshot_docs.screenshot(browser, DOCS / "losses" / "huber.html", tmp_path / "huber.png",
                                      height=1600)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert hashlib.sha256(data).hexdigest()  # a real image; look at it with scripts/screenshot_docs.py
