"""What a batch shows while it runs: one bar per running job and an overall bar with an ETA.

On a terminal the bars redraw in place (rich); elsewhere (a pipe, a CI log) one line per finished
input is printed instead."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class OverallOnly(ProgressColumn):
    """A column shown on the overall bar only (a job's own count or ETA would say nothing)."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self._column = column

    def render(self, task: Task) -> Text:
        if not task.fields.get("overall"):
            return Text("")
        rendered = self._column.render(task)
        return rendered if isinstance(rendered, Text) else Text(str(rendered))


class BatchProgress:
    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(bar_width=30), TaskProgressColumn(),
            OverallOnly(MofNCompleteColumn()), TimeElapsedColumn(), OverallOnly(TextColumn("eta")),
            OverallOnly(TimeRemainingColumn()), TextColumn("{task.fields[info]}"),
            console=console, disable=not self.live, refresh_per_second=8)
        self._overall = self._progress.add_task("[bold]overall", total=total, info="", overall=True)
        self._jobs: dict[str, TaskID] = {}

    def __enter__(self) -> BatchProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def started(self, name: str) -> None:
        self._jobs[name] = self._progress.add_task(f"  {name}", total=100, info="uploading")

    def update(self, name: str, percent: float, info: str) -> None:
        self._progress.update(self._jobs[name], completed=percent, info=info)

    def finished(self, name: str, ok: bool, info: str) -> None:
        task = self._jobs.pop(name, None)
        if task is not None:
            self._progress.remove_task(task)
        self._progress.advance(self._overall)
        if not self.live:
            self.console.print(f"{'done' if ok else 'FAILED'}  {name}  {info}", highlight=False)
