"""What a finished prompt produced, read from its /history entry (protocol §7).

`outputs` maps each output node to its UI payload: lists under keys such as `images` (SaveImage,
PreviewImage, SaveAnimatedWEBP), `gifs` (VideoHelperSuite's VHS_VideoCombine, also for MP4),
`audio` (SaveAudio) or `video`. An entry with a `filename` is a file to fetch with /view; strings
under `text` (PreviewAny and similar nodes) are text handed back inline. Anything else (such as
`animated: [true]` beside an animated WebP) describes a file and is not one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import ImageRef

TEXT_KEY = "text"


@dataclass(frozen=True, slots=True)
class OutputItem:
    """One output of one node: a file on the server (`ref`) or a piece of text (`text`)."""

    node_id: str
    kind: str  # the key it was listed under
    position: int  # its place in that list
    ref: ImageRef | None = None
    text: str | None = None


def output_items(entry: dict[str, Any]) -> list[OutputItem]:
    """Every output of every node, in the order the entry lists them."""
    items: list[OutputItem] = []
    for node_id, payload in (entry.get("outputs") or {}).items():
        if not isinstance(payload, dict):
            continue
        for kind, values in payload.items():
            if not isinstance(values, list):
                continue
            for position, value in enumerate(values):
                if isinstance(value, dict) and "filename" in value:
                    items.append(OutputItem(str(node_id), str(kind), position, ref=ImageRef.from_wire(value)))
                elif kind == TEXT_KEY and isinstance(value, str):
                    items.append(OutputItem(str(node_id), str(kind), position, text=value))
    return items
