"""Turn a spec's expression string into a SymPy expression without eval.

The string is parsed with :mod:`ast` and walked against a whitelist: numbers,
declared names, arithmetic, comparisons, boolean connectives, ``Piecewise``
and a fixed table of functions.  Nothing in a spec file can run code, and
nothing can make the parser work without bound: text length, literal digits,
nesting depth, exact-number size, Piecewise branches and node counts are
checked against :mod:`symloss.limits` before the work they would cause.
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import sympy as sp

from .. import limits
from ..derive import primitives as prim
from ..derive.representable import float64_problem
from ..errors import SpecError
from .fields import CONSTANT_NAMES, FUNCTION_NAMES

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
# The loader reserves these names without importing SymPy (spec/fields.py): one list.
if set(FUNCTIONS) != FUNCTION_NAMES or set(CONSTANTS) != CONSTANT_NAMES:
    raise ImportError("spec/fields.py FUNCTION_NAMES/CONSTANT_NAMES differ from the parser's tables")

_COMPARES = {
    ast.Lt: sp.StrictLessThan,
    ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan,
    ast.GtE: sp.GreaterThan,
    ast.Eq: sp.Eq,  # for a parameter's limiting case, e.g. Piecewise((..., alpha == 0), ...)
}


# Left-associative operators whose chains (a + b - c + ...) are built in one
# step: a 10,000-term sum is one level of nesting, not 10,000.
_FAMILY = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul"}


def _family(node: ast.AST) -> str | None:
    return _FAMILY.get(type(node.op)) if isinstance(node, ast.BinOp) else None


def ast_depth(tree: ast.AST) -> int:
    """Nesting depth of a parsed expression, counted without recursion (chains count once)."""
    depth: dict[int, int] = {}
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, ready = stack.pop()
        children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, (ast.operator, ast.expr_context,
                                                                               ast.unaryop, ast.cmpop, ast.boolop))]
        if children and not ready:
            stack.append((node, True))
            stack.extend((c, False) for c in children)
            continue
        fam = _family(node)
        depth[id(node)] = max((depth[id(c)] if fam and c is node.left and _family(c) == fam else depth[id(c)] + 1
                               for c in children), default=1)
    return depth[id(tree)]


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
            digits = (node.end_col_offset - node.col_offset if node.lineno == node.end_lineno
                      else len(ast.get_source_segment(self.text, node) or ""))
            if digits > limits.MAX_LITERAL_DIGITS:
                raise self.fail(None, f"a number literal of {digits} characters is too long "
                                f"({limits.how_to_raise('MAX_LITERAL_DIGITS')})")
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(repr(node.value))
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise self.fail(node, f"unknown name '{node.id}' (declare it in [inputs], [params] or [let])")
        if _family(node):
            return self.chain(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            base, exponent = self.expr(node.left), self.expr(node.right)
            limits.check_power(base, exponent, lambda problem: self.fail(node, problem))
            return base**exponent
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.expr(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail(node, "a condition can only appear inside Piecewise")
        raise self.fail(node, f"unsupported syntax {type(node).__name__}")

    def chain(self, node: ast.BinOp) -> sp.Basic:
        """a + b - c ... or a * b / c ...: one SymPy Add or Mul, without recursing along the chain."""
        family, links, first = _family(node), [], node
        while _family(first) == family:
            links.append((first.op, first.right))
            first = first.left
        parts = [self.expr(first)]
        for op, right in reversed(links):
            value = self.expr(right)
            parts.append(-value if isinstance(op, ast.Sub) else 1 / value if isinstance(op, ast.Div) else value)
        out = sp.Add(*parts) if family == "add" else sp.Mul(*parts)
        limits.check_exact(out, lambda problem: self.fail(node, problem))
        return out

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
        if name == "exp" and len(args) == 1 and args[0].has(sp.log):
            # SymPy turns exp(n * log(b)) into b**n
            limits.check_power(args[0], args[0].as_coeff_Mul()[0], lambda problem: self.fail(node, problem))
        try:
            return functions[name](*args)
        except TypeError as exc:
            raise self.fail(node, f"bad arguments to {name}: {exc}") from None
        except (ValueError, ArithmeticError) as exc:  # max(1/0, 2): zoo is not comparable
            raise self.fail(node, f"cannot evaluate {name} of these arguments: {exc}") from None

    def piecewise(self, node: ast.Call) -> sp.Basic:
        if len(node.args) > limits.MAX_PIECEWISE_BRANCHES:
            raise self.fail(None, f"Piecewise with {len(node.args)} branches "
                            f"({limits.how_to_raise('MAX_PIECEWISE_BRANCHES')})")
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
    limits.check_text(text, source, field)
    text = text.strip()
    nested = limits.text_depth(text)  # Python's parser refuses 200 brackets with a vaguer message
    if nested > limits.MAX_DEPTH:
        raise SpecError(source, field, f"brackets nested {nested} deep ({limits.how_to_raise('MAX_DEPTH')})")
    try:
        with limits.recursion_headroom(len(text)):  # the AST of a + b + ... is as deep as it is long
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SpecError(source, field, f"syntax error in expression: {exc.msg}") from None
    except (RecursionError, MemoryError):  # the parser's own stack, e.g. 10,000 unary minuses
        raise SpecError(source, field, f"expression is nested too deeply to parse "
                        f"({limits.how_to_raise('MAX_DEPTH')})") from None
    except ValueError as exc:  # e.g. a null byte
        raise SpecError(source, field, f"cannot parse the expression: {exc}") from None
    depth = ast_depth(tree.body)
    if depth > limits.MAX_DEPTH:
        raise SpecError(source, field, f"expression is nested {depth} deep ({limits.how_to_raise('MAX_DEPTH')})")
    w = (walker or _Walker)(names, source, field, text)
    if functions is not None:
        w.functions = functions
    try:
        result = w.expr(tree.body)
    except (ValueError, ArithmeticError) as exc:  # SymPy evaluating constants: exp(exp(exp(1e5)))
        raise SpecError(source, field, f"a constant in the expression cannot be evaluated: {exc}") from None
    check_parsed(result, source, field)
    if result.has(sp.zoo, sp.nan) or result.has(sp.oo, -sp.oo):
        raise SpecError(source, field, "expression is undefined (division by zero or infinity)")
    return result


def check_parsed(expr: sp.Basic, source: str, field: str) -> None:
    """Size, depth, exact numbers and Piecewise branches of a parsed expression
    (with lets substituted, where a small text can stand for a large tree)."""
    def fail(problem: str) -> SpecError:
        return SpecError(source, field, problem)

    limits.check_expr(expr, fail)
    for node in limits.distinct_nodes(expr):
        if isinstance(node, sp.Rational):
            limits.check_exact(node, fail)
        elif isinstance(node, sp.Piecewise) and len(node.args) > limits.MAX_PIECEWISE_BRANCHES:
            raise fail(f"Piecewise with {len(node.args)} branches ({limits.how_to_raise('MAX_PIECEWISE_BRANCHES')})")
    problem = float64_problem(expr)
    if problem:
        raise fail(problem)
