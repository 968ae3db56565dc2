from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway


@pytest.fixture
async def gw(fake_servers, tmp_path) -> AsyncIterator[RunningGateway]:
    """A gateway in front of two fake ComfyUI servers (its `fakes`), with the default settings."""
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as running:
        running.fakes = fakes
        yield running
