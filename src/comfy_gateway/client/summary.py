"""The table a batch ends with."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from .batch import ItemResult, Outcome

STYLE = {Outcome.DONE: "green", Outcome.FAILED: "bold red", Outcome.SKIPPED: "dim"}


def print_summary(console: Console, results: list[ItemResult]) -> None:
    counts = Counter(r.outcome for r in results)
    table = Table(title="comfy-gateway batch", title_justify="left", show_lines=False)
    table.add_column("input")
    table.add_column("outcome")
    table.add_column("output / error", overflow="fold")
    table.add_column("seconds", justify="right")
    for r in results:
        if r.outcome is Outcome.SKIPPED:
            continue  # listed as a count below: a resumed batch would repeat every earlier row
        seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
        detail = r.item.output.name if r.outcome is Outcome.DONE else r.detail
        table.add_row(r.item.source.name, f"[{STYLE[r.outcome]}]{r.outcome.value}", detail, seconds)
    table.caption = (f"{counts[Outcome.DONE]} done, {counts[Outcome.FAILED]} failed, "
                     f"{counts[Outcome.SKIPPED]} skipped (output already there)")
    console.print(table)
