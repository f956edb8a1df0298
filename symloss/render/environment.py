"""The Jinja environments: strict, deterministic, templates found wherever installed.

``environment()`` renders Python source.  Its ``*.py.j2`` templates print
only what :func:`escape.python_value` allows (code marked by
:func:`escape.code`, numbers, identifiers, the output of ``|pydoc``,
``|pycomment``, ``|pystr``); printing spec text any other way is an error,
not an injection.  The check rides on Jinja's autoescape bookkeeping, whose
Markup HTML-escapes whatever it is combined with; :func:`check_template`
therefore refuses, when a template is compiled, the constructs that would
combine trusted output with other text (``~``, ``{% set %}``, filters outside
a short list, arithmetic or method calls on a macro's or filter's result).
``docs_environment()`` autoescapes HTML and gives Markdown templates ``|md``.
"""
from __future__ import annotations

import jinja2
from jinja2 import nodes

from .._paths import templates_dir
from . import escape

# Template folders whose renderers do not mark their code yet: rendered
# without the check (and without autoescape).  Empty it once they do.
UNCHECKED = ()

# Filters that make HTML, which is no protection in Python source.
_HTML_FILTERS = ("e", "escape", "forceescape", "safe", "xmlattr", "urlize")


def _checked(name: str | None) -> bool:
    return bool(name) and name.endswith(".py.j2") and not name.startswith(UNCHECKED)


@jinja2.pass_context
def _finalize(context, value):
    return escape.python_value(value) if _checked(context.name) else value


def _refuse(name: str):
    def refused(*args, **kwargs):
        raise escape.UnmarkedText(f"|{name} escapes for HTML, not Python; use |pydoc, |pycomment or |pystr")

    return refused


# What a checked template may apply: the serialisers, and filters that keep
# trusted text trusted (tojson makes a JSON string literal, valid Python).
ALLOWED_FILTERS = frozenset({"pydoc", "pycomment", "pystr", "tojson", "indent", "replace", "length"})
_FORBIDDEN = (nodes.Concat, nodes.Assign, nodes.AssignBlock, nodes.With, nodes.FilterBlock, nodes.CallBlock,
              nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.EvalContextModifier)
_ARITHMETIC = (nodes.BinExpr, nodes.UnaryExpr)


def _root(node: nodes.Node) -> nodes.Node:
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        node = node.node
    return node


def check_template(tree: nodes.Template, name: str) -> None:
    """Refuse constructs that could turn spec text into trusted output (see the module docstring)."""
    def fail(node, what):
        raise jinja2.TemplateSyntaxError(f"{what} is not allowed in a Python template (spec text could pass "
                                          "as code); compute it in the renderer", node.lineno, name)

    for node in tree.find_all(nodes.Node):
        if isinstance(node, _FORBIDDEN):
            fail(node, type(node).__name__)
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            fail(node, f"the filter |{node.name}")
        if isinstance(node, _ARITHMETIC) and any(isinstance(x, (nodes.Call, nodes.Filter)) for x in node.iter_child_nodes()):
            fail(node, "arithmetic on a call's or filter's result")
        if isinstance(node, nodes.Call) and not isinstance(_root(node.node), nodes.Name):
            fail(node, "a method call on a call's or filter's result")


class _PythonEnvironment(jinja2.Environment):
    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        if _checked(name) and isinstance(source, str):
            check_template(self.parse(source, name, filename), name)
        return super().compile(source, name, filename, raw, defer_init)


def _base(cls=jinja2.Environment, **options) -> jinja2.Environment:
    return cls(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **options,
    )


def environment() -> jinja2.Environment:
    """For generated Python modules (templates/cpu, templates/cuda, ...)."""
    # autoescape marks macro output as trusted (Markup); the finalize check
    # runs before it, so nothing unmarked ever reaches markupsafe's escape
    env = _base(_PythonEnvironment, autoescape=_checked, finalize=_finalize)
    env.filters.update(pydoc=escape.pydoc, pycomment=escape.pycomment, pystr=escape.pystr)
    env.filters.update({name: _refuse(name) for name in _HTML_FILTERS})
    return env


def docs_environment() -> jinja2.Environment:
    """For templates/docs: HTML autoescaped, Markdown through |md."""
    env = _base(autoescape=lambda name: bool(name) and name.endswith(".html.j2"))
    env.filters["md"] = escape.md
    return env
