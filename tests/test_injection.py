"""Spec text is data everywhere it lands: generated Python (CPU, CUDA, row), Markdown and HTML docs.

A hostile spec puts a payload in every free-text field (title, description,
references, a parameter's description, the source path): docstring and
comment breakers, every character some tool reads as a line break, bidi
controls, HTML, Markdown links, an encoding declaration.  Its outputs must
have exactly the structure of a benign spec's, carry the text as text, and
importing the loss must not run it.
"""
from __future__ import annotations

import ast
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings, strategies as st

from symloss.render import escape
from symloss.render.environment import docs_environment, environment
from symloss.render.escape import LINE_BREAKS, Code, UnmarkedText

CANARY = "pwned.txt"
CODE = "open(__import__('os').path.join(__import__('tempfile').gettempdir(), %r), 'w').write('x')" % CANARY


def payload(tag: str) -> str:
    """Hostile text; ``tag`` makes each field's copy distinguishable."""
    breaks = "".join(f"{c}{CODE}" for c in LINE_BREAKS)
    return (f'Evil {tag} """\nimport os; {CODE}\n"""\'\'\' \\ {breaks}\n# coding: utf-7\n+AAo-{CODE}'
            " \u202e\u2066 \t </script><script>alert(1)</script> <img src=x onerror=alert(1)> &amp; "
            "[link](javascript:alert(1)) ![i](http://x/i.png) <http://x> `<b>code</b>` ``z`` *em* _u_ $x$ "
            "{: onclick=alert(1)} | a | b |\n- item\n1. one\n---\n    indented {{ x }} {% raw %}")


def toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string with ensure_ascii is a TOML basic string


def spec_text(kind: str, evil: bool) -> str:
    t = payload if evil else (lambda tag: f"Plain {tag} text")
    refs = ", ".join(toml_str(t(f"ref{k}")) for k in range(2))
    head = (f"title = {toml_str(t('title'))}\ndescription = {toml_str(t('description'))}\n"
            f"references = [{refs}]\n")
    if kind == "elementwise":
        return (f'name = "NAME"\n{head}loss = "c * (yhat - y)**2"\n[inputs]\ny = "target"\nyhat = "prediction"\n'
                f"[params]\nc = {{ default = 1.5, positive = true, description = {toml_str(t('param'))} }}\n")
    return (f'name = "NAME"\nkind = "row"\n{head}loss = "log(Sum(exp(z[k]), k)) - c * Sum(y[k] * z[k], k)"\n'
            f'[inputs]\ny = "target"\nz = "prediction"\n'
            f"[params]\nc = {{ default = 1.0, description = {toml_str(t('param'))} }}\n")


def write_spec(folder: Path, name: str, kind: str, evil: bool) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(spec_text(kind, evil).replace("NAME", name), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# the serialisers
# ---------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text())
def test_serialisers_round_trip_any_text(text):
    doc = escape.pydoc(text)
    assert ast.literal_eval('"""' + doc + '"""') == text  # the docstring is the text, on one line
    assert len(('"""' + doc + '"""').splitlines()) == 1
    assert ast.literal_eval(escape.pystr(text)) == text
    comment = escape.pycomment(text)
    tree = ast.parse(f"# {comment}\n# {comment}\nx = 1\n")
    assert [type(n) for n in tree.body] == [ast.Assign] and len(comment.splitlines()) <= 1
    assert not re.search(r"coding[:=]", comment)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab _-*`[]()<>&|$#!{}:\\.1\n\u2028") + ["\u202e"])))
def test_md_leaves_no_markup(text):
    out = escape.md(text)
    assert len(out.splitlines()) <= 1 and "\u202e" not in out
    assert not set(_live(out)) & set(MARKUP), (text, out)
    assert not re.match(r"[-+=]|\d+[.)]", out)  # no list, underline or numbered item at a line start


def test_ordinary_text_stays_readable():
    title = "Huber loss (PyTorch's huber_loss), |r| <= delta"
    assert escape.pydoc(title) == title
    assert escape.pycomment("specs/huber.toml") == "specs/huber.toml"
    assert escape.md("MSE near the fit, `weight` weighs classes; log_cosh") == \
        "MSE near the fit, `weight` weighs classes; log_cosh"


def _template_env(source: str, name: str = "cpu/t.py.j2"):
    env = environment()
    env.loader = jinja2.DictLoader({name: source})
    return env.get_template(name)


REFUSED = (UnmarkedText, jinja2.TemplateSyntaxError)


def test_python_templates_refuse_unmarked_text():
    evil = payload("t")
    with pytest.raises(UnmarkedText):
        _template_env('"""{{ t }}"""\n').render(t=evil)
    macro = "{% macro f() %}y = 1{% endmacro %}"
    # at render time (unmarked text) or when the template is compiled (constructs whose
    # result Jinja would mark as trusted after only HTML-escaping the spec text)
    for bypass in ("t|e", "t|safe", "t|string", "t ~ ''", "t|replace('a', 'b')", "[t]", "t|upper",
                   "c|replace('1', t)", "c ~ t", "c + t", "c.center(40, t[4])", "[c, t]|join",
                   "f() + t", "f().replace('1', t)", "f() ~ t", "'%s'|format(t)", "t|indent"):
        with pytest.raises(REFUSED):
            _template_env(macro + "{{ %s }}\n" % bypass).render(t=evil, c=Code("y = 1"))
    for statement in ("{% set x = t %}{{ x }}", "{% autoescape false %}{{ t }}{% endautoescape %}",
                      "{% filter upper %}{{ c }}{% endfilter %}"):
        with pytest.raises(REFUSED):
            _template_env(statement).render(t=evil, c=Code("y = 1"))
    assert _template_env("{{ c|replace('y', 'z_1') }}\n").render(c=Code("y = 1")) == "z_1 = 1\n"
    assert "Code" not in type(Code("a") + "b").__name__  # combining code with text unmarks it
    out = _template_env('"""{{ t|pydoc }} {{ n }} {{ k }}"""\n{{ c }}\n').render(t=evil, n="name_1", k=3,
                                                                            c=Code("y = 1"))
    tree = ast.parse(out)
    assert ast.get_docstring(tree, clean=False) == f"{evil} name_1 3"
    assert [type(n) for n in tree.body] == [ast.Expr, ast.Assign]


def test_every_python_template_is_checked():
    """New backends are checked by default: only the folders in UNCHECKED opt out."""
    from symloss._paths import templates_dir
    from symloss.render import environment as E

    root = templates_dir()
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py.j2"))
    assert {"cpu/module.py.j2", "cpu/row_module.py.j2", "cuda/module.py.j2", "cuda/row_module.py.j2"} <= set(names)
    env = environment()
    for name in names:
        env.get_template(name)  # compiles, which runs check_template on checked ones
        assert E._checked(name) == (not name.startswith(E.UNCHECKED)), name


def test_docs_templates_cannot_opt_out_of_escaping():
    from symloss._paths import templates_dir

    env = docs_environment()
    for path in sorted((templates_dir() / "docs").glob("*.j2")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|Markup", text), path.name
        assert env.autoescape(path.name) == path.name.endswith(".html.j2")


# ---------------------------------------------------------------------------
# generated Python
# ---------------------------------------------------------------------------
def _renders(spec):
    """(label, model, template) for every Python backend of the spec's kind."""
    from symloss.backends.numba_cpu import render as cpu, render_row as cpu_row
    from symloss.backends.numba_cuda import render as cuda, render_row as cuda_row

    from symloss.backends.jax import render as jax
    from symloss.backends.torch import render as torch

    if spec.kind == "row":
        from symloss.derive.row import RowDerivation

        d = RowDerivation(spec)
        return [("cpu_row", cpu_row.module_model(d), cpu_row.TEMPLATE),
                ("cuda_row", cuda_row.module_model(d), cuda_row.TEMPLATE),
                ("torch_row", torch.row_module_model(d), torch.ROW_TEMPLATE),
                ("jax_row", jax.row_module_model(d), jax.ROW_TEMPLATE)]
    from symloss.derive import Derivation

    d = Derivation(spec)
    return [("cpu", cpu.module_model(d), cpu.TEMPLATE), ("cuda", cuda.module_model(d), cuda.TEMPLATE),
            ("torch", torch.module_model(d), torch.TEMPLATE), ("jax", jax.module_model(d), jax.TEMPLATE)]


def _shape(tree: ast.Module):
    """Top-level statements by kind and the names they bind."""
    out = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            out.append((type(n).__name__, n.name, len(n.body)))
        elif isinstance(n, ast.Assign):
            out.append(("Assign", tuple(ast.dump(t) for t in n.targets)))
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.append((type(n).__name__, tuple(a.name for a in n.names)))
        else:
            out.append((type(n).__name__,))
    return out


def _walk_strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _walk_strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk_strings(v)
    elif hasattr(obj, "__dict__") or hasattr(obj, "__dataclass_fields__"):
        for k in getattr(obj, "__dataclass_fields__", None) or vars(obj):
            yield from _walk_strings(getattr(obj, k))


@pytest.mark.parametrize("kind", ["elementwise", "row"])
def test_generated_python_carries_spec_text_as_text(kind, tmp_path):
    from symloss.spec import spec_from_table
    import tomllib

    def spec(evil):
        table = tomllib.loads(spec_text(kind, evil).replace("NAME", "evil"))
        return spec_from_table(table, source=f"<{payload('source')}>" if evil else "<benign>")

    env = environment()
    for (label, bad_model, template), (_, good_model, _) in zip(_renders(spec(True)), _renders(spec(False))):
        # nothing from the spec's free text was marked as code
        assert not [s for s in _walk_strings(bad_model) if isinstance(s, Code) and "Evil" in s], label
        bad = env.get_template(template).render(m=bad_model)
        good = env.get_template(template).render(m=good_model)
        (tmp_path / f"{label}.py").write_text(bad, encoding="utf-8")
        # same lines, no control or line-break characters, same statements
        assert len(bad.splitlines()) == len(good.splitlines()), label
        assert all(c.isprintable() or c == "\n" for c in bad), label
        bad_tree, good_tree = ast.parse(bad), ast.parse(good)
        assert _shape(bad_tree) == _shape(good_tree), label
        # the docstring holds the title verbatim, the header comment the source
        assert ast.get_docstring(bad_tree, clean=False).startswith(payload("title") + " (evil)"), label
        assert bad.splitlines()[0].startswith("# Generated by symloss from <Evil source")


@pytest.mark.parametrize("kind", ["elementwise", "row"])
def test_load_does_not_run_spec_text(kind, tmp_path, monkeypatch):
    import tempfile

    import symloss

    canary = Path(tempfile.gettempdir()) / CANARY
    canary.unlink(missing_ok=True)
    monkeypatch.chdir(tmp_path)
    path = write_spec(tmp_path, f"evil_{kind}", kind, evil=True)
    loss = symloss.load(str(path))  # renders, writes and imports the module
    assert loss.module.__doc__.startswith(payload("title"))
    assert loss.module.NAME == f"evil_{kind}"
    assert not canary.exists()


# ---------------------------------------------------------------------------
# docs
# ---------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add((tag, tuple(sorted(k for k, _ in attrs))))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    p.close()
    return p


MARKUP = "<>`*[]|$#{}"


def _live(text: str) -> str:
    """The characters CommonMark reads as written: not backslash-escaped, not inside a code span."""
    out, k = [], 0
    while k < len(text):
        c = text[k]
        if c == "\\":
            k += 2
            continue
        if c == "`":
            run = len(text[k:]) - len(text[k:].lstrip("`"))
            close = re.compile(r"(?<!`)`{%d}(?!`)" % run).search(text, k + run)
            if close:
                k = close.end()
                continue
            out.append(c * run)
            k += run
            continue
        out.append(c)
        k += 1
    return "".join(out)


@pytest.fixture(scope="module")
def docs():
    from symloss.docs.render import render_docs

    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for evil in (True, False):
            folder = Path(tmp) / ("evil" if evil else "good")
            folder.mkdir()
            write_spec(folder, "one", "elementwise", evil)
            write_spec(folder, "two", "row", evil)
            out[evil] = render_docs(folder, analyse=False)
    return out


def test_html_docs_have_no_markup_from_the_spec(docs):
    bad, good = docs[True], docs[False]
    pages = [k for k in good if k.endswith(".html")]
    assert {"losses/one.html", "losses/two.html", "index.html", "guide.html"} <= set(pages)
    for page in pages:
        b, g = _parse(bad[page]), _parse(good[page])
        assert b.tags == g.tags, page
        assert "script" not in {t for t, _ in b.tags} and "img" not in {t for t, _ in b.tags}
    text = " ".join(_parse(bad["losses/one.html"]).text)
    assert "<script>alert(1)</script>" in text  # shown, as text
    assert "Evil title" in text and "Evil ref1" in text and "Evil description" in text


def test_markdown_docs_escape_spec_text(docs):
    bad, good = docs[True], docs[False]
    pages = [k for k in good if k.endswith(".md")]
    assert {"losses/one.md", "losses/two.md", "index.md", "guide.md"} <= set(pages)
    for page in pages:
        b, g = bad[page].splitlines(), good[page].splitlines()
        assert len(b) == len(g), page  # no injected lines or blocks
        for bl, gl in zip(b, g):
            if bl == gl:
                continue
            live, benign = _live(bl), _live(gl)
            for ch in MARKUP:  # the markup on the line is the template's, as on the benign page
                assert live.count(ch) == benign.count(ch), (page, ch, bl)
            assert "\u202e" not in bl
    one = bad["losses/one.md"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one
    assert "\\[link\\](javascript:alert(1))" in one
    assert one.splitlines()[1].startswith("# Evil title ")


def test_names_are_ascii_identifiers():
    """Python reads source NFKC-normalised: a fullwidth 'ｗ' input would be the kernels' own 'w'."""
    import pytest

    from symloss import SpecError
    from symloss.runtime.loss import Loss

    for name in ("\uff57", "y\u0301", "\u0430"):  # fullwidth w, combining accent, Cyrillic a
        with pytest.raises(SpecError, match="not a valid Python identifier"):
            Loss.from_expr(f"({name} - y)**2", inputs={"y": "target", name: "prediction"})
