"""Concurrency, cache integrity, planted symlinks and read-only installs (issue 12).

Real processes, real files: several interpreters building one new loss at
once, two `symloss generate` runs into one folder, tampered cache files, and
the package installed into a read-only tree used by a process that cannot
write there (as root, one whose capabilities cannot override file modes).
"""
import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from symloss import _paths
from symloss.render import write
from symloss.render.write import HEADER_MARK, write_atomic, write_tree
from symloss import modules

REPO = Path(__file__).resolve().parents[1]
# A new loss (fresh cache folder per run) with a constant we can find in its code.
EXPR = "0.375*(yhat - y)**2 + log(1 + (yhat - y)**2)"
SPEC = f'name = "h3_conc"\nkind = "elementwise"\nloss = "{EXPR}"\n\n[inputs]\ny = "target"\nyhat = "prediction"\n'
Y = [0.0, 1.0, -2.0, 0.5]
YHAT = [0.5, 3.0, -2.5, 0.5]


def expected(scale=0.375):
    r = np.subtract(YHAT, Y)
    return (scale * r**2 + np.log1p(r**2)).mean(), (2 * scale * r + 2 * r / (1 + r**2)) / r.size


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "SYMLOSS_", "PYTHONPATH"))}
    env.update(extra)
    return env


# --- write_atomic / write_tree: links are replaced, never followed ------------------------------
def test_write_atomic_replaces_a_planted_link_not_its_target(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.py").symlink_to(outside)
    (out / "b.py").symlink_to(outside)
    assert write_atomic(out / "a.py", "new", root=out)
    assert write_atomic(out / "b.py", "precious", root=out)  # same bytes as the target: still replaced
    for name, text in (("a.py", "new"), ("b.py", "precious")):
        assert not (out / name).is_symlink() and (out / name).read_text() == text
    assert outside.read_text() == "precious"
    assert not write_atomic(out / "a.py", "new", root=out)  # identical regular file: untouched
    mode = stat.S_IMODE((out / "a.py").stat().st_mode)
    assert mode == 0o666 & ~write._umask()  # an ordinary file, not mkstemp's 0600


def test_write_tree_does_not_write_or_delete_through_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "old.py").write_text(f"# {HEADER_MARK} elsewhere\n")  # looks like ours, is not in out/
    (outside / "keep.py").write_text(f"# {HEADER_MARK} linked file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cuda").symlink_to(outside, target_is_directory=True)  # folder link where output goes
    (out / "linked_dir").symlink_to(outside, target_is_directory=True)  # a folder the sweep must not enter
    (out / "stale_link.py").symlink_to(outside / "keep.py")
    (out / "stale.py").write_text(f"# {HEADER_MARK} from a removed spec\n")
    (out / "mine.py").write_text("# hand-written, no header\n")
    (out / ".partial.py").write_text(f"# {HEADER_MARK} another run's temp file\n")

    changed = write_tree(out, {"a.py": "A", "cuda/a.py": "CA"})
    assert sorted(changed) == ["a.py", "cuda/a.py", "stale.py"]
    assert (out / "cuda").is_dir() and not (out / "cuda").is_symlink()
    assert (out / "cuda" / "a.py").read_text() == "CA"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.py", "old.py"]  # nothing written or deleted there
    assert (out / "stale_link.py").is_symlink() and (out / "mine.py").exists() and (out / ".partial.py").exists()
    assert not (out / "stale.py").exists()


def test_write_tree_waits_for_the_folder_lock(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = "import sys; from pathlib import Path; from symloss.render.write import write_tree; " \
           "print('writing', flush=True); write_tree(Path(sys.argv[1]), {'a.py': 'locked'})"
    with write._locked(out):
        proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(1.0)  # plenty to write one file, were it not for the lock
        assert proc.poll() is None and not (out / "a.py").exists()
    assert proc.wait(timeout=60) == 0
    assert (out / "a.py").read_text() == "locked"


# --- the cache folder: content checked before import ------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_folder_is_private(cache):
    assert _paths.cache_dir() == cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_truncated_or_linked_cache_file_is_rebuilt(cache, tmp_path):
    source = "VALUE = 42\n" + "# padding\n" * 20
    path = modules.cache_source("tiny", source)
    assert path.name == f"tiny_{modules.digest_of(source.encode())}.py"
    pycache = path.parent / "__pycache__"
    pycache.mkdir()
    stale = [pycache / f"{path.stem}.f-3.py311.nbi", pycache / f"{path.stem}.f-3.py311.1.nbc"]
    other = pycache / "other_0123456789abcdef.f-3.py311.nbi"
    for p in (*stale, other):
        p.write_bytes(b"numba")

    path.write_text(source[:15])  # truncated
    with pytest.warns(RuntimeWarning, match="truncated or modified"):
        assert modules.cache_source("tiny", source) == path
    assert path.read_text() == source and not any(p.exists() for p in stale) and other.exists()

    target = tmp_path / "planted.py"
    target.write_text("VALUE = 666\n")
    path.unlink()
    path.symlink_to(target)
    with pytest.warns(RuntimeWarning):
        modules.cache_source("tiny", source)
    assert not path.is_symlink() and target.read_text() == "VALUE = 666\n"
    assert modules.import_path(path).VALUE == 42


def test_import_path_refuses_a_cache_file_that_does_not_match_its_name(cache):
    source = "VALUE = 7\n"
    path = modules.cache_source("tiny2", source)
    path.write_text("VALUE = 8\n")  # same size, other content
    with pytest.raises(modules.CacheFileError, match="SHA-256 does not match"):
        modules.import_path(path)
    assert not path.exists()  # removed, so the next load rebuilds it
    assert modules.import_path(modules.cache_source("tiny2", source)).VALUE == 7


def test_explicit_cache_dir_that_is_unsafe_is_a_clear_error(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a numba pickle there
    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(shared))
    with pytest.raises(_paths.CacheDirError, match="SYMLOSS_CACHE_DIR=.*writable by every user"):
        _paths.cache_dir()
    monkeypatch.delenv("SYMLOSS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a_file"))
    (tmp_path / "a_file").write_text("")  # the default folder cannot exist: fall back, with a warning
    with pytest.warns(RuntimeWarning, match="cannot be used"):
        fallback = _paths.cache_dir()
    assert fallback.is_dir() and stat.S_IMODE(fallback.stat().st_mode) == 0o700


# --- several processes, one new loss ------------------------------------------------------------
BUILD = """
import json, os, sys, time, warnings
import numpy as np
import symloss
from symloss.runtime.loss import Loss
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
y, yhat = np.array({y}), np.array({yhat})
out = {{}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for how in sys.argv[2:]:  # "expr": Loss.from_expr; else a spec file for symloss.load
        L = Loss.from_expr({expr!r}, name="h3_conc") if how == "expr" else symloss.load(how)
        v, g = L.value_and_grad(y, yhat)
        out["expr" if how == "expr" else "path"] = [float(v), g.tolist(), L.module.__file__]
out["warnings"] = [str(w.message) for w in caught]
print(json.dumps(out))
"""


def run_together(n, args, env, cwd):
    """``n`` interpreters that import symloss, wait for one signal, then build the loss ``args`` name."""
    go = Path(cwd) / "go"
    go.unlink(missing_ok=True)
    script = BUILD.format(y=Y, yhat=YHAT, expr=EXPR)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(go), *args], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()  # all start building at the same moment
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def assert_correct(result, scale=0.375):
    v, g = expected(scale)
    assert result[0] == pytest.approx(v, rel=1e-12) and np.allclose(result[1], g, rtol=1e-12)


@pytest.fixture(scope="module")
def built():
    """Three processes at once, each loading the new loss from its spec file (what from_expr runs too)."""
    folder = Path(tempfile.mkdtemp(prefix="symloss-h3-"))
    (folder / "h3_conc.toml").write_text(SPEC)
    env = child_env(SYMLOSS_CACHE_DIR=str(folder / "cache"))
    results = run_together(3, [str(folder / "h3_conc.toml")], env, folder)
    yield folder, env, results
    shutil.rmtree(folder, ignore_errors=True)


def test_processes_building_one_new_loss_at_once(built):
    folder, _, results = built
    for r in results:
        assert_correct(r["path"])
        assert r["warnings"] == []
    (file,) = {r["path"][2] for r in results}  # one module, shared
    cache = folder / "cache"
    assert [p.name for p in cache.glob("*.py")] == [Path(file).name] and Path(file).parent == cache
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left behind
    assert modules.digest_of(Path(file).read_bytes()) == Path(file).stem[-16:]


TAMPERED_RUN = """
import importlib.util, sys
import numpy as np
from symloss.runtime.loss import Loss
from symloss.spec import load_spec
spec = importlib.util.spec_from_file_location("tampered", sys.argv[1])
mod = importlib.util.module_from_spec(spec); sys.modules["tampered"] = mod; spec.loader.exec_module(mod)
v, g = Loss(load_spec(sys.argv[2]), mod).value_and_grad(np.array({y}), np.array({yhat}))
print(float(v))
"""


def test_tampered_cache_file_is_rebuilt_and_its_numba_entries_not_reused(built):
    """A same-size edit keeping the mtime, compiled and cached by Numba, then loaded through symloss."""
    folder, env, results = built
    path, spec = Path(results[0]["path"][2]), str(folder / "h3_conc.toml")
    good = path.read_text()
    assert "0.375" in good
    st = path.stat()
    path.write_text(good.replace("0.375", "0.625"))  # same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... same mtime: what older Numba stamps entries with
    # Numba compiles and caches the tampered module when something imports it directly ...
    out = subprocess.run([sys.executable, "-c", TAMPERED_RUN.format(y=Y, yhat=YHAT), str(path), spec],
                         env=env, cwd=folder, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == pytest.approx(expected(0.625)[0], rel=1e-12)  # the edit is live
    assert list((path.parent / "__pycache__").glob(f"{path.stem}.*.nbi"))
    # ... symloss notices, rebuilds the file and drops those entries
    (r,) = run_together(1, [spec], env, folder)
    assert_correct(r["path"])
    assert any("truncated or modified" in w for w in r["warnings"])
    assert path.read_text() == good


# --- two generate runs into one folder ---------------------------------------------------------
def test_two_generate_runs_into_one_folder(tmp_path):
    from symloss.generate import render_catalog

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "h3_sq.toml").write_text(SPEC.replace("h3_conc", "h3_sq").replace(EXPR, "(yhat - y)**2"))
    (specs / "h3_abs.toml").write_text(SPEC.replace("h3_conc", "h3_abs").replace(EXPR, "abs(yhat - y)"))
    expected_files = render_catalog(specs)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "h3_sq.py").write_text("victim")
    out = tmp_path / "out"
    out.mkdir()
    (out / "h3_sq.py").symlink_to(outside / "h3_sq.py")
    (out / "cuda").symlink_to(outside, target_is_directory=True)
    (out / "gone.py").write_text(f"# {HEADER_MARK} from specs/gone.toml\n")

    cmd = [sys.executable, "-m", "symloss", "generate", "--specs", str(specs), "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if "__pycache__" not in p.parts and not p.is_dir()}
    assert found == set(expected_files)
    for rel, text in expected_files.items():
        assert not (out / rel).is_symlink() and (out / rel).read_text() == text
    assert not (out / "cuda").is_symlink()
    assert [p.name for p in outside.iterdir()] == ["h3_sq.py"] and (outside / "h3_sq.py").read_text() == "victim"


# --- a read-only install ------------------------------------------------------------------------
READONLY_RUN = """
import json, os, sys, warnings
import numpy as np
import symloss
from symloss.errors import SymlossError
from symloss.runtime.loss import Loss
report = {{"file": symloss.__file__}}
y, yhat = np.array({y}), np.array({yhat})
H = symloss.load("huber")
report["huber"] = H.value(y, yhat, delta=1.0, reduction="none").tolist()
report["huber_module"] = H.module.__file__
M = Loss.from_expr("(yhat - y)**2 * 1.5", name="h3_ro")
report["expr"] = M.value(y, yhat, reduction="sum")
report["expr_module"] = M.module.__file__
os.environ["SYMLOSS_CACHE_DIR"] = sys.argv[1]          # explicit and not writable: a clear error
try:
    Loss.from_expr("(yhat - y)**2 * 2.5", name="h3_ro2")
except SymlossError as exc:
    report["explicit_error"] = str(exc)
del os.environ["SYMLOSS_CACHE_DIR"]
os.environ["XDG_CACHE_HOME"] = sys.argv[1]             # the default not writable: private fallback
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    report["fallback"] = Loss.from_expr("(yhat - y)**2 * 2.5", name="h3_ro2").value(y, yhat, reduction="sum")
report["fallback_warnings"] = [str(w.message) for w in caught]
import contextlib, io
from symloss import cli
from symloss._paths import generated_dir
err = io.StringIO()
with contextlib.redirect_stderr(err):                  # generate into the read-only catalog: one clear line
    report["generate_rc"] = cli.main(["generate", "--specs", sys.argv[2], "--out", str(generated_dir())])
report["generate_err"] = err.getvalue()
print(json.dumps(report))
"""


def _drop_file_override():
    """As root, lose the capabilities that ignore file modes (kept out of the exec'd child's bounding set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="read-only check uses Linux capabilities")
def test_read_only_install(tmp_path):
    src, target, home, locked = (tmp_path / n for n in ("src", "site", "home", "locked"))
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc")
    for name in ("symloss", "templates", "specs", "generated"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-compile", "--target", str(target), str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    for p in [target, *target.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    home.mkdir(mode=0o700)
    locked.mkdir(mode=0o555)
    (home / "specs").mkdir()
    (home / "specs" / "h3_sq.toml").write_text(SPEC.replace("h3_conc", "h3_sq").replace(EXPR, "(yhat - y)**2"))
    before = _snapshot(target)
    if os.geteuid() == 0:
        try:  # probe: can this container drop capabilities?
            subprocess.run(["true"], preexec_fn=_drop_file_override, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot drop root's file-override capabilities here: {exc}")
    env = child_env(PYTHONPATH=str(target), HOME=str(home), TMPDIR=str(home))
    env.pop("XDG_CACHE_HOME", None)
    try:
        out = subprocess.run(
            [sys.executable, "-c", READONLY_RUN.format(y=Y, yhat=YHAT), str(locked), str(home / "specs")], env=env, cwd=home,
            capture_output=True, text=True, timeout=300,
            preexec_fn=_drop_file_override if os.geteuid() == 0 else None,
        )
    finally:
        for p in [target, *target.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)  # so tmp_path can be cleaned
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(r["file"]).is_relative_to(target)  # the installed copy ran, not the checkout
    y, yhat = np.array(Y), np.array(YHAT)
    a = np.abs(yhat - y)
    assert np.allclose(r["huber"], np.where(a <= 1, a**2 / 2, a - 0.5), rtol=1e-12)
    assert Path(r["huber_module"]).is_relative_to(target)
    assert r["expr"] == pytest.approx(1.5 * ((yhat - y) ** 2).sum(), rel=1e-12)
    assert r["fallback"] == pytest.approx(2.5 * ((yhat - y) ** 2).sum(), rel=1e-12)

    user_cache = home / ".cache" / "symloss"
    assert Path(r["expr_module"]).parent == user_cache
    assert list((user_cache / "numba").rglob("huber.*.nbi"))  # numba's cache of the catalog followed ours
    assert not (home / ".cache" / "numba").exists()
    assert "SYMLOSS_CACHE_DIR=" in r["explicit_error"] and str(locked) in r["explicit_error"]
    assert any("cannot be used" in w and "SYMLOSS_CACHE_DIR" in w for w in r["fallback_warnings"])
    assert r["generate_rc"] == 2 and "symloss: error: cannot write" in r["generate_err"]
    assert "Traceback" not in r["generate_err"]
    assert _snapshot(target) == before  # nothing written into the install
    assert not [p for p in home.iterdir() if p.name.startswith("symloss-cache-")]  # fallback removed at exit


def test_framework_modules_use_the_verified_cache(cache):
    """torch/jax modules of spec files and expressions go through cache_source: a tampered one is rebuilt."""
    import warnings

    from symloss.framework_modules import FrameworkModules
    from symloss.spec import spec_from_table

    spec = spec_from_table({"name": "fw_tiny", "loss": "(yhat - y)**4",
                            "inputs": {"y": "target", "yhat": "prediction"}}, source="<expr>")
    path = FrameworkModules("torch").module_for_spec(spec).__file__
    assert Path(path).parent.name == "torch" and Path(path).stem.startswith("fw_tiny_")
    good = Path(path).read_bytes()
    Path(path).write_bytes(good.replace(b"def ", b"import os\ndef ", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FrameworkModules("torch").module_for_spec(spec)
    assert Path(path).read_bytes() == good
