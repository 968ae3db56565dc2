"""Which files a batch takes (files, folders, globs) and where each result goes."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class BadInputs(Exception):
    """The arguments name nothing to send, or two inputs would write the same output."""


@dataclass(frozen=True)
class BatchItem:
    source: Path
    output: Path


def collect(args: list[str]) -> list[Path]:
    """Every image the arguments name, each once, in a stable order.

    A file is taken as it is (the gateway judges it); a folder gives its images, recursively; any
    other argument is a glob pattern."""
    found: dict[Path, None] = {}
    for arg in args:
        path = Path(arg)
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            found.update(dict.fromkeys(sorted(p for p in path.rglob("*") if _is_image(p))))
        else:
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            if not matches:
                raise BadInputs(f"no such file, folder or matching pattern: {arg}")
            found.update(dict.fromkeys(p for p in matches if p.is_file()))
    if not found:
        raise BadInputs("no images found in the given inputs")
    return list(found)


def plan(sources: list[Path], out_dir: Path, task: str, fmt: str) -> list[BatchItem]:
    """Each input with its output: `<out-dir>/<input stem>.<task>.<ext>`."""
    items = [BatchItem(src, out_dir / f"{src.stem}.{task}.{EXTENSIONS[fmt]}") for src in sources]
    seen: dict[Path, Path] = {}
    for item in items:
        if item.output in seen:
            raise BadInputs(f"{seen[item.output]} and {item.source} would both be written to {item.output}")
        seen[item.output] = item.source
    return items


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
