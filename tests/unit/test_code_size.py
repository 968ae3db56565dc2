"""The house rule, checked: no function over 60 lines and no class over 300 in src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300


def _too_long() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_FUNCTION_LINES
            elif isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                where = path.relative_to(SRC)
                found.append(f"{where}:{node.lineno} {node.name} has {lines} lines (at most {limit})")
    return found


def test_no_function_over_60_lines_and_no_class_over_300() -> None:
    assert _too_long() == []


def test_the_check_sees_the_whole_tree() -> None:
    assert (SRC / "comfy_gateway" / "service.py").exists() and (SRC / "fake_comfyui").is_dir()
