"""create_app(settings) -> FastAPI. The lifespan builds one Gateway and closes it on shutdown.

Logging is the caller's to configure (the CLI does, from LOG_LEVEL), so building an app has no
side effect on the process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from . import __version__
from .access import KeyRing, Principal
from .api import (
    breakers,
    dashboard,
    errors,
    jobs,
    metrics,
    outputs,
    previews,
    probes,
    status,
    tasks,
    timeline,
    v2,
)
from .api.auth import AuthMiddleware, document_keys
from .api.cors import JsonCORSMiddleware
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
    keys = KeyRing(settings.api_keys_file)  # read at start (a broken file stops it) and on SIGHUP

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with Gateway(settings, prom=prom, webhook_body=webhook_body, keys=keys,
                               tracing=tracing) as gateway:
                app.state.gateway = gateway
                app.state.service = gateway.service
                app.state.overview = gateway.overview
                app.state.graph_jobs = gateway.graph_jobs
                yield
        finally:
            await tracing.aclose()  # last: the spans of the shutdown are sent too

    app = FastAPI(
        title="comfy-gateway",
        version=__version__,
        description="Plain HTTP endpoints in front of a pool of ComfyUI servers: sync and async image tasks, "
                    "jobs that survive restarts, health, metrics.",
        lifespan=lifespan,
        # Traces and metrics are the gateway's own (TracingMiddleware, Prometheus): FastAPI's built-in
        # OpenTelemetry would add a second set, and costs each request its checks even when unused.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.keys = keys
    errors.install(app)
    _add_routes(app, [m.router for m in (tasks, jobs, outputs, status, probes, metrics, breakers, dashboard)])
    _add_routes(app, v2.routers)
    _add_routes(app, [previews.router, timeline.router])
    app.mount(dashboard.STATIC_PATH, dashboard.static_files, name="dashboard-static")
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)

    async def check_rate(caller: Principal) -> None:
        await app.state.service.check_rate(caller)

    app.add_middleware(AuthMiddleware, keys=keys, metrics_public=settings.metrics_public, check_rate=check_rate)
    if keys.enabled:
        _document_keys(app, settings.metrics_public)
    if settings.cors_origin_list:
        app.add_middleware(JsonCORSMiddleware, allow_origins=settings.cors_origin_list)
    app.add_middleware(RequestContextMiddleware, prom=prom, logger=get_logger("http"), draining=lambda: _draining(app))
    if tracing.enabled:  # outermost, so the access log line carries the request's trace id
        app.add_middleware(TracingMiddleware, tracing=tracing)
    return app


def _add_routes(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Each router's routes straight into the app's own table, in order: their paths, tags and schema
    flags are already the routes' own (no router here adds a prefix or a dependency when included).
    `include_router` would wrap each router in a layer that matches a request once more per level,
    route context and all: 0.1-0.2 ms a request with this many routes."""
    for router in routers:
        app.router.routes.extend(router.routes)


def _draining(app: FastAPI) -> bool:
    service = getattr(app.state, "service", None)
    return service is not None and service.admission.draining


def _document_keys(app: FastAPI, metrics_public: bool) -> None:
    """/docs and /openapi.json say which operations need a key, and how to send it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_keys(build(), metrics_public=metrics_public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
