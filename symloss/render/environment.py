"""The Jinja environments: strict, deterministic, templates found wherever installed.

``environment()`` renders Python source.  Its ``*.py.j2`` templates print
only what :func:`escape.python_value` allows (code marked by
:func:`escape.code`, numbers, identifiers, the output of ``|pydoc``,
``|pycomment``, ``|pystr``); printing spec text any other way is an error,
not an injection.  ``docs_environment()`` autoescapes HTML and gives Markdown
templates the ``|md`` filter.
"""
from __future__ import annotations

import jinja2

from .._paths import templates_dir
from . import escape

# Template folders whose renderers do not mark their code yet: rendered
# without the check (and without autoescape).  Empty it once they do.
UNCHECKED = ("torch/",)

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


def _base(**options) -> jinja2.Environment:
    return jinja2.Environment(
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
    env = _base(autoescape=_checked, finalize=_finalize)
    env.filters.update(pydoc=escape.pydoc, pycomment=escape.pycomment, pystr=escape.pystr)
    env.filters.update({name: _refuse(name) for name in _HTML_FILTERS})
    return env


def docs_environment() -> jinja2.Environment:
    """For templates/docs: HTML autoescaped, Markdown through |md."""
    env = _base(autoescape=lambda name: bool(name) and name.endswith(".html.j2"))
    env.filters["md"] = escape.md
    return env
