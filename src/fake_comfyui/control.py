"""The test-only control surface: POST /fake/control and GET /fake/stats.

Used when the fake runs as a subprocess. Body of POST /fake/control:
`{"action": ..., "n"?: int, "seconds"?: float, "message"?: str}`; actions are `pause`, `resume`,
`fail_next`, `hang_next`, `drop_sockets`, `service_time`, `model_load_time`, `view_delay`, `reset_stats`,
`exit` (answer first, then stop; the CLI process exits) and `lie_next` (`how`, `n`, `bytes`: see lies.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from .knobs import DEFAULT_FAILURE_MESSAGE
from .lies import DEFAULT_SIZE


class Controllable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def fail_next(self, n: int = 1, message: str = DEFAULT_FAILURE_MESSAGE) -> None: ...
    def hang_next(self, n: int = 1) -> None: ...
    def lie_next(self, how: str, n: int = 1, size: int = DEFAULT_SIZE) -> None: ...
    def set_service_time(self, seconds: float) -> None: ...
    def set_view_delay(self, seconds: float) -> None: ...
    def set_model_load_time(self, seconds: float) -> None: ...
    def reset_stats(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def request_exit(self) -> None: ...
    async def drop_sockets(self) -> None: ...


class _BadControl(Exception):
    """A control request that is answered with 400."""


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadControl(f"{key} must be an integer")
    return value


def _seconds(body: dict[str, Any]) -> float:
    value = body.get("seconds")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _BadControl("seconds must be a non-negative number")
    return float(value)


class ControlRoutes:
    def __init__(self, target: Controllable) -> None:
        self._target = target

    def register(self, app: web.Application) -> None:
        app.router.add_post("/fake/control", self.control)
        app.router.add_get("/fake/stats", self.stats)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._target.stats())

    async def control(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise _BadControl("body must be a JSON object")
            await self._apply(body)
        except ValueError:
            return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
        except _BadControl as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _apply(self, body: dict[str, Any]) -> None:
        target = self._target
        action = body.get("action")
        simple: dict[str, Callable[[], None]] = {
            "pause": target.pause,
            "resume": target.resume,
            "reset_stats": target.reset_stats,
            "exit": target.request_exit,
        }
        asynchronous: dict[str, Callable[[], Awaitable[None]]] = {"drop_sockets": target.drop_sockets}
        if action in simple:
            simple[action]()
        elif action in asynchronous:
            await asynchronous[action]()
        elif action == "fail_next":
            message = body.get("message", DEFAULT_FAILURE_MESSAGE)
            target.fail_next(_int(body, "n", 1), str(message))
        elif action == "hang_next":
            target.hang_next(_int(body, "n", 1))
        elif action == "lie_next":
            try:
                target.lie_next(str(body.get("how")), _int(body, "n", 1), _int(body, "bytes", DEFAULT_SIZE))
            except ValueError as exc:
                raise _BadControl(str(exc)) from None
        elif action == "service_time":
            target.set_service_time(_seconds(body))
        elif action == "view_delay":
            target.set_view_delay(_seconds(body))
        elif action == "model_load_time":
            target.set_model_load_time(_seconds(body))
        else:
            raise _BadControl(f"unknown action {action!r}")
