"""create_app(settings) -> FastAPI. The lifespan opens one Gateway and closes it on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .api import breakers, dashboard, errors, jobs, metrics, probes, status, tasks
from .api.middleware import RequestContextMiddleware, UploadLimitMiddleware
from .api.tracing_middleware import TracingMiddleware
from .gateway import Gateway
from .observability.logging import configure_logging, get_logger
from .observability.tracing import Tracing
from .settings import Settings


def create_app(settings: Settings | None = None, *, configure_logs: bool = True,
               tracing: Tracing | None = None) -> FastAPI:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.logs_dir)
    gateway = Gateway(settings, tracing=tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway:
            yield

    app = FastAPI(
        title="comfy-gateway",
        version=__version__,
        description="Plain HTTP endpoints in front of a pool of ComfyUI servers: sync and async image tasks, "
                    "jobs that survive restarts, health, metrics.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.settings = settings
    errors.install(app)
    for module in (tasks, jobs, status, probes, metrics, breakers, dashboard):
        app.include_router(module.router)
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware, prom=gateway.prom, logger=get_logger("http"))
    if gateway.tracing.enabled:  # outermost, so the access log line carries the request's trace id
        app.add_middleware(TracingMiddleware, tracing=gateway.tracing)
    return app
