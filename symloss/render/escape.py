"""How text reaches generated files: spec text is data, never code.

A spec's title, description, references and source path are free text; a
title such as ``x \"\"\" import os \"\"\"`` must not close a docstring.  Two
rules make that hold by construction:

* Python templates print only :class:`Code` (source that symloss built from
  validated identifiers and printed expressions, marked by :func:`code`),
  numbers, and plain identifiers.  Anything else is refused at render time
  (:func:`python_value`, the Python environment's ``finalize``), so spec text
  must pass through a serialiser: ``|pydoc`` (inside a docstring),
  ``|pycomment`` (on a ``#`` line) or ``|pystr`` (a string literal).
  environment.check_template refuses, at compile time, the template
  constructs that could launder text into trusted output.
* HTML templates autoescape; Markdown templates print spec text through
  ``|md``, which leaves nothing a Markdown renderer reads as markup.
"""
from __future__ import annotations

import copy
import dataclasses
import numbers
import re

from markupsafe import Markup


class Code(Markup):
    """Python source built by symloss, safe to print as it is.

    A subclass of markupsafe's marker type so that Jinja's autoescape
    machinery does the bookkeeping (macro output is trusted because every
    value printed inside it was checked).  Combining it with other text gives
    a plain, unmarked ``str`` (Markup would HTML-escape the other operand
    instead, which is no Python escaping): mark the result again if it is code.
    """

    __slots__ = ()

    def __add__(self, other):
        return str(self) + other if isinstance(other, str) else NotImplemented

    def __radd__(self, other):
        return other + str(self) if isinstance(other, str) else NotImplemented

    def __mod__(self, arg):
        return str(self) % arg

    def join(self, seq):
        return str(self).join(seq)

    def format(self, *args, **kwargs):
        return str(self).format(*args, **kwargs)

    def format_map(self, mapping):
        return str(self).format_map(mapping)

    def replace(self, old, new, count=-1):
        # stays code only if what goes in is code or an identifier (templates rename with |replace)
        out = str(self).replace(str(old), str(new), count)
        trusted = isinstance(new, Markup) or (isinstance(new, str) and _plain_identifier(new))
        return Code(out) if trusted else out

    def center(self, *args):
        return str(self).center(*args)

    def ljust(self, *args):
        return str(self).ljust(*args)

    def rjust(self, *args):
        return str(self).rjust(*args)


class UnmarkedText(TypeError):
    """A Python template tried to print text that is neither code nor serialised."""


def code(obj):
    """``obj`` with every string in it marked as :class:`Code` (lists, tuples, dicts, dataclasses).

    Only for text symloss printed itself; spec text goes through a filter.
    """
    if isinstance(obj, str):
        return obj if isinstance(obj, Code) else Code(obj)
    if isinstance(obj, dict):
        return {k: code(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)._make(code(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(code(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = copy.copy(obj)  # every attribute, also those set after construction
        names = list(vars(obj)) if hasattr(obj, "__dict__") else [f.name for f in dataclasses.fields(obj)]
        for name in names:
            object.__setattr__(out, name, code(getattr(obj, name)))  # frozen ones too
        return out
    return obj


# ---------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------
# Every character Python or an editor may take as the end of a line.  They are
# all non-printable, so _char escapes them; the set documents the intent and
# the tests iterate over it.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _char(c: str, quote: bool) -> str:
    if c == "\\":
        return "\\\\"
    if quote and c == '"':
        return '\\"'
    if c.isprintable() and c not in LINE_BREAKS:
        return c
    return repr(c)[1:-1]  # \n, \x0b, \u2028, \u202e (bidi controls are not printable either)


def pydoc(text) -> Code:
    """Text for a triple-double-quoted docstring: reads as the text, cannot end the string."""
    return Code("".join(_char(c, True) for c in str(text)))


# PEP 263: "coding[:=]" in a comment on line 1 or 2 sets the source encoding.
_CODING = re.compile(r"coding([:=])")


def pycomment(text) -> Code:
    """Text for the rest of a ``#`` line: one line, no encoding declaration."""
    line = "".join(_char(c, False) for c in str(text))
    return Code(_CODING.sub(lambda m: "coding\\x%02x" % ord(m.group(1)), line))


def pystr(text) -> Code:
    """A Python string literal with the value ``text``."""
    return Code(repr(str(text)))


def _plain_identifier(value: str) -> bool:
    # An identifier (or nothing) cannot leave any context it is printed in.
    return value == "" or (value.isidentifier() and value.isprintable())


def python_value(value):
    """The Python environment's ``finalize``: what a ``{{ ... }}`` may print."""
    if isinstance(value, Markup):  # Code, macro output, |tojson
        return value
    if isinstance(value, str):
        if _plain_identifier(value):
            return value
        shown = value if len(value) < 60 else value[:57] + "..."
        raise UnmarkedText(
            f"a Python template printed unmarked text {shown!r}: print spec text through "
            "|pydoc, |pycomment or |pystr, and mark generated source with symloss.render.escape.code()")
    if isinstance(value, bool) or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        return Code(str(value))
    if isinstance(value, numbers.Integral):
        return Code(str(int(value)))
    raise UnmarkedText(f"a Python template printed a {type(value).__name__}; print it as Code")


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------
# Backslash-escaped wherever they occur (CommonMark escapes any ASCII
# punctuation): emphasis, code, links and images, tables, math, strikethrough,
# attribute lists ({: ...} in Python-Markdown and kramdown), headings.
_MD_ESCAPE = set("\\`*_[]|$~{}#")
# HTML's own characters become entities, which every Markdown dialect decodes
# as text (Python-Markdown, unlike CommonMark, has no \< escape).
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# Block markers that only count at the start of a line: list items, setext and
# thematic-break underlines, ordered lists.
_MD_LEADING = re.compile(r"([-+=]|\d+[.)])")
# A code span of single backticks: its content is shown literally, so it may
# stay (descriptions write `weight`); no pipe, which would split a table cell,
# and no backtick beside it, which would make a longer run with other bounds.
_MD_CODE = re.compile(r"(?<!`)`[^`|]+`(?!`)")


def _md_plain(text: str) -> str:
    out = []
    for k, c in enumerate(text):
        if c == "_" and 0 < k < len(text) - 1 and text[k - 1].isalnum() and text[k + 1].isalnum():
            out.append(c)  # intraword: neither opens nor closes emphasis (snake_case stays readable)
        else:
            out.append(_MD_ENTITIES.get(c) or ("\\" + c if c in _MD_ESCAPE else c))
    return "".join(out)


def md(text) -> str:
    """Spec text for a Markdown line or table cell: literal, whatever it contains."""
    # one line: str.split() breaks at every Unicode line break and collapses indentation
    text = " ".join(str(text).split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    out, end = [], 0
    for m in _MD_CODE.finditer(text):
        out.append(_md_plain(text[end:m.start()]))
        out.append(m.group(0))
        end = m.end()
    out.append(_md_plain(text[end:]))
    escaped = "".join(out)
    lead = _MD_LEADING.match(escaped)
    if lead:
        escaped = escaped[: lead.end() - 1] + "\\" + escaped[lead.end() - 1:]
    return escaped
