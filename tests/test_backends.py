"""Every backend implements every primitive, and a missing one is a loud error at generate time."""
import pytest
import sympy as sp

from symloss.derive import primitives as P
from symloss.derive.row import quotient0
from symloss.errors import DerivationError

ALL = (*P.ALL, quotient0)


def _tables():
    from symloss import backends
    from symloss.backends.numba_cpu.primitives import SOURCES as cpu
    from symloss.backends.numba_cuda.primitives import SOURCES as cuda

    tables = {"numba_cpu": set(cpu), "numba_cuda": set(cuda)}
    for name in backends.names():
        tables[name] = backends.implemented(name)
    return tables


@pytest.mark.parametrize("backend", sorted(_tables()))
def test_every_backend_implements_every_primitive(backend):
    missing = sorted({p.__name__ for p in ALL} - _tables()[backend])
    assert not missing, f"{backend} lacks {missing}"


def test_a_primitive_without_numba_code_is_a_loud_error(monkeypatch):
    from symloss.backends.numba_cpu import primitives
    from symloss.backends.numba_cpu.printer import NumbaPrinter, VectorPrinter

    monkeypatch.delitem(primitives.SOURCES, "softplus")
    x = sp.Symbol("x", real=True)
    for printer in (NumbaPrinter(), VectorPrinter()):
        with pytest.raises(DerivationError, match="no code for the primitive 'softplus'"):
            printer.doprint(P.softplus(x))


def test_derive_carries_no_backend_code():
    """derive/ is math only: code belongs to the backends' tables."""
    for p in ALL:
        for attr in ("helper", "vector_helper", "math_name", "library_name"):
            assert not hasattr(p, attr), (p.__name__, attr)
