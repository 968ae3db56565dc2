"""create_app(settings) -> FastAPI. The lifespan builds one Gateway and closes it on shutdown.

Logging is the caller's to configure (the CLI does, from LOG_LEVEL), so building an app has no
side effect on the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .api import breakers, dashboard, errors, jobs, metrics, probes, status, tasks
from .api.middleware import RequestContextMiddleware, UploadLimitMiddleware
from .api.tracing_middleware import TracingMiddleware
from .api.views import webhook_body
from .gateway import Gateway
from .observability.logging import get_logger
from .observability.prometheus import PromMetrics
from .observability.tracing import Tracing
from .settings import Settings


def create_app(settings: Settings | None = None, *, tracing: Tracing | None = None) -> FastAPI:
    """`tracing` defaults to what the OTEL_* settings ask for (off unless an exporter is configured)."""
    settings = settings or Settings()
    prom = PromMetrics()  # made here: the middleware counts requests from the first one
    tracing = tracing or Tracing.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with Gateway(settings, prom=prom, webhook_body=webhook_body, tracing=tracing) as gateway:
                app.state.gateway = gateway
                app.state.service = gateway.service
                app.state.overview = gateway.overview
                yield
        finally:
            await tracing.aclose()  # last: the spans of the shutdown are sent too

    app = FastAPI(
        title="comfy-gateway",
        version=__version__,
        description="Plain HTTP endpoints in front of a pool of ComfyUI servers: sync and async image tasks, "
                    "jobs that survive restarts, health, metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    for module in (tasks, jobs, status, probes, metrics, breakers, dashboard):
        app.include_router(module.router)
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware, prom=prom, logger=get_logger("http"), draining=lambda: _draining(app))
    if tracing.enabled:  # outermost, so the access log line carries the request's trace id
        app.add_middleware(TracingMiddleware, tracing=tracing)
    return app


def _draining(app: FastAPI) -> bool:
    service = getattr(app.state, "service", None)
    return service is not None and service.admission.draining
