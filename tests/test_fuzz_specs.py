"""Property-based fuzzing of spec files: the loader, `symloss generate` in-process
and through the real CLI.

Every random spec file (valid ones broken field by field: wrong types, hostile
and unicode text, missing and unknown keys, huge numbers; and plain garbage)
must give either a clean result or a SymlossError: never another exception,
never a half-written output folder, and never text of the spec turning into
code in what is generated.
"""
from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
import pytest

from fuzz_strategies import spec_garbage, spec_tables, toml_text
from symloss.errors import SymlossError
from symloss.generate import generate
from symloss.spec import load_spec

# No shrinking: every step of it would render (or compile) again; a failure
# reports the example as drawn, which is reproducible (derandomized).
FUZZ = dict(deadline=None, database=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck))
LOADER_EXAMPLES = 150
GENERATE_EXAMPLES = 10
# names in the hostile strings (fuzz_strategies.HOSTILE) that no generated module uses
FORBIDDEN_NAMES = {"__import__", "system", "alert"}


def _load(text: str):
    """Load ``text`` as specs/fuzz.toml; the spec or the SymlossError it raised."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_spec(path)
        except SymlossError as exc:
            assert "\n" not in str(exc), f"the CLI prints errors as one line: {exc!r}"
            return exc


@settings(max_examples=LOADER_EXAMPLES, **FUZZ)
@given(st.one_of(spec_tables("fuzz").map(toml_text), spec_garbage))
def test_loader_accepts_or_refuses_cleanly(text):
    _load(text)  # anything but a LossSpec or a SymlossError propagates and fails


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _code_names(source: str) -> set[str]:
    """Names used as code (not inside strings or comments) in a generated module."""
    return {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME}


@settings(max_examples=GENERATE_EXAMPLES, **FUZZ)
@given(spec_tables("fuzz"))
def test_generate_writes_everything_or_nothing(table):
    with tempfile.TemporaryDirectory() as tmp:
        specs, out = Path(tmp) / "specs", Path(tmp) / "out"
        specs.mkdir()
        out.mkdir()
        (out / "keep.txt").write_text("left alone")
        (specs / "fuzz.toml").write_text(toml_text(table), encoding="utf-8")
        before = _snapshot(out)
        try:
            generate(specs, out)
        except SymlossError:
            assert _snapshot(out) == before  # a failed run writes nothing
            return
        written = _snapshot(out)
        assert written["keep.txt"] == b"left alone" and "fuzz.py" in written
        for rel, data in written.items():
            if rel.endswith(".py"):
                source = data.decode("utf-8")
                ast.parse(source)  # the spec's text cannot break the module's syntax
                assert not _code_names(source) & FORBIDDEN_NAMES, rel


HOSTILE_TEXT = {"title": "\"\"\"; __import__('os').system('true'); \"\"\"",
                "description": "{{ 7*7 }} {% raw %} </script>\u202e\"\"\"\n__import__('os')"}


@pytest.fixture(scope="module")
def hostile_output(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "specs").mkdir()
    table = {"name": "fuzz", **HOSTILE_TEXT, "loss": "(yhat - y)**2", "inputs": {"y": "target", "yhat": "prediction"}}
    (tmp / "specs" / "fuzz.toml").write_text(toml_text(table), encoding="utf-8")
    generate(tmp / "specs", tmp / "out")
    return tmp / "out"


@pytest.mark.parametrize("rel", ["fuzz.py", "cuda/fuzz.py", "torch/fuzz.py", "jax/fuzz.py"])
def test_spec_text_never_becomes_code(hostile_output, rel):
    source = (hostile_output / rel).read_text(encoding="utf-8")
    ast.parse(source)
    assert not _code_names(source) & FORBIDDEN_NAMES


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "symloss", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_generate_reports_a_hostile_spec_in_one_line(tmp_path):
    specs, out = tmp_path / "specs", tmp_path / "out"
    specs.mkdir()
    # a valid loss beside the hostile one: nothing of it may be written either
    (specs / "fine.toml").write_text('name = "fine"\nloss = "(yhat - y)**2"\n[inputs]\ny = "target"\nyhat = "prediction"\n')
    (specs / "fuzz.toml").write_text(
        'name = "fuzz"\ntitle = "\\u202e\U0001d4c1"\nloss = "yhat.__class__"\n[inputs]\ny = "target"\nyhat = "prediction"\n',
        encoding="utf-8")
    result = _cli("generate", "--specs", str(specs), "--out", str(out))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("symloss: error:")]
    assert len(errors) == 1 and "fuzz.toml" in errors[0] and "loss" in errors[0], result.stderr
    assert not out.exists() or not any(out.rglob("*.py"))


@pytest.mark.parametrize("loss", [
    "yhat + max(1/0, 2)",  # Max of zoo: SymPy's ValueError, now a SpecError
    "exp(exp(exp(1e5))) * yhat",  # SymPy's OverflowError evaluating the constant, now a SpecError
    "yhat + 2**10**8",  # refused by the exact-size limit
    "yhat + 1e309",  # an infinite literal
])
def test_undefined_or_huge_constants_are_spec_errors(loss):
    """Found by the expression fuzzer (test_fuzz_expr) and by hand from its hostile constants."""
    text = toml_text({"name": "fuzz", "loss": loss, "inputs": {"y": "target", "yhat": "prediction"}})
    assert isinstance(_load(text), SymlossError)
