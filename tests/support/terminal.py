"""A terminal for tests: a pseudo-terminal runs the command, pyte keeps the screen it draws."""

from __future__ import annotations

import io
import string
from pathlib import Path
from typing import Any

import pyte
from rich.console import Console
from rich.style import Style
from rich.text import Text

COLUMNS, LINES = 110, 36


class Screen:
    """What a person would see on a COLUMNS x LINES terminal after the bytes fed so far."""

    def __init__(self, columns: int = COLUMNS, lines: int = LINES) -> None:
        self.columns = columns
        self._screen = pyte.Screen(columns, lines)
        self._stream = pyte.Stream(self._screen)

    def feed(self, text: str) -> None:
        self._stream.feed(text)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self._screen.display]

    def rich_text(self) -> Text:
        """The screen with its colours, for rich to export."""
        out = Text()
        rows = self._screen.buffer
        last = max((y for y, line in enumerate(self.lines()) if line), default=0)
        for y in range(last + 1):
            for x in range(self.columns):
                char = rows[y][x]
                out.append(char.data, Style(color=_colour(char.fg), bold=char.bold))
            out.append("\n")
        return out

    def save_svg(self, path: Path, title: str) -> Path:
        console = Console(record=True, width=self.columns, file=io.StringIO(), color_system="truecolor")
        console.print(self.rich_text(), end="")
        path.write_text(console.export_svg(title=title), encoding="utf-8")
        return path


def _colour(name: str) -> str | None:
    if name == "default":
        return None
    if len(name) == 6 and all(c in string.hexdigits for c in name):
        return f"#{name}"
    name = name.replace("brown", "yellow")  # pyte's name for ANSI colour 3
    return name.replace("bright", "bright_") if name.startswith("bright") else name


def read_until_eof(child: Any, screen: Screen, timeout: float) -> None:
    import pexpect

    while True:
        try:
            chunk = child.read_nonblocking(65536, timeout=timeout)
        except pexpect.EOF:
            return
        screen.feed(chunk)
