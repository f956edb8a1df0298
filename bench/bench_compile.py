"""Cold compile time and cached start-up per loss.

For each generated module, a copy goes into an empty folder (so Numba's
cache beside it starts empty) and two fresh processes run the same script:
the first compiles ``value`` then ``value_and_grad`` (float64, no weights)
and writes the cache, the second imports the module and makes the same calls
from the cache.  The first call in any process also pays Numba's one-time
initialisation (its registries import SciPy's BLAS bindings when SciPy is
installed), so the second kernel's time is the cache load alone.
Goal: import + first cached call <= 0.5 s.

``--no-scipy`` runs the processes with SciPy made unimportable, as in an
environment without it (symloss does not need it; scikit-learn, a test extra,
brings it).

Usage: python bench/bench_compile.py [--no-scipy] [NAME ...]
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NO_SCIPY = r"""
import sys
class _NoSciPy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("SciPy made unimportable by bench_compile.py --no-scipy")
sys.meta_path.insert(0, _NoSciPy())
"""
SCRIPT = r"""
import time, sys, json
t0 = time.perf_counter()
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); sys.modules["m"] = m; spec.loader.exec_module(m)
t1 = time.perf_counter()
n = len(m.INPUTS); cols = [np.full(8, 0.5) for _ in range(n)]
params = [float(v) for v in m.PARAMS.values()]
grads = [np.empty(8) for _ in m.PREDICTIONS]
m.value(*cols, *params, None, None, np.float64)
t2 = time.perf_counter()
m.value_and_grad(*cols, *params, None, 1.0, None, *grads, np.float64)
t3 = time.perf_counter()
assert "--no-scipy" not in sys.argv or "scipy" not in sys.modules
print(json.dumps({"import": t1 - t0, "first_call": t2 - t1, "second_kernel": t3 - t2}))
"""


def run(path: Path, no_scipy: bool) -> dict:
    script = (NO_SCIPY if no_scipy else "") + SCRIPT
    flags = ["--no-scipy"] if no_scipy else []
    out = subprocess.run([sys.executable, "-c", script, str(path), *flags], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# Numba's own floor: a module with two trivial cached kernels of the same signatures.
FLOOR = """
import numba
import numpy as np

INPUTS = ("y", "yhat")
PREDICTIONS = ("yhat",)
PARAMS = {}


@numba.njit(cache=True)
def value(y, yhat, w, out, T):
    total = 0.0
    for i in range(yhat.size):
        total += yhat[i] - y[i]
    return total


@numba.njit(cache=True)
def value_and_grad(y, yhat, w, scale, out, g, T):
    total = 0.0
    for i in range(yhat.size):
        total += yhat[i] - y[i]
        g[i] = scale
    return total
"""


def main() -> None:
    from symloss import catalog
    from symloss.spec import load_spec

    args = sys.argv[1:]
    no_scipy = "--no-scipy" in args
    args = [a for a in args if a != "--no-scipy"]
    names = args or [n for n in catalog.names() if load_spec(catalog.spec_path(n)).kind == "elementwise"]
    if no_scipy:
        print("SciPy made unimportable in the measured processes")
    print("cold: first process (compiles value, then value_and_grad); cached: second process (loads both)")
    print(f"{'loss':<16} {'cold value s':>13} {'cold v&g s':>11} {'import s':>9} {'1st cached call s':>18} "
          f"{'2nd cached kernel s':>20}")
    for name in ["(numba floor)", *names]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "floor.py"
            if name.startswith("("):
                path.write_text(FLOOR)
            else:
                path = Path(tmp) / f"{name}.py"
                shutil.copy(catalog.module_path(name), path)
            cold = run(path, no_scipy)
            warm = run(path, no_scipy)
        print(f"{name:<16} {cold['first_call']:13.2f} {cold['second_kernel']:11.2f} {warm['import']:9.2f} "
              f"{warm['first_call']:18.3f} {warm['second_kernel']:20.3f}")


if __name__ == "__main__":
    main()
