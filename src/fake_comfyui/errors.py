"""Exceptions of the fake ComfyUI server.

    FakeComfyError
     +-- NodeExecutionError      a node failed at run time (becomes `execution_error`)
     +-- ExecutionInterrupted    the running prompt was interrupted (becomes `execution_interrupted`)
     +-- RequestRejected         an HTTP request is refused with a given status and empty body
     +-- MalformedRequest        the body is not JSON of the expected shape (HTTP 500, like ComfyUI)
"""

from __future__ import annotations


class FakeComfyError(Exception):
    """Base class of every error raised by this package."""


class NodeExecutionError(FakeComfyError):
    """A node raised while executing; `exception_type` is reported on the wire as-is."""

    def __init__(self, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type


class ExecutionInterrupted(FakeComfyError):
    """The interrupt flag was seen at a progress point."""


class RequestRejected(FakeComfyError):
    """An HTTP request that ComfyUI answers with `status` and an empty body."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(reason or str(status))
        self.status = status


class MalformedRequest(FakeComfyError):
    """Body is not valid JSON, or JSON of the wrong shape."""
