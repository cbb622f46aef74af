"""Parameters as typed records, and the one ``name=value`` parser for spec strings and ``--set``.

An optimizer declares its parameters as a frozen dataclass whose fields carry types and defaults
and whose ``__post_init__`` checks ranges. ``build_params`` turns user input (already typed, or
text from the command line) into that record, naming the parameter and what it expects when
something does not fit. The same ``parse_value`` reads the values of problem spec strings, so
``q=none`` means the same thing in ``ehrlich:...,q=none`` and in ``--set``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any


def parse_value(text: str) -> Any:
    """Text to a value: ``none``/``null`` (any case) -> None, ``true``/``false`` -> bool, then
    int, then float; anything else stays text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def split_assignment(text: str, context: str = "") -> tuple[str, str]:
    """``"name=value"`` -> ``(name, value text)``; ``context`` names where it came from."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        where = f" in {context}" if context else ""
        raise ValueError(f"expected name=value{where}, got {text!r}")
    return key.strip(), value.strip()


def parse_assignment(text: str, context: str = "") -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, parse_value(value))``."""
    key, value = split_assignment(text, context)
    return key, parse_value(value)


def close_matches(name: str, known) -> str:
    """`` (did you mean x?)`` for a misspelt or miscapitalized name, or nothing."""
    by_lower: dict[str, str] = {}
    for option in known:
        by_lower.setdefault(option.lower(), option)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=3)
    return f" (did you mean {', '.join(by_lower[m] for m in matches)}?)" if matches else ""


def accepts(kind, value) -> bool:
    """Whether ``value`` fits the annotation ``kind`` (int, float, bool, str, Optional[...])."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(arg, value) for arg in typing.get_args(kind))
    if origin is typing.Literal:
        return value in typing.get_args(kind)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return isinstance(value, kind)


def _admits_int(kind) -> bool:
    """Whether ``kind`` admits an integer as such (``int``, ``int | None``), not only as a float."""
    args = (typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType)
            else (kind,))
    return int in args


def describe(kind) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in typing.get_args(kind))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    names = {type(None): "none", bool: "true/false", int: "an integer", float: "a number",
             str: "text"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def build_params(cls: type, values: dict, owner: str):
    """An instance of the dataclass ``cls`` from ``values`` (missing fields take defaults).

    A text value is read with ``parse_value`` when what that gives fits the field's type, and kept
    as text otherwise (so ``none`` is None for ``float | None`` and the word "none" for ``str``).
    Raises ``ValueError`` naming ``owner``, the parameter and what it expects, for an unknown
    name, a value of the wrong type or one the record's own checks refuse."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    typed = {}
    for name, value in values.items():
        if name not in fields:
            raise ValueError(f"{owner} has no parameter {name!r}{close_matches(name, fields)}; "
                             f"its parameters: {', '.join(fields)}")
        kind = hints[name]
        if isinstance(value, str) and accepts(kind, parse_value(value)):
            value = parse_value(value)  # text from the command line: "none", "3", "0.5", "true"
        if not accepts(kind, value):
            raise ValueError(f"{owner}: parameter {name} must be {describe(kind)}, got {value!r}")
        if accepts(kind, 0.5) and not _admits_int(kind) and accepts(int, value):
            value = float(value)  # 1 and 1.0 are one configuration, recorded as 1.0
        typed[name] = value
    try:
        return cls(**typed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: {err}") from None


def params_dict(params) -> dict:
    """A parameter record as a JSON-ready dict, field by field (what the manifest records)."""
    return {field.name: getattr(params, field.name) for field in dataclasses.fields(params)}
