"""The harness's floor: the least a gateway can do in front of ComfyUI servers.

An event-driven pass-through with no persistence, no limits, no retries and no checks: the upload
goes into the graph, the prompt to the server with the fewest prompts in flight, the result is
kept in memory. It exists only to show what the benchmark harness and the fake servers cost on
this machine, so that the real gateway's figures can be read against it in the same run.

    python bench/floor.py      # PORT and COMFYUI_HOSTS from the environment, as the gateway
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.load import UPSCALE_GRAPH


@dataclass
class Job:
    id: str
    status: str = "processing"
    prompt_id: str | None = None
    instance: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: bytes | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Server:
    """One ComfyUI server: one WebSocket, its events routed to waiting prompts by prompt id."""

    def __init__(self, host: str, http: aiohttp.ClientSession) -> None:
        self.url, self.http = f"http://{host}", http
        self.client_id = uuid.uuid4().hex
        self.in_flight = 0
        self.waiting: dict[str, asyncio.Future[bool]] = {}

    async def listen(self) -> None:
        async with self.http.ws_connect(f"{self.url}/ws?clientId={self.client_id}", max_msg_size=0) as ws:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = msg.json()
                kind, data = event.get("type"), event.get("data") or {}
                if kind in ("execution_success", "execution_error"):
                    future = self.waiting.pop(data.get("prompt_id"), None)
                    if future is not None and not future.done():
                        future.set_result(kind == "execution_success")

    async def run(self, image: bytes) -> tuple[str, bytes | None]:
        graph = copy.deepcopy(UPSCALE_GRAPH)
        graph["8"]["inputs"]["image"] = base64.b64encode(image).decode("ascii")
        prompt_id = str(uuid.uuid4())
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[prompt_id] = future
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self.http.post(f"{self.url}/prompt", json=body) as resp:
            resp.raise_for_status()
        if not await future:
            return prompt_id, None
        async with self.http.get(f"{self.url}/history/{prompt_id}") as resp:
            ref = (await resp.json())[prompt_id]["outputs"]["10"]["images"][0]
        params = {k: ref[k] for k in ("filename", "subfolder", "type")}
        async with self.http.get(f"{self.url}/view", params=params) as resp:
            return prompt_id, await resp.read()


class Floor:
    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.jobs: dict[str, Job] = {}
        self.servers: list[Server] = []
        self.listeners: list[asyncio.Task[None]] = []
        self.running: set[asyncio.Task[None]] = set()

    async def start(self, app: web.Application) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.servers = [Server(h, self.http) for h in self.hosts]
        self.listeners = [asyncio.create_task(s.listen()) for s in self.servers]
        await asyncio.sleep(0.2)  # the sockets are open before the first prompt

    async def stop(self, app: web.Application) -> None:
        for task in [*self.listeners, *self.running]:
            task.cancel()
        await asyncio.gather(*self.listeners, *self.running, return_exceptions=True)
        await self.http.close()

    async def execute(self, job: Job, image: bytes) -> None:
        server = min(self.servers, key=lambda s: s.in_flight)
        server.in_flight += 1
        job.instance = server.url
        try:
            job.prompt_id, job.result = await server.run(image)
            job.status = "completed" if job.result is not None else "failed"
        except Exception:
            job.status = "failed"
        finally:
            server.in_flight -= 1
            job.finished_at = time.time()
            job.done.set()

    async def submit(self, request: web.Request) -> Job:
        form = await request.post()
        upload = form["imageFile"]
        assert isinstance(upload, web.FileField)
        job = Job(id=str(uuid.uuid4()))
        self.jobs[job.id] = job
        task = asyncio.create_task(self.execute(job, upload.file.read()))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return job

    async def async_task(self, request: web.Request) -> web.Response:
        job = await self.submit(request)
        return web.json_response({"job_id": job.id, "status": "pending"}, status=202)

    async def sync_task(self, request: web.Request) -> web.Response:
        job = await self.submit(request)
        await job.done.wait()
        if job.result is None:
            return web.json_response({"error": "failed"}, status=500)
        if request.headers.get("Accept", "").startswith("image/"):
            return web.Response(body=job.result, content_type="image/png", headers={"X-Prompt-ID": job.prompt_id or ""})
        uri = "data:image/png;base64," + base64.b64encode(job.result).decode("ascii")
        return web.json_response({"imageBase64": uri, "promptId": job.prompt_id, "jobId": job.id})

    async def info(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            return web.json_response({"error": "not found"}, status=404)
        finished = None if job.finished_at is None else dt.datetime.fromtimestamp(job.finished_at, dt.UTC).isoformat()
        return web.json_response({"job_id": job.id, "status": job.status, "prompt_id": job.prompt_id,
                                  "instance": job.instance, "finished_at": finished})

    async def stats(self, request: web.Request) -> web.Response:
        by_status: dict[str, int] = {}
        for job in self.jobs.values():
            by_status[job.status] = by_status.get(job.status, 0) + 1
        return web.json_response({"total": len(self.jobs), "byStatus": by_status, "by_status": by_status})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})


def build_app(hosts: list[str]) -> web.Application:
    floor = Floor(hosts)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(floor.start)
    app.on_cleanup.append(floor.stop)
    app.add_routes([
        web.get("/health", floor.health),
        web.get("/api/jobs/stats", floor.stats),
        web.get("/api/jobs/{job_id}/info", floor.info),
        web.post("/api/async/{task}", floor.async_task),
        web.post("/api/{task}", floor.sync_task),
    ])
    return app


def main() -> None:
    hosts = [h.strip() for h in os.environ["COMFYUI_HOSTS"].split(",") if h.strip()]
    web.run_app(build_app(hosts), host="127.0.0.1", port=int(os.environ.get("PORT", "3000")),
                access_log=None, print=None)


if __name__ == "__main__":
    main()
