"""Fast start: importing symloss and calling a cached catalog kernel never imports
the symbolic toolchain (SymPy, Jinja, mpmath), matplotlib or any framework."""
import json
import subprocess
import sys

SCRIPT = r"""
import json, sys
import numpy as np
import symloss
after_import = sorted(sys.modules)
L = symloss.load("huber")
v = L.value(np.zeros(4), np.linspace(-2, 2, 4), delta=1.5)
C = symloss.load("cross_entropy")
c, g = C.value_and_grad(np.array([0, 2]), np.zeros((2, 3)))
print(json.dumps({"import": after_import, "call": sorted(sys.modules), "values": [float(v), float(c)],
                  "spec": type(L.spec).__name__}))
"""
HEAVY = ("sympy", "jinja2", "mpmath", "matplotlib", "torch", "sklearn", "scipy.optimize", "xgboost",
         "lightgbm", "catboost", "dask", "keras", "jax")


def test_catalog_kernels_load_and_run_without_the_symbolic_toolchain():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for phase in ("import", "call"):
        loaded = {m.split(".")[0] for m in result[phase]} | set(result[phase])
        assert not loaded & set(HEAVY), (phase, sorted(loaded & set(HEAVY)))
    assert "numba" not in {m.split(".")[0] for m in result["import"]}  # numba only once a kernel is needed
    x = abs(-2 + 4 / 3)  # huber with delta 1.5 at r = -2, -2/3, 2/3, 2
    expected = (2 * 1.5 * (2 - 0.75) + 2 * x**2 / 2) / 4
    assert abs(result["values"][0] - expected) < 1e-12
    assert abs(result["values"][1] - __import__("math").log(3)) < 1e-12
    assert result["spec"] == "SpecHeader"


def test_the_header_is_the_full_spec_where_both_say_something():
    from symloss import catalog
    from symloss.spec import load_spec
    from symloss.spec.header import SpecHeader

    for name in catalog.names():
        header, full = SpecHeader(catalog.spec_path(name)), load_spec(catalog.spec_path(name))
        assert (header.name, header.kind, header.title, header.description, header.references, header.inputs,
                header.params) == (full.name, full.kind, full.title, full.description, full.references,
                                   full.inputs, full.params), name
        if full.row is not None:
            assert (header.row.index, header.row.size, header.row.mean_weight) == \
                (full.row.index, full.row.size, full.row.mean_weight)
        assert header.loss == full.loss  # anything else parses the full spec
