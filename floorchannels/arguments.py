"""Validate a browser's kwargs against a handler's signature and type hints.

Browsers send JSON, so only JSON-shaped hints are enforced: ``str``, ``int``, ``float``,
``bool``, ``None``, ``list[...]``, ``dict[str, ...]``, ``tuple``, unions, ``Optional``,
``Literal`` and ``Any``. A hint outside that set is not checked (the handler still gets the
value). Values are never coerced: ``"1"`` is not an ``int``.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any


class InvalidArguments(Exception):
    """The kwargs do not fit the handler; the message names the argument."""


class ArgumentSpec:
    """The parameters a handler accepts after its first (window) parameter."""

    def __init__(self, func: Callable[..., Any]) -> None:
        signature = inspect.signature(func)
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"{func.__qualname__} must take the window as its first parameter.")
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolvable forward references: check names only
            hints = {}
        self.accepts_any = any(p.kind is p.VAR_KEYWORD for p in params)
        self.params: dict[str, tuple[bool, Any]] = {}
        for param in params[1:]:
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if param.kind is param.POSITIONAL_ONLY:
                raise TypeError(f"{func.__qualname__}: parameter {param.name!r} cannot be positional-only.")
            required = param.default is param.empty
            self.params[param.name] = (required, hints.get(param.name, Any))

    def validate(self, kwargs: dict[str, Any]) -> None:
        for name in kwargs:
            if name not in self.params and not self.accepts_any:
                raise InvalidArguments(f"Unexpected argument {name!r}.")
        for name, (required, hint) in self.params.items():
            if name not in kwargs:
                if required:
                    raise InvalidArguments(f"Missing argument {name!r}.")
                continue
            if not matches(kwargs[name], hint):
                raise InvalidArguments(f"Argument {name!r} must be {describe(hint)}.")


def matches(value: Any, hint: Any) -> bool:
    """True when a JSON value fits ``hint`` (unknown hints always fit)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, list):
            return False
        if origin is list and args:
            return all(matches(item, args[0]) for item in value)
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return all(matches(item, args[0]) for item in value)
            return len(args) == len(value) and all(matches(v, a) for v, a in zip(value, args, strict=True))
        return True
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            return False
        if args:
            return all(matches(item, args[1]) for item in value.values())
        return True
    return True


def describe(hint: Any) -> str:
    if isinstance(hint, type):
        return {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "list": "a list",
            "dict": "an object",
            "tuple": "a list",
        }.get(hint.__name__, hint.__name__)
    return str(hint).replace("typing.", "")
