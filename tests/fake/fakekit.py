"""Helpers shared by the fake ComfyUI tests: images, workflows, a WebSocket event reader."""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from PIL import Image

WAIT = 5.0
Http = aiohttp.ClientSession


def png(size: tuple[int, int] = (64, 48), colour: tuple[int, ...] = (40, 120, 200),
        mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def square_on_background(size: int = 64, square: int = 28) -> bytes:
    """A red square centred on a white background."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    offset = (size - square) // 2
    image.paste((220, 20, 20), (offset, offset, offset + square, offset + square))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def scale_workflow(image: str, factor: float = 2.0, prefix: str = "gw_scale") -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageScaleBy",
              "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "scale_by": factor}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def b64_workflow(data: bytes, prefix: str = "gw_b64") -> dict[str, Any]:
    return {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": b64(data)}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def upscale_workflow(data: bytes, model: str = "4x_NMKD-Siax_200k.pth",
                     prefix: str = "gw_up") -> dict[str, Any]:
    return {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": b64(data)}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {"class_type": "ImageUpscaleWithModel",
              "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


async def post_prompt(http: aiohttp.ClientSession, url: str, prompt: Any, **extra: Any) -> tuple[int, Any]:
    body = {"prompt": prompt, **extra}
    async with http.post(f"{url}/prompt", json=body) as response:
        return response.status, await response.json()


async def submit(http: aiohttp.ClientSession, url: str, prompt: Any, **extra: Any) -> str:
    status, body = await post_prompt(http, url, prompt, **extra)
    assert status == 200, body
    return str(body["prompt_id"])


async def upload(http: aiohttp.ClientSession, url: str, data: bytes, filename: str = "gw_test.png",
                 field_name: str = "image", **fields: str) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field(field_name, data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    async with http.post(f"{url}/upload/image", data=form) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def get_json(http: aiohttp.ClientSession, url: str, path: str, **params: Any) -> Any:
    async with http.get(f"{url}{path}", params=params) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def view(http: aiohttp.ClientSession, url: str, ref: dict[str, str], content_type: str = "image/png") -> bytes:
    params = {"filename": ref["filename"], "subfolder": ref["subfolder"], "type": ref["type"]}
    async with http.get(f"{url}/view", params=params) as response:
        assert response.status == 200
        assert response.content_type == content_type, response.content_type
        return await response.read()




@dataclass
class Events:
    """A WebSocket and every JSON frame it has received so far."""

    ws: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str, client_id: str | None) -> Events:
        query = f"?clientId={client_id}" if client_id is not None else ""
        ws = await http.ws_connect(f"{url}/ws{query}")
        events = cls(ws)
        await events.next()  # the welcome status frame
        return events

    async def next(self, limit: float = WAIT) -> dict[str, Any]:
        message = await self.ws.receive(timeout=limit)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {message.type}")
        frame: dict[str, Any] = json.loads(message.data)
        self.frames.append(frame)
        return frame

    async def until(self, event: str, prompt_id: str | None = None, limit: float = WAIT) -> dict[str, Any]:
        while True:
            frame = await self.next(limit)
            if frame["type"] == event and (prompt_id is None or frame["data"].get("prompt_id") == prompt_id):
                return frame

    async def until_done(self, prompt_id: str, limit: float = WAIT) -> list[dict[str, Any]]:
        """Frames up to and including `executing` with node null for this prompt."""
        start = len(self.frames)
        while True:
            frame = await self.next(limit)
            data = frame["data"]
            final = frame["type"] == "executing" and data.get("node") is None
            if final and data.get("prompt_id") == prompt_id:
                return self.frames[start:]

    async def quiet(self, duration: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within `duration` (expected to be none in routing tests)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(await self.next(left))
            except TimeoutError:
                break
        return got

    def types(self, frames: list[dict[str, Any]] | None = None, skip: tuple[str, ...] = ()) -> list[str]:
        return [f["type"] for f in (self.frames if frames is None else frames) if f["type"] not in skip]

    async def close(self) -> None:
        await self.ws.close()
