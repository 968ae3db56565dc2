"""Gateway replicas sharing one Redis, in the test's process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from comfy_gateway.settings import Settings

from .gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from .redis import REDIS_URL


def replica_settings(tmp_path: Path, fakes: list[Any], prefix: str, name: str, **overrides: Any) -> Settings:
    return gateway_settings(tmp_path / name, hosts_of(fakes), job_store="redis", redis_url=REDIS_URL,
                            redis_prefix=prefix, replica_id=name, **overrides)


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, fakes: list[Any], prefix: str,
                       **overrides: Any) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    async with running_gateway(replica_settings(tmp_path, fakes, prefix, "replica-a", **overrides)) as a, \
            running_gateway(replica_settings(tmp_path, fakes, prefix, "replica-b", **overrides)) as b:
        yield a, b
