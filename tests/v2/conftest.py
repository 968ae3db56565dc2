"""The gateway in front of two fake ComfyUI servers, driven through the Comfy SDK as its users would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from comfy_sdk import AsyncComfy

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.redis import redis_prefix  # the Redis tests' fresh key prefix


@pytest.fixture
def gateway_options() -> dict[str, Any]:
    """Settings a test module overrides for its gateway."""
    return {}


@pytest.fixture
async def v2gw(fake_servers, tmp_path, gateway_options) -> AsyncIterator[RunningGateway]:
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), **gateway_options)) as running:
        running.fakes = fakes
        yield running


@pytest.fixture
async def sdk(v2gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncComfy]:
    """The SDK pointed at the gateway the way its README says: COMFY_BASE_URL, no key."""
    monkeypatch.setenv("COMFY_BASE_URL", v2gw.url)
    monkeypatch.delenv("COMFY_API_KEY", raising=False)
    async with AsyncComfy(timeout=30.0) as client:
        yield client

__all__ = ["redis_prefix"]
