"""A user's own project, in a fresh folder outside the checkout, with the installed package:
README's "Add a loss" flow, [tool.symloss] defaults, shadowing, and both ways of
importing generated kernels."""
import os
import subprocess
import sys
import textwrap

import numpy as np

EXPR = "log(1 + (yhat - y)**2)"


def run(cwd, *args, ok=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, not the checkout
    out = subprocess.run([sys.executable, "-m", "symloss", *args], capture_output=True, text=True, cwd=cwd, env=env)
    if ok:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_readme_flow_in_a_fresh_folder(tmp_path):
    run(tmp_path, "new", "my_loss", "--expr", EXPR, "--specs", "specs")
    out = run(tmp_path, "generate", "--specs", "specs", "--out", "generated")
    assert (tmp_path / "generated" / "my_loss.py").is_file() and "file(s) changed in" in out.stdout
    for target in ("my_loss", "specs/my_loss.toml"):
        out = run(tmp_path, "check", target, "--specs", "specs")
        assert "1 loss(es) checked, 0 failure(s)" in out.stdout
    assert run(tmp_path, "check", "specs/my_loss.toml").returncode == 0  # a path needs no --specs
    assert "my_loss" in run(tmp_path, "list", "--specs", "specs").stdout
    assert "huber" not in run(tmp_path, "list", "--specs", "specs").stdout
    assert "d/dyhat" in run(tmp_path, "show", "my_loss", "--specs", "specs").stdout
    out = run(tmp_path, "docs", "--specs", "specs", "--out", "docs")
    pages = {p.name for p in (tmp_path / "docs" / "losses").iterdir()}
    assert {"my_loss.md", "my_loss.html"} <= pages and not any(p.startswith("huber") for p in pages)
    assert "my_loss" in (tmp_path / "docs" / "index.md").read_text()
    missing = run(tmp_path, "check", "nope", "--specs", "specs", ok=False)
    assert missing.returncode == 2 and "unknown loss 'nope'" in missing.stderr


def test_tool_symloss_table_sets_the_defaults(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "mine"
        [tool.symloss]
        specs = "losses"
        out = "src/kernels"
        docs = "site/losses"
    """))
    sub = tmp_path / "src"
    sub.mkdir()
    run(sub, "new", "my_loss", "--expr", EXPR)  # found from a subfolder, paths relative to pyproject.toml
    assert (tmp_path / "losses" / "my_loss.toml").is_file()
    run(sub, "generate")
    assert (tmp_path / "src" / "kernels" / "my_loss.py").is_file()
    out = run(tmp_path, "check")
    assert "1 loss(es) checked, 0 failure(s)" in out.stdout
    run(tmp_path, "docs")
    assert (tmp_path / "site" / "losses" / "losses" / "my_loss.html").is_file()
    assert run(tmp_path, "list").stdout.split()[0] == "my_loss"

    (tmp_path / "pyproject.toml").write_text("[tool.symloss]\nspecz = 'x'\n")
    bad = run(tmp_path, "list", ok=False)
    assert bad.returncode == 2 and "unknown key(s) specz" in bad.stderr


def test_a_user_spec_does_not_shadow_a_builtin_silently(tmp_path):
    refused = run(tmp_path, "new", "huber", "--expr", EXPR, "--specs", "specs", ok=False)
    assert refused.returncode == 2 and "built-in loss has this name" in refused.stderr
    assert not (tmp_path / "specs" / "huber.toml").exists()
    run(tmp_path, "new", "huber", "--expr", EXPR, "--specs", "specs", "--shadow")
    refused = run(tmp_path, "generate", "--specs", "specs", "--out", "gen", ok=False)
    assert refused.returncode == 2 and "--shadow" in refused.stderr and not (tmp_path / "gen").exists()
    run(tmp_path, "generate", "--specs", "specs", "--out", "gen", "--shadow")
    shown = run(tmp_path, "show", "huber", "--specs", "specs", "--shadow").stdout
    assert "log(" in shown  # the user's, not the built-in Piecewise


def test_generated_kernels_import_from_numpy_and_from_users_njit_code(tmp_path):
    run(tmp_path, "new", "my_loss", "--expr", EXPR, "--specs", "specs")
    run(tmp_path, "generate", "--specs", "specs", "--out", "generated")
    script = textwrap.dedent("""
        import sys
        import numba
        import numpy as np
        sys.path.insert(0, "generated")
        import my_loss                                   # a plain module: numpy + numba only

        y = np.array([0.0, 1.0, 2.0]); yhat = np.array([0.5, -1.0, 2.0])
        grad = np.empty_like(yhat); out = np.empty_like(yhat)
        total = my_loss.value_and_grad(y, yhat, None, 1.0, out, grad, np.float64)
        print(repr(float(total)), *map(repr, grad.tolist()))

        @numba.njit
        def my_metric(y, yhat):                          # scalar kernels compose in the user's own code
            s = 0.0
            for i in range(y.size):
                s += my_loss.value_scalar(y[i], yhat[i], np.float64)
            return s / y.size
        print(repr(float(my_metric(y, yhat))))
        print("symloss" in sys.modules, "sympy" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    y, yhat = np.array([0.0, 1.0, 2.0]), np.array([0.5, -1.0, 2.0])
    r = yhat - y
    total, *grad = map(float, lines[0].split())
    np.testing.assert_allclose(total, np.log1p(r**2).sum(), rtol=1e-14)
    np.testing.assert_allclose(grad, 2 * r / (1 + r**2), rtol=1e-14)
    np.testing.assert_allclose(float(lines[1]), np.log1p(r**2).mean(), rtol=1e-14)
    assert lines[2] == "False False"  # the vendored module needs neither symloss nor SymPy


def test_spec_text_reaches_the_terminal_as_plain_text(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "loud.toml").write_text(
        'name = "loud"\ntitle = "Loud \\u001b[2J\\u001b]0;pwned\\u0007 loss"\nloss = "(yhat - y)**2"\n'
        'description = "line one\\rline two"\n[inputs]\ny = "target"\nyhat = "prediction"\n')
    for args in (("list", "--specs", str(specs)), ("show", str(specs / "loud.toml"))):
        out = run(tmp_path, *args).stdout
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out
        assert "Loud \\x1b[2J" in out


def test_an_unchanged_copy_of_a_builtin_spec_is_not_a_shadow(tmp_path):
    """README's main job runs `symloss generate --specs specs` from a checkout beside an installed
    package: the checkout's specs are the built-ins' bytes, the same losses."""
    from symloss import catalog

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "huber.toml").write_bytes(catalog.spec_path("huber").read_bytes())
    run(tmp_path, "generate", "--specs", "specs", "--out", "gen")
    assert (tmp_path / "gen" / "huber.py").is_file()
    (specs / "huber.toml").write_text((specs / "huber.toml").read_text().replace("Huber loss", "My Huber"))
    refused = run(tmp_path, "generate", "--specs", "specs", "--out", "gen", ok=False)
    assert refused.returncode == 2 and "--shadow" in refused.stderr
