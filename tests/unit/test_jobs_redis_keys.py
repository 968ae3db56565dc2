"""The Lua spelling of the Redis key names matches the Python one."""

from __future__ import annotations

import os

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from comfy_gateway.jobs.redis_keys import LUA_KEYS, RedisKeys

_PROBE = """
return {k_job('j1'), K_PENDING, K_LEASES, K_FINISHED, K_ALL, K_TYPES, K_INSTANCES,
        k_state('pending'), k_type('t1'), k_instance('gpu-1')}
"""


@pytest.mark.redis
async def test_lua_and_python_key_names_agree() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis unreachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("SKIP_REDIS_TESTS") == "1":
            pytest.skip(f"{reason} (SKIP_REDIS_TESTS=1)")
        pytest.fail(f"{reason}; set SKIP_REDIS_TESTS=1 to skip Redis tests")
    try:
        got = await client.eval(LUA_KEYS + _PROBE, 0, "pfx")
    finally:
        await client.aclose()
    keys = RedisKeys("pfx")
    expected = [
        keys.job("j1"), keys.pending, keys.leases, keys.finished, keys.all, keys.types, keys.instances,
        keys.state("pending"), keys.type("t1"), keys.instance("gpu-1"),
    ]  # fmt: skip
    assert [k.decode() for k in got] == expected
    assert len(set(expected)) == len(expected)
