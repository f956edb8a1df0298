"""The command line as a user runs it: one-line errors, non-zero exits, new + generate."""
import os
import subprocess
import sys

import numpy as np

from conftest import CATALOG


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "symloss", *args], capture_output=True, text=True, cwd=cwd)


def test_list_and_show():
    out = run("list")
    assert out.returncode == 0
    assert all(name in out.stdout for name in CATALOG)
    show = run("show", "bce_logits")
    assert show.returncode == 0
    assert "d/dz:           sigmoid_plus(z, -y)" in show.stdout and "logistic" in show.stdout
    assert "\\frac{\\partial L}{\\partial z}" in show.stdout
    assert "alpha=1 (differentiable)" in out.stdout
    barron = run("show", "general_robust")
    assert "d/dalpha:       barron_dalpha((-y + yhat)/c, alpha) (closed form from [derivatives])" in barron.stdout


def test_output_into_a_closed_pipe_ends_quietly():
    # `symloss list | head -1`: the reader is gone before the listing ends
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "symloss", "list"], stdout=w, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == ""


def test_check_passes_for_catalog_losses():
    out = run("check", "mse", "bce")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 loss(es) checked, 0 failure(s)" in out.stdout


def test_errors_are_one_line_without_traceback(tmp_path):
    for args in (("show", "nope"), ("new", "bad", "--expr", "__import__('os')", "--specs", str(tmp_path)),
                 ("check", "nope")):
        out = run(*args)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not list(tmp_path.iterdir())  # the rejected spec was not written


def test_generate_reports_a_broken_spec_by_file_and_field(tmp_path):
    (tmp_path / "oops.toml").write_text('name = "oops"\nloss = "yhat +* 2"\n[inputs]\nyhat = "prediction"\n')
    out = run("generate", "--specs", str(tmp_path), "--out", str(tmp_path / "gen"))
    assert out.returncode == 2
    assert "oops.toml: field 'loss': syntax error" in out.stderr
    assert not (tmp_path / "gen").exists()


def test_new_then_generate_gives_a_verified_importable_module(tmp_path):
    specs, gen = tmp_path / "specs", tmp_path / "gen"
    assert run("new", "my_loss", "--expr", "log(1 + (yhat - y)**2)", "--specs", str(specs)).returncode == 0
    assert run("new", "my_loss", "--expr", "yhat", "--specs", str(specs)).returncode == 2  # no overwrite
    out = run("generate", "--specs", str(specs), "--out", str(gen))
    assert out.returncode == 0, out.stderr
    assert (gen / "my_loss.py").is_file()

    from symloss.check import check_loss
    from symloss.runtime.loss import Loss
    from symloss.modules import import_path
    from symloss.spec import load_spec

    L = Loss(load_spec(specs / "my_loss.toml"), import_path(gen / "my_loss.py"))
    assert all(r.ok for r in check_loss(L)), [str(r) for r in check_loss(L) if not r.ok]
    y, yhat = np.zeros(3), np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(L.grad(y, yhat, reduction="none"), 2 * yhat / (1 + yhat**2))


def test_check_in_several_processes_reports_in_order_and_counts_failures(tmp_path):
    """`check -j 2` runs losses in worker processes: the same lines as one process, in the given order,
    and a wrong closed-form derivative in one loss fails the run."""
    specs = tmp_path / "specs"
    assert run("new", "good", "--expr", "log(1 + (yhat - y)**2)", "--specs", str(specs)).returncode == 0
    (specs / "wrong.toml").write_text(
        'name = "wrong"\nloss = "a * (yhat - y)**2"\n[inputs]\ny = "target"\nyhat = "prediction"\n'
        '[params]\na = { default = 1.5, differentiable = true }\n'
        '[derivatives]\na = "2 * (yhat - y)**2"\n')  # d/da is (yhat - y)**2
    outs = [run("check", "--specs", str(specs), "-j", j, cwd=tmp_path) for j in ("1", "2")]
    for out in outs:
        assert out.returncode == 1, out.stdout + out.stderr
        assert "2 loss(es) checked" in out.stdout and "0 failure(s)" not in out.stdout
        assert "param[a] vs finite diff" in out.stdout
    assert outs[0].stdout.splitlines()[:-1] == outs[1].stdout.splitlines()[:-1]
    assert "[1/2] checked good" in outs[1].stderr and "[2/2] checked wrong" in outs[1].stderr


def test_check_jobs_default_to_the_usable_cpus_and_never_exceed_the_losses():
    import os

    import pytest

    from symloss.cli import MAX_DEFAULT_JOBS, _jobs, _usable_cpus
    from symloss.errors import SymlossError

    assert 1 <= _usable_cpus() <= len(os.sched_getaffinity(0))
    assert _jobs(None, 34) == min(_usable_cpus(), MAX_DEFAULT_JOBS)
    assert _jobs(None, 1) == 1 and _jobs(5, 3) == 3 and _jobs(1, 34) == 1
    with pytest.raises(SymlossError, match="at least 1"):
        _jobs(0, 3)
