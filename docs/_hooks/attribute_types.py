"""Griffe extension used by the API reference: fill the "Type" of instance attributes.

A class documents its attributes in an ``Attributes:`` section, and mkdocstrings takes each
type from the attribute's annotation. Attributes assigned in ``__init__`` without one
(``self.method = method``) would leave the column empty. This reads the type from the code
instead, when the assignment says it:

- ``self.x = x`` where ``x`` is an annotated ``__init__`` parameter: the parameter's type;
- ``self.x = float(...)`` (``int``, ``bool``, ``str``, ``tuple``, ``list``, ``dict``): that type,
  also inside ``None if ... else float(...)`` (then ``float | None``);
- a list comprehension: ``list``.

Anything else stays as the code left it; an explicit annotation always wins.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_BUILTIN = "float|int|bool|str|tuple|list|dict|set"
_CALL = re.compile(rf"({_BUILTIN})\(.*\)", re.DOTALL)
_OPTIONAL_CALL = re.compile(rf"None if .+ else ({_BUILTIN})\(.*\)", re.DOTALL)


def infer(value: Any, params: dict[str, Any]) -> Any:
    """The type an assignment's right-hand side states, or ``None`` when it states none."""
    if value is None:
        return None
    text = str(value).strip()
    if params.get(text) is not None:
        return params[text]
    if m := _OPTIONAL_CALL.fullmatch(text):
        return f"{m.group(1)} | None"
    if m := _CALL.fullmatch(text):
        return m.group(1)
    if text.startswith("[") and " for " in text:
        return "list"
    return None


class AttributeTypes(griffe.Extension):
    """Give unannotated instance attributes the type their assignment states (see above)."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        init = cls.members.get("__init__")
        params: dict[str, Any] = {}
        if isinstance(init, griffe.Function):
            params = {p.name: p.annotation for p in init.parameters}
        for member in cls.members.values():
            if member.is_alias or not member.is_attribute or member.annotation is not None:
                continue
            member.annotation = infer(member.value, params)
