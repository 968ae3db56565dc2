"""The Lua spelling of the Redis key names matches the Python one."""

from __future__ import annotations

import pytest

from comfy_gateway.jobs.redis_keys import LUA_KEYS, RedisKeys
from support.redis import connect_redis

_PROBE = """
return {k_job('j1'), K_PENDING, K_LEASES, K_FINISHED, K_ALL, K_TYPES, K_INSTANCES,
        k_state('pending'), k_type('t1'), k_instance('gpu-1'),
        K_TENANTS, K_TURNS, K_TURN, k_tqueue('alice'), k_trunning('alice')}
"""


@pytest.mark.redis
async def test_lua_and_python_key_names_agree() -> None:
    client = await connect_redis()
    try:
        got = await client.eval(LUA_KEYS + _PROBE, 0, "pfx")
    finally:
        await client.aclose()
    keys = RedisKeys("pfx")
    expected = [
        keys.job("j1"), keys.pending, keys.leases, keys.finished, keys.all, keys.types, keys.instances,
        keys.state("pending"), keys.type("t1"), keys.instance("gpu-1"),
        keys.tenants, keys.turns, keys.turn, keys.tenant_queue("alice"), keys.tenant_running("alice"),
    ]  # fmt: skip
    assert [k.decode() for k in got] == expected
    assert len(set(expected)) == len(expected)
