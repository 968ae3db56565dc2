"""Request-scoped access to the Gateway the lifespan built."""

from __future__ import annotations

from fastapi import Request

from ..gateway import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
