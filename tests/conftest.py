import os
import tempfile

import pytest

# Loss.from_expr writes into a cache folder; keep the suite's own, shared by
# the subprocesses it starts, out of the user's home.
os.environ.setdefault("SYMLOSS_CACHE_DIR", os.path.join(tempfile.gettempdir(), "symloss-test-cache"))

from symloss import catalog  # noqa: E402

CATALOG = catalog.names()
ELEMENTWISE = [n for n in CATALOG if "kind = \"row\"" not in catalog.spec_path(n).read_text()]


def pytest_addoption(parser):
    parser.addoption(
        "--update-generated", action="store_true", help="rewrite generated/ instead of comparing it"
    )


@pytest.fixture
def update_generated(request):
    return request.config.getoption("--update-generated")


# The longest tests (each several minutes of one worker in CI, mostly cold Numba compiles or a
# child interpreter) start first, so `pytest -n 2` does not end with one worker running them alone.
FIRST = (
    "test_cuda_row_sim.py::test_cuda_row_kernels_under_the_simulator",
    "test_cuda_sim.py::test_cuda_kernels_under_the_simulator",
    "test_docs.py::test_docs_are_up_to_date",
    "test_fuzz_expr.py::test_kernels_match_mpmath_and_propagate_nan",
    "test_keras_backend.py::test_keras_modules_equal_the_kernels",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        nodeid = item.nodeid.split("/")[-1].split("[")[0]
        return FIRST.index(nodeid) if nodeid in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: everything else keeps its order
