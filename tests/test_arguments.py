from typing import Any, Literal, Optional

import pytest

from floorchannels.arguments import ArgumentSpec, InvalidArguments


def spec(func):
    return ArgumentSpec(func)


def test_type_hints_are_enforced_without_coercion():
    def handler(window, n: int, x: float, s: str, flag: bool, items: list[int], opts: dict[str, str]):
        pass

    good = {"n": 1, "x": 1, "s": "a", "flag": False, "items": [1, 2], "opts": {"k": "v"}}
    spec(handler).validate(good)
    for name, bad in [
        ("n", 1.0),
        ("n", "1"),
        ("x", True),
        ("s", 1),
        ("flag", 0),
        ("items", [1, "2"]),
        ("opts", {"k": 1}),
    ]:
        with pytest.raises(InvalidArguments, match=repr(name)):
            spec(handler).validate({**good, name: bad})


def test_optional_union_literal_and_any():
    def handler(window, a: Optional[int] = None, b: int | str = 0, c: Literal["x", "y"] = "x", d: Any = None):  # noqa: UP045
        pass

    spec(handler).validate({"a": None, "b": "s", "c": "y", "d": object()})
    with pytest.raises(InvalidArguments):
        spec(handler).validate({"c": "z"})
    with pytest.raises(InvalidArguments):
        spec(handler).validate({"b": None})


def test_var_keyword_accepts_anything():
    def handler(window, a: int, **rest):
        pass

    spec(handler).validate({"a": 1, "other": "x"})


def test_handler_needs_a_window_parameter():
    with pytest.raises(TypeError):
        spec(lambda: None)
    with pytest.raises(TypeError):
        spec(lambda *, a: None)
