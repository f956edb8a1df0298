"""Bounds on the work one spec can cause: every input finishes or is refused.

A spec is untrusted data.  Without bounds, ``yhat ** 10 ** 10 ** 10`` makes
SymPy compute a ten-billion-digit integer, a 10,000-deep expression exhausts
Python's recursion limit, and sixty nested ``exp`` have a Hessian of 130,000
nodes that the stability rewrites take minutes over.  Each limit below is one
number, checked where the work would start, and a refusal is a
:class:`~symloss.errors.SpecError` (or :class:`~symloss.errors.DerivationError`
after differentiation) naming the file, the field and the limit.

Every limit is read from the environment variable ``SYMLOSS_<NAME>`` (e.g.
``SYMLOSS_MAX_NODES=50000``) when this module is imported, and may also be
changed at run time by assigning the module attribute
(``symloss.limits.MAX_NODES = 50000``): the checks read the attribute on
every call.  The catalog in ``specs/`` uses a small fraction of each (see
tests/test_limits.py): its largest expression has about 1,000 nodes, depth
15 and 3 Piecewise branches, and derives in under half a second.
"""
from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sympy as sp

from .errors import DerivationError, SpecError, SymlossError


def _env(name: str, default: float) -> float:
    raw = os.environ.get(f"SYMLOSS_{name}")
    if raw is None:
        return default
    try:
        value = type(default)(raw)
    except ValueError:
        raise ValueError(f"SYMLOSS_{name}={raw!r}: expected a {type(default).__name__}") from None
    if not value > 0:
        raise ValueError(f"SYMLOSS_{name}={raw!r}: expected a positive number")
    return value


# Bytes of one spec file (read before parsing the TOML).
MAX_SPEC_BYTES: int = _env("MAX_SPEC_BYTES", 262_144)  # the catalog's largest is 1.3 KB
# Characters of one text field: an expression (loss, each let, each derivative),
# the title, the description or one reference.  The catalog's longest is 570.
MAX_TEXT_LENGTH: int = _env("MAX_TEXT_LENGTH", 20_000)
# Digits of one number literal in an expression (float64 needs 17).
MAX_LITERAL_DIGITS: int = _env("MAX_LITERAL_DIGITS", 100)
# Bits of an exact integer or rational that an expression may build
# (4096 bits is about 1,233 decimal digits; 10**300 needs 997).  Checked
# *before* a power is taken: 10**10**10, 2**(10**9), (1/3)**100000 and
# (2*yhat)**(10**9) (which SymPy distributes into 2**(10**9) * yhat**(10**9))
# are refused without being computed, also where a let or a parameter's
# default supplies the exponent.
MAX_EXACT_BITS: int = _env("MAX_EXACT_BITS", 4096)
# Nodes of one expression, counted as a tree (a subexpression used twice
# counts twice: most SymPy operations walk the tree), after parsing (lets
# substituted) and for every derivative, before it is taken (an estimate)
# and after.
MAX_NODES: int = _env("MAX_NODES", 20_000)
# Nesting depth of one expression, parsed (before the walk, so a deep text is
# refused before it can exhaust Python's recursion limit) and derived.
MAX_DEPTH: int = _env("MAX_DEPTH", 100)
# (value, condition) pairs of one Piecewise.
MAX_PIECEWISE_BRANCHES: int = _env("MAX_PIECEWISE_BRANCHES", 64)
# Entries of the [let], [inputs] and [params] tables.
MAX_LETS: int = _env("MAX_LETS", 64)
MAX_INPUTS: int = _env("MAX_INPUTS", 16)
MAX_PARAMS: int = _env("MAX_PARAMS", 32)
# Wall-clock seconds of one guarded stage (parsing a spec, each derivation
# stage, code generation where the caller guards it); see time_limit.
MAX_SECONDS: float = _env("MAX_SECONDS", 20.0)

# Python frames a stage may need per level of nesting (SymPy's diff takes
# about seven per level; printing and rewrites fewer), for the recursion
# limit a guarded stage raises to.
_FRAMES_PER_LEVEL = 15


def how_to_raise(name: str) -> str:
    return f"limit {name} = {globals()[name]}; raise it with SYMLOSS_{name} or symloss.limits.{name}"


# -- text -------------------------------------------------------------------------


def check_text(text: str, source: str, field: str) -> None:
    """Length of a text field."""
    if isinstance(text, str) and len(text) > MAX_TEXT_LENGTH:
        raise SpecError(source, field, f"text of {len(text)} characters is too long ({how_to_raise('MAX_TEXT_LENGTH')})")


def text_depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` (a bound the parser cannot exceed cheaply)."""
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


# -- exact numbers ----------------------------------------------------------------


def distinct_nodes(expr: sp.Basic) -> Iterator[sp.Basic]:
    """Each distinct subexpression once (a let used twice is walked once)."""
    seen = {expr}
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        for a in node.args:
            if a not in seen:
                seen.add(a)
                stack.append(a)


def rational_bits(value: sp.Basic) -> float:
    """log2 of an exact Rational's numerator plus that of its denominator, 0 for anything else."""
    if isinstance(value, sp.Rational):
        p, q = abs(int(value.p)), int(value.q)
        return (math.log2(p) if p else 0.0) + math.log2(q)
    return 0.0


def power_bits(base: sp.Basic, exponent: sp.Basic) -> float:
    """A bound on the bits of the exact numbers SymPy may compute for ``base ** exponent``.

    SymPy evaluates a Rational power of a number exactly and distributes an
    integer power over a product's numeric factors ((2*yhat)**n becomes
    2**n * yhat**n), so every exact number in those factors may be raised to
    ``exponent``.  0 when nothing exact can grow (yhat**n, (1 + yhat)**n).
    """
    if not isinstance(exponent, sp.Rational) or (exponent.is_Integer and abs(exponent) <= 1):
        return 0
    factors = [f for f in sp.Mul.make_args(base) if not f.free_symbols]
    if not factors:
        return 0
    numbers = [a for f in factors for a in distinct_nodes(f) if isinstance(a, sp.Rational) and abs(a) != 1]
    if not numbers:
        if all(isinstance(f, sp.Rational) for f in factors):
            return 0  # 1**n, (-1)**n
        numbers = [sp.Integer(2)]  # pi**n, E**n: assume a bit per unit of exponent
    bits = max(max(rational_bits(a) for a in numbers), 1)
    return bits * float(abs(exponent))


def check_power(base: sp.Basic, exponent: sp.Basic, fail: Callable[[str], Exception]) -> None:
    bits = power_bits(base, exponent)
    if bits > MAX_EXACT_BITS:
        raise fail(f"power makes an exact number of about {bits:.3g} bits ({how_to_raise('MAX_EXACT_BITS')})")


def check_exact(value: sp.Basic, fail: Callable[[str], Exception]) -> None:
    """An exact number the walker just built (a product of literals, a let)."""
    bits = rational_bits(value)
    if bits > MAX_EXACT_BITS:
        raise fail(f"exact number of {bits:.0f} bits ({how_to_raise('MAX_EXACT_BITS')})")


def param_power(expr: sp.Basic, defaults: dict[sp.Symbol, float]) -> tuple[str, str] | None:
    """(parameter, problem) for a power that explodes at the parameters' defaults, else None.

    A power b**e whose exponent depends only on parameters, and exp(e) with a
    log in e (SymPy makes b**n of exp(n*log(b))), is evaluated in floating point
    at the defaults; the size it would have exactly is checked as above.
    """
    for node in distinct_nodes(expr):
        if isinstance(node, sp.Pow):
            base, exponent = node.args
        elif isinstance(node, sp.exp) and node.args[0].has(sp.log):
            base, exponent = sp.E, node.args[0] / sp.log(2)
        else:
            continue
        syms = exponent.free_symbols
        if not syms or not syms <= defaults.keys():
            continue
        try:
            magnitude = abs(float(exponent.xreplace({s: sp.Float(v) for s, v in defaults.items()})))
        except (TypeError, ValueError, OverflowError):
            continue  # not real at the defaults: nothing exact to compute
        bits = power_bits(base, sp.Integer(2)) / 2 if base is not sp.E else 1.0
        if bits * magnitude > MAX_EXACT_BITS:
            name = sorted(s.name for s in syms)[0]
            return name, (f"the power {node} makes an exact number of about {bits * magnitude:.3g} bits at the "
                          f"default ({how_to_raise('MAX_EXACT_BITS')})")
    return None


# -- expression size --------------------------------------------------------------


def measure(expr: sp.Basic, limit: int | None = None) -> tuple[int, int]:
    """(tree nodes, depth) of ``expr``, iteratively, in time linear in its distinct nodes.

    Counting stops early (returning a count above ``limit``) once the tree is
    known to exceed ``limit``.
    """
    size: dict[sp.Basic, int] = {}
    depth: dict[sp.Basic, int] = {}
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in size:
            continue
        args = node.args
        if ready or not args:
            size[node] = 1 + sum(size[a] for a in args)
            depth[node] = 1 + max((depth[a] for a in args), default=0)
            if limit is not None and size[node] > limit:
                return size[node], depth[node]
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in args if a not in size)
    return size[expr], depth[expr]


def check_expr(expr: sp.Basic, fail: Callable[[str], Exception], what: str = "expression") -> None:
    """Node count and depth of a parsed or derived expression."""
    nodes, deep = measure(expr, MAX_NODES)
    if nodes > MAX_NODES:
        raise fail(f"{what} has {'more than ' if nodes > MAX_NODES else ''}{MAX_NODES} nodes "
                   f"({how_to_raise('MAX_NODES')})")
    if deep > MAX_DEPTH:
        raise fail(f"{what} is nested {deep} deep ({how_to_raise('MAX_DEPTH')})")


def derivative_nodes(expr: sp.Basic, x: sp.Symbol) -> int:
    """An estimate of the tree size of d expr / dx, before SymPy computes it.

    The chain and product rules copy, for every node on a path to ``x``, the
    node's other operands (a product's other factors, an outer function's
    derivative, which is about as large as the node).  SymPy's result is
    usually smaller (exp is its own derivative, constants vanish); the point
    is to refuse a Hessian of 100,000 nodes before spending minutes on it.
    """
    size: dict[sp.Basic, int] = {}
    dsize: dict[sp.Basic, int] = {}
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in size:
            continue
        args = node.args
        if args and not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in args if a not in size)
            continue
        s = size[node] = 1 + sum(size[a] for a in args)
        if node == x:
            dsize[node] = 1
            continue
        dep = [a for a in args if dsize[a]]
        if not dep:
            dsize[node] = 0
        elif isinstance(node, sp.Add):
            dsize[node] = 1 + sum(dsize[a] for a in dep)
        elif isinstance(node, sp.Mul):
            dsize[node] = 1 + sum(1 + dsize[a] + s - 1 - size[a] for a in dep)
        elif isinstance(node, sp.Pow):
            dsize[node] = 4 + s + sum(dsize[a] for a in dep)
        elif isinstance(node, sp.Piecewise):
            dsize[node] = 1 + sum(1 + dsize[v] + size[c] for v, c in args)
        else:  # f(a): f'(a) * a', with f'(a) about as large as f(a)
            dsize[node] = sum(2 + s + dsize[a] for a in dep)
    return dsize[expr]


def check_derivative(expr: sp.Basic, x: sp.Symbol, fail: Callable[[str], Exception], what: str) -> None:
    """Refuse a derivative whose estimated size is over MAX_NODES, before taking it."""
    nodes = derivative_nodes(expr, x)
    if nodes > MAX_NODES:
        raise fail(f"{what} would have about {nodes} nodes ({how_to_raise('MAX_NODES')})")


def check_count(table: dict, name: str, source: str, field: str) -> None:
    limit = globals()[name]
    if isinstance(table, dict) and len(table) > limit:
        raise SpecError(source, field, f"{len(table)} entries are too many ({how_to_raise(name)})")


# -- wall-clock guard ---------------------------------------------------------------


class _Expired(BaseException):
    """Raised inside a guarded stage when its time is up; a BaseException so
    that no ``except Exception`` inside SymPy swallows it.  time_limit turns
    it into the stage's own error."""

    def __str__(self) -> str:
        return "a symloss stage ran past its time limit (symloss.limits.MAX_SECONDS)"


_state = threading.local()


def _expired_message(what: str, seconds: float) -> str:
    return f"{what} took longer than {seconds:g} s ({how_to_raise('MAX_SECONDS')})"


def check_time() -> None:
    """The cooperative half of the guard: call between stages (each derivative, each rewrite pass)."""
    guard = getattr(_state, "guard", None)
    if guard is not None and time.monotonic() > guard[0]:
        raise guard[2](_expired_message(guard[1], guard[3]))


def stage_error(problem: str) -> Exception:
    """The error for ``problem`` that the guarded stage running in this thread
    raises (naming its file and field), for checks deep inside a stage."""
    guard = getattr(_state, "guard", None)
    return guard[2](problem) if guard is not None else DerivationError(problem)


def _frames() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        f, n = f.f_back, n + 1
    return n


# The most frames recursion_headroom grants: Python 3.11's AST construction
# recurses in C once per operand of a long sum, and 25,000 levels fit the
# default 8 MiB stack of the main thread and of new threads alike.
_MAX_RECURSION = 25_000


@contextmanager
def recursion_headroom(frames: int) -> Iterator[None]:
    """Let the block nest ``frames`` calls deeper than the caller (up to a safe
    cap), restoring the previous recursion limit after; never lowers it."""
    previous = sys.getrecursionlimit()
    wanted = min(_frames() + frames + 200, _MAX_RECURSION)
    if wanted > previous:
        sys.setrecursionlimit(wanted)
    try:
        yield
    finally:
        if sys.getrecursionlimit() == wanted > previous:
            sys.setrecursionlimit(previous)


class _Watchdog:
    """Raises _Expired in the thread that started it once ``seconds`` have
    passed, then again every 0.2 s (in case library code catches it), until
    stopped.  The exception is delivered between two bytecodes of that thread
    (PyThreadState_SetAsyncExc), the same moment a signal handler would run,
    so it works in any thread, not only the main one."""

    available = hasattr(ctypes, "pythonapi") and hasattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc")

    def __init__(self, seconds: float):
        self.thread = threading.get_ident()
        self.lock = threading.Lock()
        self.live = True
        self.timer = self._start(seconds)

    def _start(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        timer.start()
        return timer

    def _fire(self) -> None:
        with self.lock:
            if self.live:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread), ctypes.py_object(_Expired))
                self.timer = self._start(0.2)

    def stop(self) -> None:
        with self.lock:
            self.live = False
            self.timer.cancel()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread), None)  # drop an undelivered one


def _derivation_error(message: str) -> Exception:
    return DerivationError(message)


@contextmanager
def time_limit(what: str, error: Callable[[str], Exception] = _derivation_error,
               seconds: float | None = None) -> Iterator[None]:
    """Bound the wall-clock time of a stage to ``seconds`` (default MAX_SECONDS).

    A watchdog thread interrupts the stage wherever it is, also inside one
    long SymPy call, in the main thread or any other: the stage raises
    ``error("<what> took longer than N s ...")``.  (Like a signal, it cannot
    stop a single long call into C, e.g. one huge integer power; the exact
    number limits prevent those.)  :func:`check_time` is the cooperative
    check derivation steps also make.  Nested guards share the outermost
    deadline.  The stage also gets recursion headroom for MAX_DEPTH levels of
    nesting (Python's limit is raised for it and restored after).
    """
    if getattr(_state, "guard", None) is not None:  # the outer guard's budget covers this one
        yield
        return
    seconds = MAX_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    _state.guard = (deadline, what, error, seconds)
    expired = False
    watchdog = None
    try:
        with recursion_headroom(_FRAMES_PER_LEVEL * MAX_DEPTH):
            watchdog = _Watchdog(seconds) if _Watchdog.available else None  # else: check_time only
            yield
        # finished, but late: the interrupt can land where it is swallowed (an exception raised in
        # a gc callback, such as hypothesis installs, is only printed), so the deadline decides
        expired = time.monotonic() > deadline
    except _Expired:
        expired = True
    except Exception as exc:
        # the interrupt can surface as another error of the code it landed in (CPython's AST
        # constructor reports a SystemError): past the deadline, that is the time limit
        if isinstance(exc, SymlossError) or time.monotonic() < deadline:
            raise
        expired = True
    finally:
        while watchdog is not None:  # the exception may arrive once more before stop() runs: retry
            try:
                watchdog.stop()
                watchdog = None
            except _Expired:
                expired = True
        _state.guard = None
    if expired:
        raise error(_expired_message(what, seconds))


def generating(source: str):
    """The time guard around rendering one spec's code.

    Only rendering: Numba's compile and the import stay outside, since an
    interrupt there could leave the compiler's state half-built.
    """
    from .errors import DerivationError

    return time_limit("generating code", lambda problem: DerivationError(f"{source}: {problem}"))
