"""HTTP calls to one ComfyUI server, with errors mapped to the gateway's exception tree.

Mapping at this boundary:
    refused / reset / timeout / malformed answer / any 5xx   -> UpstreamUnavailable (retry elsewhere)
    an answer past its size cap (ClientLimits)              -> UpstreamUnavailable
    an output file past MAX_RESULT_BYTES                    -> ResultTooLarge (not retried)
    POST /prompt 400, or 200 with non-empty node_errors      -> WorkflowRejected
    413 on upload                                           -> PayloadTooLarge
    any other unexpected 4xx                                -> UpstreamError (not retryable)

The client borrows an aiohttp session (the gateway owns one for all servers) and holds no other
resource, so it needs no closing. It never sends an Origin header: ComfyUI answers 403 to an
Origin that does not match its host (protocol §0).
"""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, NoReturn

import aiohttp
from yarl import URL

from comfy_gateway import fast_json
from comfy_gateway.errors import (
    PayloadTooLarge,
    ResultTooLarge,
    UpstreamError,
    UpstreamUnavailable,
    WorkflowRejected,
)

from . import wire
from .models import CancelOutcome, ClientLimits, ClientTimeouts, ImageRef, QueueState, Submitted

_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
_CHUNK = 1024 * 1024  # read as much as has arrived, up to this: fewer writes (thread hops) per file
_JSON_HEADERS = {"Content-Type": "application/json"}


class ComfyClient:
    """One ComfyUI server, addressed by `base_url` (e.g. `http://127.0.0.1:8188`)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeouts: ClientTimeouts | None = None,
        limits: ClientLimits | None = None,
    ) -> None:
        url = URL(base_url)
        if not url.is_absolute() or url.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if "Origin" in session.headers:
            raise ValueError("the session sends an Origin header; ComfyUI would answer 403")
        path = url.path if url.path.endswith("/") else url.path + "/"
        self._base = url.with_path(path).with_query(None).with_fragment(None)
        self.base_url = str(self._base)
        self.name = f"{url.host}:{url.port}"
        self.timeouts = timeouts or ClientTimeouts()
        self.limits = limits or ClientLimits()
        self._session = session

    def __repr__(self) -> str:
        return f"ComfyClient({self.name})"

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    def ws_url(self, client_id: str) -> URL:
        scheme = "wss" if self._base.scheme == "https" else "ws"
        return self._base.join(URL("ws")).with_scheme(scheme).with_query(clientId=client_id)

    # ---------------------------------------------------------------- prompts

    async def submit(
        self,
        graph: dict[str, Any],
        *,
        client_id: str,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
    ) -> Submitted:
        """POST /prompt. Returns once the prompt is queued; validation errors raise WorkflowRejected."""
        body: dict[str, Any] = {"prompt": graph, "client_id": client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = extra_data
        async with self._request("POST", "prompt", self.timeouts.submit, data=fast_json.dumps(body),
                                 headers=_JSON_HEADERS) as resp:
            if resp.status == 400:
                raise await self._rejection(resp, prompt_id)
            self._check_status(resp, "POST /prompt")
            answer = wire.validated(wire.PromptAnswer, await self._json(resp), "POST /prompt", self.name)
        submitted = Submitted(prompt_id=answer.prompt_id, number=answer.number)
        if answer.node_errors:
            # The valid branches were queued and would run; take the prompt back before refusing it.
            with contextlib.suppress(UpstreamError):
                await self.cancel(submitted.prompt_id)
            raise WorkflowRejected(
                _describe_node_errors("Part of the workflow failed validation", answer.node_errors),
                instance=self.name,
                prompt_id=submitted.prompt_id,
                error_type="prompt_outputs_failed_validation",
                node_errors={node: entry.model_dump(exclude_unset=True) for node, entry in answer.node_errors.items()},
            )
        return submitted

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The /history entry of a finished prompt; None while queued, running, or unknown."""
        async with self._request("GET", f"history/{prompt_id}", self.timeouts.history) as resp:
            self._check_status(resp, "GET /history")
            answer = await self._json(resp)
        return wire.history_entry(answer, prompt_id, "GET /history", self.name)

    async def queue(self) -> QueueState:
        async with self._request("GET", "queue", self.timeouts.history) as resp:
            self._check_status(resp, "GET /queue")
            answer = await self._json(resp)
        running, pending = wire.queue_prompt_ids(answer, "GET /queue", self.name)
        return QueueState(running=running, pending=pending)

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts; the running one is not touched (protocol §10)."""
        await self._post_empty("queue", {"delete": list(prompt_ids)})

    async def clear_queue(self) -> None:
        await self._post_empty("queue", {"clear": True})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt `prompt_id` if it is the running prompt, or whatever runs when None."""
        await self._post_empty("interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    async def cancel(self, prompt_id: str) -> CancelOutcome:
        """Take a prompt back: delete it if pending, interrupt it if running."""
        state = await self.queue()
        if prompt_id in state.pending:
            await self.delete_queued([prompt_id])
            # It may have started between the two calls; an interrupt for a prompt that is
            # not running is a no-op on the server.
            await self.interrupt(prompt_id)
            return CancelOutcome.DEQUEUED
        if prompt_id in state.running:
            await self.interrupt(prompt_id)
            return CancelOutcome.INTERRUPTED
        return CancelOutcome.NOT_FOUND

    # ----------------------------------------------------------------- files

    async def upload_image(
        self,
        data: bytes,
        filename: str,
        *,
        subfolder: str = "",
        overwrite: bool = False,
        image_type: str = "input",
    ) -> ImageRef:
        """POST /upload/image. Use the returned name: the server renames on a clash (§4)."""
        form = aiohttp.FormData()
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        form.add_field("image", data, filename=filename, content_type=content_type)
        if overwrite:
            form.add_field("overwrite", "true")
        if subfolder:
            form.add_field("subfolder", subfolder)
        form.add_field("type", image_type)
        async with self._request("POST", "upload/image", self.timeouts.submit, data=form) as resp:
            if resp.status == 413:
                raise PayloadTooLarge(
                    "image larger than the server accepts", instance=self.name, filename=filename
                )
            self._check_status(resp, "POST /upload/image")
            answer = wire.validated(wire.UploadAnswer, await self._json(resp), "POST /upload/image", self.name)
        return ImageRef(filename=answer.name, subfolder=answer.subfolder or "", type=answer.type or image_type)

    async def view(self, ref: ImageRef) -> bytes:
        """The bytes of one file (GET /view)."""
        chunks = [chunk async for chunk in self.view_stream(ref)]
        return b"".join(chunks)

    async def view_stream(self, ref: ImageRef) -> AsyncGenerator[bytes, None]:
        """The bytes of one file, in chunks as they arrive.

        The response is released when the iterator ends; wrap it in `contextlib.aclosing` when
        the loop may stop early. The `view` timeout bounds each wait for data, not the whole
        transfer (the job's deadline bounds that); a file past `max_result_bytes`, announced or
        counted, raises ResultTooLarge.
        """
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        try:
            async with self._session.get(
                self._base.join(URL("view")),
                params=params,
                timeout=aiohttp.ClientTimeout(sock_connect=self.timeouts.connect, sock_read=self.timeouts.view),
            ) as resp:
                if resp.status == 404:
                    raise UpstreamError("output file not found", instance=self.name, filename=ref.filename)
                self._check_status(resp, "GET /view")
                limit, seen = self.limits.max_result_bytes, 0
                if resp.content_length is not None and resp.content_length > limit:
                    raise self._too_large(ref, limit)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    seen += len(chunk)
                    if seen > limit:
                        resp.close()  # not drained: the rest of the file is never read
                        raise self._too_large(ref, limit)
                    yield chunk
        except _TRANSPORT_ERRORS as exc:
            self._unavailable("GET /view", exc)

    # ---------------------------------------------------------------- health

    async def system_stats(self) -> dict[str, Any]:
        """GET /system_stats with the short probe timeout: the readiness probe."""
        return wire.system_stats(await self._get_object("system_stats", self.timeouts.probe),
                                 "GET /system_stats", self.name)

    async def object_info(self) -> dict[str, Any]:
        """GET /object_info: every node class and its inputs (about 0.5 MB on a stock server)."""
        return wire.object_info(await self._get_object("object_info", self.timeouts.history),
                                "GET /object_info", self.name)

    async def _get_object(self, path: str, total: float) -> dict[str, Any]:
        async with self._request("GET", path, total) as resp:
            self._check_status(resp, f"GET /{path}")
            answer = await self._json(resp)
        return wire.json_object(answer, f"GET /{path}", self.name)

    # -------------------------------------------------------------- plumbing

    def _timeout(self, total: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, sock_connect=self.timeouts.connect)

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, path: str, total: float, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        url = self._base.join(URL(path))
        try:
            async with self._session.request(method, url, timeout=self._timeout(total), **kwargs) as resp:
                yield resp
        except _TRANSPORT_ERRORS as exc:
            self._unavailable(f"{method} /{path}", exc)

    async def _post_empty(self, path: str, body: dict[str, Any]) -> None:
        async with self._request("POST", path, self.timeouts.history, json=body) as resp:
            self._check_status(resp, f"POST /{path}")
            await resp.read()

    async def _json(self, resp: aiohttp.ClientResponse) -> Any:
        what = f"{resp.method} {resp.url.path}"
        body = await wire.read_capped(resp, self.limits.max_json_bytes, what, self.name)
        return wire.parse_json(body, what, self.name)

    async def _rejection(self, resp: aiohttp.ClientResponse, prompt_id: str | None) -> WorkflowRejected:
        try:
            answer = await self._json(resp)
        except UpstreamUnavailable:
            answer = None
        return rejection(answer, instance=self.name, prompt_id=prompt_id)

    def _too_large(self, ref: ImageRef, limit: int) -> ResultTooLarge:
        return ResultTooLarge(f"output {ref.filename!r} is larger than MAX_RESULT_BYTES ({limit} bytes)",
                              instance=self.name, filename=ref.filename, max_result_bytes=limit)

    def _check_status(self, resp: aiohttp.ClientResponse, what: str) -> None:
        if resp.status >= 500:
            raise UpstreamUnavailable(f"{what}: HTTP {resp.status}", instance=self.name, status=resp.status)
        if resp.status >= 400:
            raise UpstreamError(f"{what}: HTTP {resp.status}", instance=self.name, status=resp.status)

    def _unavailable(self, what: str, exc: BaseException) -> NoReturn:
        reason = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise UpstreamUnavailable(f"{what} failed: {reason}", instance=self.name) from exc


def rejection(answer: Any, *, instance: str, prompt_id: str | None) -> WorkflowRejected:
    """The WorkflowRejected of a 400 answer to POST /prompt; an unreadable one is rejected plainly."""
    parsed = wire.rejection_of(answer)
    if parsed is None:
        return WorkflowRejected("workflow rejected (HTTP 400)", instance=instance, prompt_id=prompt_id)
    node_errors = {node: entry.model_dump(exclude_unset=True) for node, entry in parsed.node_errors.items()}
    message = parsed.error.message or "workflow rejected"
    if parsed.error.details and not node_errors:
        message = f"{message} ({parsed.error.details})"
    return WorkflowRejected(
        _describe_node_errors(message, parsed.node_errors),
        instance=instance,
        prompt_id=prompt_id,
        error_type=parsed.error.type,
        node_errors=node_errors,
    )


def _describe_node_errors(message: str, node_errors: dict[str, wire.NodeError]) -> str:
    """`message: node 2 (ImageScaleBy): Required input is missing: scale_by; ...`"""
    parts = []
    for node_id, entry in node_errors.items():
        for err in entry.errors:
            text = err.message or "invalid"
            if err.details:
                text = f"{text}: {err.details}"
            parts.append(f"node {node_id} ({entry.class_type or '?'}): {text}")
    return f"{message}: {'; '.join(parts)}" if parts else message
