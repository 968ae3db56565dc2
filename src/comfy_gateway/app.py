"""create_app(settings) -> FastAPI. The lifespan builds one Gateway and closes it on shutdown.

Logging is the caller's to configure (the CLI does, from LOG_LEVEL), so building an app has no
side effect on the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .api import breakers, dashboard, errors, jobs, metrics, status, tasks
from .api.middleware import RequestContextMiddleware, UploadLimitMiddleware
from .api.views import webhook_body
from .gateway import Gateway
from .observability.logging import get_logger
from .observability.prometheus import PromMetrics
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    prom = PromMetrics()  # made here: the middleware counts requests from the first one

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Gateway(settings, prom=prom, webhook_body=webhook_body) as gateway:
            app.state.gateway = gateway
            app.state.service = gateway.service
            app.state.overview = gateway.overview
            yield

    app = FastAPI(
        title="comfy-gateway",
        version=__version__,
        description="Plain HTTP endpoints in front of a pool of ComfyUI servers: sync and async image tasks, "
                    "jobs that survive restarts, health, metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    for module in (tasks, jobs, status, metrics, breakers, dashboard):
        app.include_router(module.router)
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware, prom=prom, logger=get_logger("http"), draining=lambda: _draining(app))
    return app


def _draining(app: FastAPI) -> bool:
    service = getattr(app.state, "service", None)
    return service is not None and service.admission.draining
