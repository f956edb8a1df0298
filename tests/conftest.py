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
