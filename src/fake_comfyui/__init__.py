"""A protocol-faithful fake ComfyUI server for tests, benchmarks and demos.

Run `python -m fake_comfyui --port 0`, or in-process:

    async with FakeComfyUI(port=0) as fake:
        ...
"""

from .errors import (
    ExecutionInterrupted,
    FakeComfyError,
    MalformedRequest,
    NodeExecutionError,
    RequestRejected,
)
from .server import FakeComfyUI, ServerState

__all__ = [
    "ExecutionInterrupted",
    "FakeComfyError",
    "FakeComfyUI",
    "MalformedRequest",
    "NodeExecutionError",
    "RequestRejected",
    "ServerState",
]
