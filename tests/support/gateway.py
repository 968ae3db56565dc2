"""A real gateway (uvicorn on 127.0.0.1, a free port) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from comfy_gateway.app import create_app
from comfy_gateway.gateway import Gateway
from comfy_gateway.http_server import uvicorn_config
from comfy_gateway.observability.logging import close_logging, configure_logging
from comfy_gateway.service import JobService
from comfy_gateway.settings import Settings


@dataclass
class RunningGateway:
    url: str
    app: FastAPI
    server: uvicorn.Server
    client: httpx.AsyncClient
    fakes: list[Any] = field(default_factory=list)  # the fake servers behind it, when a test keeps them here

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    @property
    def service(self) -> JobService:
        return self.gateway.service

    async def wait_job(self, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for a job to finish, by the gateway's own notification (no polling loop)."""
        job = await self.service.wait(job_id, timeout)
        assert job.state.finished, f"job {job_id} still {job.state} after {timeout}s"
        resp = await self.client.get(f"/api/jobs/{job_id}/status")
        return resp.json()


def hosts_of(fakes: list[Any]) -> str:
    return ",".join(f.host_port for f in fakes)


def gateway_settings(data_dir: Path, hosts: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "comfyui_hosts": hosts, "port": 0, "data_dir": data_dir,
        "metrics_file_path": data_dir / "metrics" / "metrics.json",
        "health_check_interval": 500, "health_check_timeout": 1000,
        "job_timeout": 30_000, "shutdown_grace": 2_000, "lease_duration": 5_000,
        "max_concurrent_jobs": 4, "max_jobs_per_instance": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, **app_options: Any) -> AsyncIterator[RunningGateway]:
    """The gateway as `comfy-gateway serve` runs it: logs configured as the CLI does, then the app."""
    configure_logging(settings.log_level, settings.logs_dir)
    try:
        async with _serving(settings, **app_options) as running:
            yield running
    finally:
        close_logging()


@contextlib.asynccontextmanager
async def _serving(settings: Settings, **app_options: Any) -> AsyncIterator[RunningGateway]:
    app = create_app(settings, **app_options)
    server = uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=0))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("gateway did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        try:
            yield RunningGateway(url, app, server, client)
        finally:
            server.should_exit = True
            await task
