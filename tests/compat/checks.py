"""Checking a JSON body against a shape written as data, the way SEED-API.md writes its skeletons.

A shape is one of:
- a type name: "int", "num", "num2", "num3", "str", "bool", "iso", "epoch_ms", "pct2", "pctN", "uuid",
  "datauri", "range" ("30-60 seconds"), "any"; a trailing "?" also allows null; "absent": the key must not be
  there;
- a tuple: the value must be one of its items (a constant is a tuple of one);
- a dict: an object holding every listed key, in that order (other keys may stand between them);
  the key "*" gives the shape of every key not listed (a map such as `byType` or `instances`);
- a one-item list: an array whose every item has that shape.
"""

from __future__ import annotations

import re
from typing import Any

ABSENT = "absent"
PATTERNS = {
    "iso": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    "pct2": re.compile(r"(0|\d+\.\d\d)%"),
    "pctN": re.compile(r"(0|[1-9]\d*|0?\.\d*[1-9]|[1-9]\d*\.\d*[1-9])%"),
    "uuid": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
    "datauri": re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/]+=*"),
    "range": re.compile(r"\d+-\d+ seconds"),
}
DECIMALS = {"num2": 2, "num3": 3}


def _number_problem(value: Any, name: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number ({name}), got {value!r}"
    if isinstance(value, float) and value.is_integer():
        return f"a whole number must be sent without a decimal point, got {value!r}"
    if name == "int" and not isinstance(value, int):
        return f"expected an integer, got {value!r}"
    if name == "epoch_ms" and not (isinstance(value, int) and value > 10**12):
        return f"expected epoch milliseconds, got {value!r}"
    digits = DECIMALS.get(name)
    if digits is not None and round(value, digits) != value:
        return f"expected at most {digits} decimals, got {value!r}"
    return None


def _scalar_problem(value: Any, name: str) -> str | None:
    if name == "any":
        return None
    if name.endswith("?"):
        return None if value is None else _scalar_problem(value, name[:-1])
    if name in ("int", "num", "num2", "num3", "epoch_ms"):
        return _number_problem(value, name)
    if name == "bool":
        return None if isinstance(value, bool) else f"expected a boolean, got {value!r}"
    if not isinstance(value, str):
        return f"expected a string ({name}), got {value!r}"
    pattern = PATTERNS.get(name)
    if pattern is not None and not pattern.fullmatch(value):
        return f"expected {name}, got {value!r}"
    return None


def _object_problems(value: Any, shape: dict[str, Any], path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {value!r}"]
    problems: list[str] = []
    listed = [k for k in shape if k != "*"]
    for key in listed:
        if shape[key] == ABSENT:
            if key in value:
                problems.append(f"{path}.{key}: must be absent")
        elif key not in value:
            problems.append(f"{path}: missing key {key!r}")
        else:
            problems += problems_of(value[key], shape[key], f"{path}.{key}")
    present = [k for k in value if k in listed]
    expected = [k for k in listed if k in value]
    if present != expected:
        problems.append(f"{path}: keys out of the original's order: {present}")
    if "*" in shape:
        for key, item in value.items():
            if key not in shape:
                problems += problems_of(item, shape["*"], f"{path}[{key!r}]")
    return problems


def problems_of(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Every way `value` differs from `shape` (empty when it matches)."""
    if isinstance(shape, str):
        problem = _scalar_problem(value, shape)
        return [] if problem is None else [f"{path}: {problem}"]
    if isinstance(shape, tuple):
        return [] if value in shape else [f"{path}: expected one of {shape}, got {value!r}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r}"]
        return [p for n, item in enumerate(value) for p in problems_of(item, shape[0], f"{path}[{n}]")]
    return _object_problems(value, shape, path)
