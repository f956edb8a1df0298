"""Turn a spec's expression string into a SymPy expression without eval.

The string is parsed with :mod:`ast` and walked against a whitelist: numbers,
declared names, arithmetic, comparisons, boolean connectives, ``Piecewise``
and a fixed table of functions.  Nothing in a spec file can run code.
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import sympy as sp

from ..derive import primitives as prim
from ..errors import SpecError

# Names a user may call.  Each maps to a SymPy constructor taking positional args.
FUNCTIONS: dict[str, Callable[..., sp.Basic]] = {
    "exp": sp.exp,
    "log": sp.log,
    "log1p": lambda x: sp.log(1 + x),
    "expm1": lambda x: sp.exp(x) - 1,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "sign": sp.sign,
    "max": sp.Max,
    "Max": sp.Max,
    "min": sp.Min,
    "Min": sp.Min,
    "tanh": sp.tanh,
    "cosh": sp.cosh,
    "sinh": sp.sinh,
    "sigmoid": lambda x: 1 / (1 + sp.exp(-x)),
    "softplus": lambda x: sp.log(1 + sp.exp(x)),
    "xlogy": prim.xlogy,
}
# Closed forms of derivatives, for a [derivatives] table only (see general_robust.toml):
# they carry no derivative of their own.
DERIVATIVE_FUNCTIONS: dict[str, Callable[..., sp.Basic]] = {**FUNCTIONS, "barron_dalpha": prim.barron_dalpha}
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARES = {
    ast.Lt: sp.StrictLessThan,
    ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan,
    ast.GtE: sp.GreaterThan,
    ast.Eq: sp.Eq,  # for a parameter's limiting case, e.g. Piecewise((..., alpha == 0), ...)
}


class _Walker:
    functions: Mapping[str, Callable[..., sp.Basic]] = FUNCTIONS  # the callable names

    def __init__(self, names: Mapping[str, sp.Basic], source: str, field: str, text: str):
        self.names = names
        self.source = source
        self.field = field
        self.text = text

    def fail(self, node: ast.AST | None, problem: str) -> SpecError:
        where = ""
        if node is not None and hasattr(node, "col_offset"):
            token = ast.get_source_segment(self.text, node) or ""
            where = f" at '{token}'" if token else ""
        return SpecError(self.source, self.field, problem + where)

    def expr(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(node, f"unsupported constant {node.value!r}")
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(repr(node.value))
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise self.fail(node, f"unknown name '{node.id}' (declare it in [inputs], [params] or [let])")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self.expr(node.left), self.expr(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.expr(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail(node, "a condition can only appear inside Piecewise")
        raise self.fail(node, f"unsupported syntax {type(node).__name__}")

    def condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Constant) and node.value is True:
            return sp.true
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARES:
                raise self.fail(node, "use one comparison of <, <=, >, >= or == at a time")
            return _COMPARES[type(node.ops[0])](self.expr(node.left), self.expr(node.comparators[0]))
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        raise self.fail(node, "expected a condition (a comparison, 'and', 'or' or True)")

    def call(self, node: ast.Call) -> sp.Basic:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only plain function names can be called")
        if node.keywords:
            raise self.fail(node, "keyword arguments are not supported")
        name = node.func.id
        if name == "Piecewise":
            return self.piecewise(node)
        functions = self.functions
        if name not in functions:
            raise self.fail(node.func, f"unknown function '{name}'; allowed: {', '.join(sorted(functions))}, Piecewise")
        args = [self.expr(a) for a in node.args]
        try:
            return functions[name](*args)
        except TypeError as exc:
            raise self.fail(node, f"bad arguments to {name}: {exc}") from None

    def piecewise(self, node: ast.Call) -> sp.Basic:
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise self.fail(arg, "Piecewise takes (value, condition) pairs")
            pieces.append((self.expr(arg.elts[0]), self.condition(arg.elts[1])))
        if not pieces or pieces[-1][1] is not sp.true:
            raise self.fail(node, "Piecewise needs a default branch: make the last pair (value, True)")
        return sp.Piecewise(*pieces)


def parse_expression(text: str, names: Mapping[str, sp.Basic], *, source: str, field: str,
                     walker=None, functions: Mapping[str, Callable[..., sp.Basic]] | None = None) -> sp.Basic:
    """Parse ``text`` into SymPy using only ``names``, the function table and constants.

    ``walker(names, source, field, text)`` makes the AST walker (row specs
    pass one that also knows sums and subscripts).
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(source, field, "expected a non-empty expression string")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SpecError(source, field, f"syntax error in expression: {exc.msg}") from None
    w = (walker or _Walker)(names, source, field, text.strip())
    if functions is not None:
        w.functions = functions
    result = w.expr(tree.body)
    if result.has(sp.zoo, sp.nan) or result.has(sp.oo, -sp.oo):
        raise SpecError(source, field, "expression is undefined (division by zero or infinity)")
    return result
