"""The torch backend: primitive coverage, each primitive's torch code against mpmath,
rendering of the whole catalog, and the loud errors."""
import ast
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

torch = pytest.importorskip("torch")

from symloss import backends, catalog  # noqa: E402
from symloss.backends.torch import primitives as TP  # noqa: E402
from symloss.backends.torch.printer import TorchPrinter  # noqa: E402
from symloss.backends.torch.render import render_spec  # noqa: E402
from symloss.derive import primitives as P  # noqa: E402
from symloss.derive.row import quotient0  # noqa: E402
from symloss.errors import DerivationError  # noqa: E402
from symloss.spec import load_spec  # noqa: E402


def test_every_primitive_has_a_torch_implementation():
    assert TP.missing() == []
    assert {p.__name__ for p in (*P.ALL, quotient0)} <= backends.implemented("torch")


def test_missing_primitive_is_a_loud_error_naming_backend_and_primitive():
    class mystery(P.Primitive):
        nargs = 1

    x = sp.Symbol("x")
    with pytest.raises(DerivationError, match="torch backend.*mystery"):
        backends.require("torch", [sp.exp(mystery(x))], "my_loss")
    with pytest.raises(DerivationError, match="torch backend.*mystery"):
        TorchPrinter().doprint(mystery(x) + 1)
    with pytest.raises(DerivationError, match="torch backend.*gamma"):
        TorchPrinter().doprint(sp.gamma(x))


def _helper(name):
    """The torch function of a primitive, from the source the generated modules carry."""
    if name in TP.FUNCTIONS:
        return eval(TP.FUNCTIONS[name], {"torch": torch})
    if name == "grouped":
        return lambda x: x
    ns = {"torch": torch, "math": math}
    exec(TP.SOURCES[name], ns)
    return ns[name]


GRID = [-1e3, -30.0, -2.5, -1.0, -0.7, -0.2, -1e-3, -1e-9, 0.0, 1e-12, 1e-5, 0.1, 0.29, 0.31, 0.9, 1.0, 1.7, 5.0,
        40.0, 700.0]
ARGS = {  # argument tuples per arity, inside each primitive's domain
    1: [(x,) for x in GRID],
    2: [(x, y) for x in (-3.0, -0.5, 0.0, 1e-8, 0.4, 2.0, 50.0) for y in (1e-6, 0.3, 1.0, 2.5, 100.0)],
}
SPECIAL = {
    "powdiv": [(x, b, g, k) for x in (0.0, 1.0, -2.0) for b in (0.0, 1e-300, 0.5, 3.0) for g in (0.0, 1.3, 2.0, 2.5)
               for k in (1.0, 2.0)],
    "barron_dalpha": [(rc, a) for rc in (0.0, 1e-8, 0.3, 1.0, 4.0, 1e3, 1e150) for a in
                      (-50.0, -2.0, -1e-6, 0.0, 0.5, 1.0, 1.999999, 2.0, 2.5, 8.0)],
    "xmlog1p": [(x,) for x in GRID if x > -1],
    "log1p": [(x,) for x in GRID if x > -1],
    "sqrt1pm1": [(x,) for x in GRID if x > -1],
    "powm1": [(u, a) for u in (-0.5, 0.0, 1e-9, 0.7, 30.0) for a in (-2.0, 1e-12, 0.5, 3.0)],
    "boxcox1p": [(u, a) for u in (-0.5, 0.0, 1e-9, 0.7, 30.0) for a in (-2.0, 0.0, 1e-12, 0.5, 3.0)],
}


def _arity(prim):
    n = prim.nargs
    return n if isinstance(n, int) else min(n)


@pytest.mark.parametrize("prim", [p for p in (*P.ALL, quotient0) if p is not P.kinkmax], ids=lambda p: p.__name__)
def test_torch_primitive_matches_mpmath(prim):
    fn = _helper(prim.__name__)
    cases = SPECIAL[prim.__name__] if prim.__name__ in SPECIAL else ARGS[_arity(prim)]
    mp = P._real_only(prim.mp)
    checked = 0
    with mpmath.workdps(50):
        for args in cases:
            try:
                want = mp(*(mpmath.mpf(a) for a in args))
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if isinstance(want, mpmath.mpc) or mpmath.isnan(want):
                continue
            want = float(want)
            got = fn(*(torch.tensor(a, dtype=torch.float64) for a in args)).item()
            if math.isinf(want) or abs(want) > 1e300:
                assert got == want or abs(got) > 1e300, (prim.__name__, args, got, want)
            else:
                assert got == pytest.approx(want, rel=1e-10, abs=1e-300), (prim.__name__, args, got, want)
            checked += 1
    assert checked >= 5


def test_kinkmax_and_nan_propagation():
    km = _helper("kinkmax")
    a = torch.tensor([1.0, 2.0, 3.0, math.nan, 1.0], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 3.0, 0.0, math.nan], dtype=torch.float64)
    out = km(a, b)
    assert out[:3].tolist() == [2.0, 2.0, 3.0] and out[3:].isnan().all()
    for name in ("softplus", "logcosh", "sigmoid_plus", "xlogy", "barron_dalpha", "boxcox1p"):
        fn = _helper(name)
        n = {"softplus": 1, "logcosh": 1}.get(name, 2)
        args = [torch.tensor([math.nan], dtype=torch.float64)] + [torch.tensor([0.5], dtype=torch.float64)] * (n - 1)
        assert fn(*args).isnan().all(), name


def test_float32_stays_float32():
    for name in ("softplus", "logcosh", "boxcox1p", "barron_dalpha", "powdiv", "xmlog1p"):
        fn = _helper(name)
        n = len(next(iter(SPECIAL.get(name, ARGS[1] if name in ("softplus", "logcosh", "xmlog1p") else ARGS[2]))))
        args = [torch.full((3,), 0.5, dtype=torch.float32) for _ in range(n)]
        assert fn(*args).dtype == torch.float32, name


@pytest.mark.parametrize("name", catalog.names())
def test_catalog_renders_a_torch_module_importing_only_torch(name):
    text = render_spec(load_spec(catalog.spec_path(name)))
    assert text.startswith("# Generated by symloss") and "do not edit" in text.splitlines()[0]
    tree = ast.parse(text)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"math", "torch"}
    ns = {}
    exec(compile(text, name, "exec"), ns)
    assert callable(ns["value"]) and issubclass(ns["Value"], torch.autograd.Function)
    # deterministic: same spec, same bytes
    assert render_spec(load_spec(catalog.spec_path(name))) == text


def test_import_symloss_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, symloss, symloss.backends, symloss.backends.torch.render; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_generate_writes_torch_modules(tmp_path):
    from symloss.generate import render_catalog

    specs = tmp_path / "specs"
    specs.mkdir()
    for n in ("huber", "cross_entropy"):
        (specs / f"{n}.toml").write_text(catalog.spec_path(n).read_text())
    files = render_catalog(specs)
    assert {"torch/huber.py", "torch/cross_entropy.py"} <= set(files)
    assert files["torch/huber.py"] == render_spec(load_spec(specs / "huber.toml"))
    np.testing.assert_equal(len(files["torch/cross_entropy.py"]) > 0, True)
