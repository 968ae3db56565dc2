"""ComfyUI's HTTP routes (every one also under `/api`), backed by the server's parts."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .catalog import NodeCatalog
from .errors import MalformedRequest, RequestRejected
from .executor import Executor
from .history import History
from .hub import SERVER_FEATURES, WebSocketHub
from .knobs import Knobs
from .lies import Lie
from .prompt_queue import PromptQueue, QueueItem
from .stats import Stats
from .storage import Storage
from .validation import Rejected, top_error, validate_prompt
from .viewing import serve_view, store_upload

COMFYUI_VERSION = "0.3.64-fake"
INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
MODEL_FOLDERS = ("checkpoints", "loras", "vae", "upscale_models", "embeddings", "controlnet")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServerParts:
    """Everything the routes touch; built and owned by FakeComfyUI."""

    queue: PromptQueue
    executor: Executor
    history: History
    storage: Storage
    catalog: NodeCatalog
    hub: WebSocketHub
    knobs: Knobs
    stats: Stats
    name: str | None


def _host_is_loopback(host: str) -> bool:
    name = host.rsplit("]", 1)[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS or name.startswith("127.")


@web.middleware
async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 (empty) when a loopback server sees an Origin whose host:port differs from Host."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host", "")
    if origin is not None and _host_is_loopback(host) and urlsplit(origin).netloc != host:
        return web.Response(status=403)
    return await handler(request)


@web.middleware
async def error_responses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place package exceptions become HTTP responses."""
    try:
        return await handler(request)
    except MalformedRequest:
        return web.Response(status=500, text=INTERNAL_ERROR_TEXT, content_type="text/plain")
    except RequestRejected as exc:
        return web.Response(status=exc.status)


async def read_json(request: web.Request, *, optional: bool = False) -> Any:
    """Parse the body as JSON; an empty optional body is `{}`."""
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedRequest("body is not JSON") from exc


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedRequest("expected a JSON object")
    return value


def _memory() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3, 4 * 1024**3


class ComfyRoutes:
    """Route handlers of the ComfyUI API."""

    def __init__(self, parts: ServerParts) -> None:
        self._p = parts

    def register(self, app: web.Application) -> None:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self._p.hub.handle),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.interrupt),
            ("POST", "/free", self.free),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_in),
            ("GET", "/embeddings", self.empty_list),
            ("GET", "/extensions", self.empty_list),
        ]
        for method, path, handler in table:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)

    # -- info ------------------------------------------------------------------------------------

    async def system_stats(self, request: web.Request) -> web.Response:
        total, free = _memory()
        return web.json_response({
            "system": {
                "os": os.name, "ram_total": total, "ram_free": free, "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                "required_templates_version": "0.1.95", "python_version": sys.version,
                "pytorch_version": "none (fake_comfyui)", "embedded_python": False, "argv": list(sys.argv),
                "fake_name": self._p.name, "machine": platform.machine(),
            },
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
                         "torch_vram_total": total, "torch_vram_free": free}],
        })

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(dict(SERVER_FEATURES))

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._p.catalog.object_info(self._p.storage.input_files()))

    async def object_info_one(self, request: web.Request) -> web.Response:
        spec = self._p.catalog.get(request.match_info["node_class"])
        if spec is None:
            return web.json_response({})
        return web.json_response({spec.name: spec.object_info(self._p.storage.input_files())})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(list(MODEL_FOLDERS))

    async def models_in(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        if folder != "upscale_models":
            return web.json_response([])
        model_name = self._p.catalog.get("UpscaleModelLoader")
        spec = model_name.input("model_name") if model_name is not None else None
        return web.json_response(list(spec.choices) if spec is not None else [])

    async def empty_list(self, request: web.Request) -> web.Response:
        return web.json_response([])

    # -- prompts and queue -----------------------------------------------------------------------

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self._p.queue.depth()}})

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = _json_object(await read_json(request))
        try:
            number = self._p.queue.allocate_number(body)
        except (TypeError, ValueError) as exc:
            raise MalformedRequest("bad number") from exc
        if "prompt" not in body:
            self._p.stats.record_rejected()
            error = top_error("no_prompt", "No prompt provided", "No prompt provided")
            return web.json_response(Rejected(error).body(), status=400)
        targets = body.get("partial_execution_targets")
        result = validate_prompt(body["prompt"], self._p.catalog, self._p.storage.input_path,
                                 targets if isinstance(targets, list) else None)
        if isinstance(result, Rejected):
            self._p.stats.record_rejected()
            return web.json_response(result.body(), status=400)
        extra_data = dict(_json_object(body.get("extra_data", {})))
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        item = QueueItem(number, prompt_id, body["prompt"], extra_data, result.outputs, time.time())
        self._p.queue.put(item)
        self._p.stats.record_prompt(prompt_id, number, item.client_id, item.arrived_at)
        self._p.stats.observe_depth(self._p.queue.depth())
        await self._p.hub.broadcast_status(self._p.queue.depth())
        reply = {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
        return web.json_response(reply)

    async def get_queue(self, request: web.Request) -> web.Response:
        running = self._p.queue.running
        return web.json_response({
            "queue_running": [running.as_wire()] if running is not None else [],
            "queue_pending": [item.as_wire() for item in self._p.queue.pending()],
        })

    async def post_queue(self, request: web.Request) -> web.Response:
        body = _json_object(await read_json(request))
        if body.get("clear"):
            self._p.queue.clear()
        if "delete" in body:
            doomed = body["delete"]
            if not isinstance(doomed, list):
                raise MalformedRequest("delete must be a list")
            self._p.queue.delete(str(prompt_id) for prompt_id in doomed)
        await self._p.hub.broadcast_status(self._p.queue.depth())
        return web.Response(status=200)

    async def interrupt(self, request: web.Request) -> web.Response:
        body = await read_json(request, optional=True)
        prompt_id = body.get("prompt_id") if isinstance(body, Mapping) else None
        self._p.executor.interrupt(str(prompt_id) if prompt_id is not None else None)
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.Response:
        await read_json(request, optional=True)
        return web.Response(status=200)

    # -- history ---------------------------------------------------------------------------------

    async def get_history(self, request: web.Request) -> web.Response:
        try:
            max_items = int(request.query["max_items"]) if "max_items" in request.query else None
            offset = int(request.query.get("offset", -1))
        except ValueError as exc:
            raise MalformedRequest("bad paging parameter") from exc
        return web.json_response(self._p.history.page(max_items, offset))

    async def get_history_one(self, request: web.Request) -> web.StreamResponse:
        prompt_id = request.match_info["prompt_id"]
        lie = self._p.knobs.lies.about_prompt(prompt_id)
        if lie is not Lie.NONE:
            return await self._p.knobs.lies.history_answer(request, lie, prompt_id)
        return web.json_response(self._p.history.get(prompt_id))

    async def post_history(self, request: web.Request) -> web.Response:
        body = _json_object(await read_json(request))
        if body.get("clear"):
            self._p.history.clear()
        if isinstance(body.get("delete"), list):
            self._p.history.delete(body["delete"])
        return web.Response(status=200)

    # -- files -----------------------------------------------------------------------------------

    async def view(self, request: web.Request) -> web.StreamResponse:
        lie = self._p.knobs.lies.about_file(request.query.get("filename", ""))
        if lie is not Lie.NONE:
            return await self._p.knobs.lies.view_answer(request, lie)
        return await serve_view(request, self._p.storage, self._p.knobs.view_delay)

    async def upload_image(self, request: web.Request) -> web.Response:
        stored = await store_upload(request, self._p.storage)
        return web.json_response(stored.as_upload_reply())

