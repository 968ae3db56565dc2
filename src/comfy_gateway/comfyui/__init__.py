"""Talking to ComfyUI servers: HTTP calls, WebSocket events, running one prompt."""

from .client import ComfyClient
from .events import EventHub
from .models import CancelOutcome, ClientTimeouts, ImageRef, QueueState, RunResult, Submitted
from .reconcile import PollPolicy
from .runner import attach, outputs_of, run_prompt
from .watch import PromptWatch, WatchOutcome

__all__ = [
    "CancelOutcome",
    "ClientTimeouts",
    "ComfyClient",
    "EventHub",
    "ImageRef",
    "PollPolicy",
    "PromptWatch",
    "QueueState",
    "RunResult",
    "Submitted",
    "WatchOutcome",
    "attach",
    "outputs_of",
    "run_prompt",
]
