"""Griffe extension used by the API reference: render reST markup found in docstrings.

sbflow's docstrings are Google style, but some use Sphinx roles such as :func:`couple`,
:class:`~sbflow.couplings.Coupling` or :math:`\\sigma^2`, which Markdown would show verbatim.
This rewrites them before mkdocstrings renders the docstring: cross-reference roles become code
spans (``~`` keeps the last component, as in Sphinx), :math: becomes inline KaTeX math and a
``.. math::`` block becomes display-style math on a line of its own.

It also renames a Google-style ``Example:`` section header to ``Examples:``: griffe parses only
the plural as an examples section (doctest ``>>>`` lines become code blocks); the singular would
be rendered as an admonition with the ``>>>`` lines read as nested block quotes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLES = "func|class|meth|mod|attr|exc|data|obj|const|type|ref"
_XREF = re.compile(rf":(?:py:)?(?:{_ROLES}):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_MATH = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::(?P<first>.*)\n"
    r"(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)*)",
    re.MULTILINE,
)
_EXAMPLE_HEADER = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)


def _xref(match: re.Match[str]) -> str:
    tilde, text = match.group(1), match.group(2).strip()
    if tilde and not match.group(3):
        text = text.rsplit(".", 1)[-1]
    return f"`{text}`"


def _math_block(match: re.Match[str]) -> str:
    lines = [match.group("first"), *match.group("body").splitlines()]
    body = " ".join(line.strip() for line in lines if line.strip())
    # Inline display style: a block would need to start at column 0, and docstrings indent it.
    return f"{match.group('indent')}\\(\\displaystyle {body}\\)\n\n"


def rewrite(text: str) -> str:
    """Replace Sphinx roles, ``.. math::`` blocks and ``Example:`` headers (see above)."""
    text = _EXAMPLE_HEADER.sub(r"\1Examples:", text)
    text = _MATH_BLOCK.sub(_math_block, text)
    text = _MATH.sub(lambda m: f"\\({m.group(1)}\\)", text)
    return _XREF.sub(_xref, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstring of every loaded object (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
