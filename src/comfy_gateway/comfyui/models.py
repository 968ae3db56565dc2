"""Typed values exchanged with a ComfyUI server (see the protocol notes, §3-§8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds allowed for each phase of talking to one server."""

    connect: float = 3.0  # TCP connect, and the WebSocket handshake + first frame
    submit: float = 30.0  # POST /prompt (validation is synchronous), POST /upload/image
    history: float = 10.0  # GET /history, GET /queue, POST /queue, POST /interrupt
    view: float = 60.0  # GET /view: the longest wait for the next bytes of a download
    probe: float = 3.0  # GET /system_stats
    ws_heartbeat: float = 15.0  # ping interval on event sockets; a missing pong drops the socket


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Bytes a server's answers may take: past them the answer is refused, never read whole."""

    max_json_bytes: int = 32 * 1024 * 1024  # one JSON answer (/history, /queue, /prompt, ...)
    max_ws_frame_bytes: int = 16 * 1024 * 1024  # one WebSocket message (previews are binary frames)
    max_result_bytes: int = 64 * 1024 * 1024  # one output file fetched with /view


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A file on a server, as named by /upload/image, `executed` events and history outputs."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> ImageRef:
        return cls(
            filename=str(item["filename"]),
            subfolder=str(item.get("subfolder") or ""),
            type=str(item.get("type") or "output"),
        )

    @property
    def load_image_name(self) -> str:
        """The value a LoadImage node takes for this (input) file: `subfolder/name`."""
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to an accepted POST /prompt: the prompt is queued."""

    prompt_id: str
    number: float


@dataclass(frozen=True, slots=True)
class QueueState:
    """Prompt ids of GET /queue; `pending` in execution order (ascending `number`)."""

    running: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


class CancelOutcome(enum.Enum):
    DEQUEUED = "dequeued"  # it was pending and was removed
    INTERRUPTED = "interrupted"  # it was running; an interrupt for it was sent
    NOT_FOUND = "not_found"  # neither pending nor running (finished, deleted or never queued)


@dataclass(frozen=True, slots=True)
class RunResult:
    """A prompt that finished with `status_str == "success"`."""

    prompt_id: str
    instance: str
    outputs: dict[str, list[ImageRef]]  # node id -> images it produced, in order
    history: dict[str, Any]  # the raw /history entry (prompt, outputs, status, meta)
