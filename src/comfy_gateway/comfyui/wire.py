"""The one place where answers of a ComfyUI server are read and checked before anything trusts them.

A server that answers with a body over the size cap, with something that is not JSON, with JSON
nested deeper than the parser allows, or with values of the wrong type anywhere the gateway looks,
is at fault itself: each of those raises UpstreamUnavailable, so the job runs elsewhere. Parts of
an answer the gateway never reads (the graph echoed in /history, `meta`) are left unchecked.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, TypeAdapter, ValidationError

from comfy_gateway.errors import UpstreamUnavailable

_CHUNK = 64 * 1024


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class FileItem(_Wire):
    """An entry of a node's output that names a file to fetch with /view."""

    filename: StrictStr
    subfolder: StrictStr | None = ""
    type: StrictStr | None = "output"


NodeOutput = dict[StrictStr, Any]
"""A node's UI output: lists under keys such as `images`, `gifs`, `text` (the files they name are
checked by `check_node_output`); a custom node may add values of its own, which are not read."""


class HistoryStatus(_Wire):
    status_str: StrictStr | None = None
    completed: StrictBool | None = None
    messages: list[tuple[StrictStr, Any]] = Field(default_factory=list)


class HistoryEntry(_Wire):
    outputs: dict[StrictStr, NodeOutput] = Field(default_factory=dict)
    status: HistoryStatus | None = None


class EventError(_Wire):
    """`execution_error` / `execution_interrupted` data, as events or history messages carry it."""

    node_id: StrictStr | None = None
    node_type: StrictStr | None = None
    exception_type: StrictStr | None = None
    exception_message: StrictStr | None = None


class ErrorItem(_Wire):
    message: StrictStr | None = None
    details: StrictStr | None = None
    type: StrictStr | None = None


class NodeError(_Wire):
    """One node's entry under `node_errors` (protocol §3)."""

    errors: list[ErrorItem] = Field(default_factory=list)
    class_type: StrictStr | None = None


class Rejection(_Wire):
    """The body of a 400 answer to POST /prompt."""

    error: ErrorItem
    node_errors: dict[StrictStr, NodeError] = Field(default_factory=dict)


class PromptAnswer(_Wire):
    prompt_id: StrictStr
    number: float = 0
    node_errors: dict[StrictStr, NodeError] = Field(default_factory=dict)


class UploadAnswer(_Wire):
    name: StrictStr
    subfolder: StrictStr | None = ""
    type: StrictStr | None = None


class QueueAnswer(_Wire):
    """Items are `[number, prompt_id, prompt, extra_data, outputs]`; only the first two are read."""

    queue_running: list[list[Any]]
    queue_pending: list[list[Any]]


class Device(_Wire):
    vram_total: int | None = None
    vram_free: int | None = None


class SystemStats(_Wire):
    devices: list[Device] = Field(default_factory=list)


class NodeInputs(_Wire):
    required: dict[StrictStr, Any] = Field(default_factory=dict)
    optional: dict[StrictStr, Any] = Field(default_factory=dict)


class NodeInfo(_Wire):
    """One node class of /object_info; only its inputs are read (for their combo options)."""

    input: NodeInputs = Field(default_factory=NodeInputs)


class EventFrame(_Wire):
    type: StrictStr
    data: dict[StrictStr, Any]


_HISTORY = TypeAdapter(dict[StrictStr, Any])
_OBJECT = TypeAdapter(dict[StrictStr, Any])
_OBJECT_INFO = TypeAdapter(dict[StrictStr, NodeInfo])
_QUEUE_ITEM = TypeAdapter(tuple[float, StrictStr])
_NODE_OUTPUT = TypeAdapter(NodeOutput)
ModelT = TypeVar("ModelT", bound=BaseModel)


def malformed(what: str, instance: str, reason: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"malformed answer to {what}: {reason}", instance=instance)


def parse_json(body: bytes | str, what: str, instance: str) -> Any:
    """JSON of an answer; not JSON, or nested past the parser's depth: the server's fault."""
    try:
        return json.loads(body)
    except RecursionError:
        raise malformed(what, instance, "JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed(what, instance, f"not JSON ({exc})") from None


def validated(model: type[ModelT], value: Any, what: str, instance: str) -> ModelT:
    try:
        return model.model_validate(value)
    except (ValidationError, RecursionError) as exc:
        raise malformed(what, instance, _first_error(exc)) from None


def validated_json(model: type[ModelT], text: str | bytes, what: str, instance: str) -> ModelT:
    """`parse_json` and `validated` in one pass of pydantic's own parser (event frames: many per job)."""
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None


async def read_capped(resp: aiohttp.ClientResponse, limit: int, what: str, instance: str) -> bytes:
    """The whole body, refused once it passes `limit` bytes (announced or counted as it arrives)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise _too_large(what, instance, limit)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            resp.close()  # the rest is never read: drop the connection rather than drain it
            raise _too_large(what, instance, limit)
    return bytes(body)


def _too_large(what: str, instance: str, limit: int) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"the answer to {what} is larger than {limit} bytes", instance=instance,
                               limit_bytes=limit)


def history_entry(answer: Any, prompt_id: str, what: str, instance: str) -> dict[str, Any] | None:
    """The checked entry of `prompt_id` in a /history answer; None when it is not there yet."""
    if not answer:
        return None
    try:
        entries = _HISTORY.validate_python(answer)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None
    entry = entries.get(prompt_id)
    if entry is None:
        return None
    return check_entry(entry, what, instance)


def check_entry(entry: Any, what: str, instance: str) -> dict[str, Any]:
    """A history entry (from /history, or made of events), checked where the gateway reads it."""
    checked = validated(HistoryEntry, entry, what, instance)
    for output in checked.outputs.values():
        check_node_output(output, what, instance)
    assert isinstance(entry, dict)  # a validated model came from a mapping
    return entry


def check_node_output(output: Any, what: str, instance: str) -> dict[str, Any]:
    """A node's UI output: every entry that names a file names it with strings."""
    try:
        payload = _NODE_OUTPUT.validate_python(output)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None
    for values in payload.values():
        for value in values if isinstance(values, list) else ():
            if isinstance(value, dict) and "filename" in value:
                validated(FileItem, value, what, instance)
    return payload


def queue_prompt_ids(answer: Any, what: str, instance: str) -> tuple[list[str], list[str]]:
    """Running and pending prompt ids of a /queue answer, pending in execution order."""
    queue = validated(QueueAnswer, answer, what, instance)
    try:
        running = [_QUEUE_ITEM.validate_python(item[:2]) for item in queue.queue_running]
        pending = sorted(_QUEUE_ITEM.validate_python(item[:2]) for item in queue.queue_pending)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None
    return [pid for _, pid in running], [pid for _, pid in pending]


def rejection_of(answer: Any) -> Rejection | None:
    """A 400 answer to POST /prompt, or None when it does not say why in the usual shape."""
    try:
        return Rejection.model_validate(answer)
    except (ValidationError, RecursionError):
        return None


def json_object(answer: Any, what: str, instance: str) -> dict[str, Any]:
    try:
        return _OBJECT.validate_python(answer)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None


def system_stats(answer: Any, what: str, instance: str) -> dict[str, Any]:
    """A /system_stats answer whose `devices` (read for their memory) have the right types."""
    validated(SystemStats, answer, what, instance)
    return json_object(answer, what, instance)


def object_info(answer: Any, what: str, instance: str) -> dict[str, Any]:
    """An /object_info answer: node classes, each with `input.required` / `input.optional` objects."""
    try:
        _OBJECT_INFO.validate_python(answer)
    except ValidationError as exc:
        raise malformed(what, instance, _first_error(exc)) from None
    return json_object(answer, what, instance)


def _first_error(exc: ValidationError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    return f"{where}: {first['msg']}"
