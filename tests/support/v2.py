"""Helpers of the Comfy API v2 tests: a graph the fake servers run, and where inputs landed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOADER, INVERT, SAVE = "1", "2", "3"


def invert_graph(image: Any = "placeholder.png", prefix: str = "v2") -> dict[str, Any]:
    """An API-format graph: load the input image, invert it, save it."""
    return {
        LOADER: {"class_type": "LoadImage", "inputs": {"image": image}},
        INVERT: {"class_type": "ImageInvert", "inputs": {"image": [LOADER, 0]}},
        SAVE: {"class_type": "SaveImage", "inputs": {"images": [INVERT, 0], "filename_prefix": prefix}},
    }


def fake_holding(fakes: list[Any], name: str) -> list[Any]:
    """The fake servers whose input folder holds a file called `name`."""
    return [f for f in fakes if name in f.storage.input_files()]


def input_names(fakes: list[Any], keep: Callable[[str], bool]) -> set[str]:
    return {name for f in fakes for name in f.storage.input_files() if keep(name)}
