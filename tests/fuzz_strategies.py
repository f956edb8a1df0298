"""Hypothesis strategies for the fuzz suites: loss expressions drawn from the
spec grammar (symloss/spec/expr_parser.py) and hostile spec files.

Expressions are produced as text, exactly as a user would write them, so the
parser is part of what is fuzzed.  Every subexpression is parenthesised: the
strategy controls the tree, not Python's precedence rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import strategies as st

from symloss.spec.expr_parser import FUNCTIONS

ONE_ARG = sorted(n for n in FUNCTIONS if n not in ("max", "Max", "min", "Min", "xlogy"))
TWO_ARGS = ["max", "Max", "min", "Min", "xlogy"]
COMPARISONS = ["<", "<=", ">", ">=", "=="]  # == for a parameter's special value
# Exponents a user writes: squares, cubes, roots, reciprocals, fractional ones.
EXPONENTS = ["2", "3", "4", "-1", "-2", "0.5", "1.5", "-0.5", "(1/3)", "2.5", "1.3", "(-3/2)"]
NUMBERS = ["2", "1", "0", "3", "0.5", "0.25", "1.5", "10", "1e-3", "pi", "E", "(1/3)"]

# Domains a prediction and a target may declare (sampling.py draws inside them).
PREDICTION_DOMAINS = ["real", "real", "positive", "unit"]
TARGET_DOMAINS = ["real", "positive", "unit", "unit_closed", "binary", "sign"]


# Terms that tie a drawn body to the prediction.
ANCHORS = ["yhat", "(yhat - y)**2", "abs(yhat - y)", "exp(-yhat)", "yhat**2 / 2"]


@dataclass
class Case:
    """One loss to build: ``Loss.from_expr(expr, inputs=..., params=..., let=...)``."""

    expr: str
    inputs: dict
    params: dict = field(default_factory=dict)
    let: dict = field(default_factory=dict)

    def table(self, name: str = "fuzz") -> dict:
        return {"name": name, "inputs": self.inputs, "params": self.params, "let": self.let, "loss": self.expr}

    def kwargs(self) -> dict:
        return {"inputs": self.inputs, "params": self.params, "let": self.let}


@st.composite
def expression(draw, names: list[str], depth: int = 3, leaf: bool = True) -> str:
    """An expression over ``names`` (inputs, parameters, lets) at most ``depth``
    deep; a bare name or number only where ``leaf``."""
    # Hypothesis shrinks towards the first choice of each draw: make that a node
    # over a name, so the examples it favours are not constants.
    if depth <= 0 or (leaf and draw(st.integers(0, 4)) == 4):
        return draw(st.sampled_from(names)) if draw(st.integers(0, 3)) < 3 else draw(st.sampled_from(NUMBERS))
    sub = lambda: draw(expression(names, depth - 1))  # noqa: E731
    kind = draw(st.sampled_from(["fn", "binop", "pow", "fn2", "piecewise", "binop", "fn", "neg"]))
    if kind == "binop":
        return f"({sub()} {draw(st.sampled_from(['+', '-', '*', '/']))} {sub()})"
    if kind == "fn":
        return f"{draw(st.sampled_from(ONE_ARG))}({sub()})"
    if kind == "fn2":
        return f"{draw(st.sampled_from(TWO_ARGS))}({sub()}, {sub()})"
    if kind == "pow":
        exponent = draw(st.sampled_from(EXPONENTS + [n for n in names if n.startswith("p")]))
        return f"({sub()})**{exponent}"
    if kind == "neg":
        return f"(-{sub()})"
    pieces = [f"({sub()}, {draw(condition(names, depth - 1))})" for _ in range(draw(st.integers(1, 2)))]
    return f"Piecewise({', '.join(pieces)}, ({sub()}, True))"


@st.composite
def condition(draw, names: list[str], depth: int) -> str:
    def compare():
        left = draw(expression(names, max(depth - 1, 0)))
        right = draw(st.sampled_from(NUMBERS[:6] + names))
        return f"{left} {draw(st.sampled_from(COMPARISONS))} {right}"

    if draw(st.integers(0, 3)) == 0:
        return f"({compare()}) {draw(st.sampled_from(['and', 'or']))} ({compare()})"
    return compare()


@st.composite
def param_decl(draw) -> dict:
    """A parameter declaration: a default that satisfies its own constraints."""
    kind = draw(st.sampled_from(["plain", "positive", "nonnegative", "range"]))
    if kind == "positive":
        return {"default": draw(st.sampled_from([0.5, 1.0, 2.0, 3.5])), "positive": True}
    if kind == "nonnegative":
        return {"default": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])), "nonnegative": True}
    if kind == "range":
        return {"default": draw(st.sampled_from([0.25, 0.5, 0.75])), "min": 0.0, "max": 1.0}
    return {"default": draw(st.sampled_from([-1.0, 0.0, 1.0, 1.5]))}


@st.composite
def cases(draw, depth: int = 3, two_predictions: bool = True) -> Case:
    """An elementwise loss over y, yhat (and maybe a second prediction s), 0-2
    parameters and maybe a [let]; the loss always mentions a prediction."""
    inputs = {
        "y": {"role": "target", "domain": draw(st.sampled_from(TARGET_DOMAINS))},
        "yhat": {"role": "prediction", "domain": draw(st.sampled_from(PREDICTION_DOMAINS))},
    }
    if two_predictions and draw(st.integers(0, 5)) == 0:
        inputs["s"] = {"role": "prediction", "domain": "positive"}
    params = {name: draw(param_decl()) for name in ["pa", "pb"][: draw(st.sampled_from([1, 0, 2]))]}
    names = ["yhat", "y", *[n for n in inputs if n not in ("y", "yhat")], *params]
    let = {}
    if draw(st.integers(0, 3)) == 0:
        let["r"] = draw(st.sampled_from(["yhat - y", "y - yhat", "y * yhat", "yhat / (1 + abs(y))"]))
        names.append("r")
    body = draw(expression(names, depth, leaf=False))
    # keep a prediction in the loss (a loss without one is refused, a case of its own below)
    mentions = re.search(r"\b(yhat|s|r)\b", body)
    expr = body if mentions and draw(st.integers(0, 7)) else f"{body} + {draw(st.sampled_from(ANCHORS))}"
    return Case(expr, inputs, params, let)


# --- spec files ------------------------------------------------------------------

HOSTILE = [
    "", " ", "\x00", "\\", '"', "'''", "\n", "}}{{", "{% raw %}", "__import__('os').system('true')",
    "<script>alert(1)</script>", "é", "ÿ", "名前", "\u202e", "\ufeff", "𝔁", "y\u0301hat", "yhat\n#", "NaN", "inf",
    "1e309", "-0", "lambda: 0", "yhat.__class__", "yhat[0]", "f'{yhat}'", "yhat if y else 0", "(" * 50 + "yhat" + ")" * 50,
    "x" * 300, "Sum(yhat, k)", "True", "None", "exp", "exp(", "yhat ** 0.5 ** 0.5", "max()", "xlogy(yhat)",
    "Piecewise((yhat, yhat < 0))", "Piecewise((yhat, 1 < yhat < 2), (0, True))", "yhat == y",
]
TOML_VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, -1, 10**18, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.sampled_from(["a", 1, True]), max_size=3),
)
VALID_EXPRS = ["(yhat - y)**2", "abs(yhat - y)", "log(cosh(yhat - y))", "delta * softplus(yhat) - y * yhat",
               "Piecewise(((yhat - y)**2, abs(yhat - y) < delta), (delta * abs(yhat - y), True))", "yhat**delta"]


def toml_value(value) -> str:
    """``value`` as TOML (strings escaped as basic strings; a list inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0xD800 or ord(ch) > 0xDFFF else "?")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def spec_tables(draw, name: str) -> dict:
    """A spec table that starts valid and has some fields broken: wrong types,
    hostile text, missing keys, unknown keys, huge numbers."""
    table = {
        "name": name,
        "title": "Fuzz",
        "kind": "elementwise",
        "description": "A fuzzed loss.",
        "loss": draw(st.sampled_from(VALID_EXPRS)),
        "inputs": {"y": "target", "yhat": {"role": "prediction", "domain": "real"}},
        "params": {"delta": {"default": 1.0, "positive": True}},
    }
    paths = [("name",), ("title",), ("kind",), ("description",), ("loss",), ("references",), ("inputs",),
             ("inputs", "y"), ("inputs", "yhat", "role"), ("inputs", "yhat", "domain"), ("params",),
             ("params", "delta"), ("params", "delta", "default"), ("params", "delta", "positive"),
             ("params", "delta", "min"), ("params", "delta", "max"), ("let",), ("let", "r"), ("derivatives",),
             ("derivatives", "delta"), ("params", "delta", "differentiable"), ("inputs", "z"), ("params", "q"),
             ("bogus",), ("row",)]
    for path in draw(st.lists(st.sampled_from(paths), max_size=4, unique=True)):
        action = draw(st.sampled_from(["set", "set", "delete", "table"]))
        node = table
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if action == "delete":
            node.pop(path[-1], None)
        elif action == "table":
            node[path[-1]] = {draw(st.sampled_from(["role", "default", "x", "é"])): draw(TOML_VALUES)}
        else:
            node[path[-1]] = draw(TOML_VALUES)
    return table


def toml_text(table: dict) -> str:
    """Render a table with nested tables as [sections] (one level, as spec files use)."""
    lines, sections = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            sections.append((key, value))
        else:
            lines.append(f"{toml_value(key)} = {toml_value(value)}")
    for key, value in sections:
        lines.append(f"\n[{toml_value(key)}]")
        for k, v in value.items():
            lines.append(f"{toml_value(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


spec_garbage = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["name = ", "[inputs", "loss = '''", "name = \"x\"\n" * 3, "\ufeffname = \"fuzz\""]),
)
