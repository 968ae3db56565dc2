"""The access package on its own: the keys file, the token bucket, the destination policy, signatures."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from comfy_gateway.access import DestinationPolicy, KeyFileError, KeyRing, LocalRateLimiter, Role, WebhookSigner
from comfy_gateway.access.destinations import literal_address
from comfy_gateway.errors import DestinationRefused
from support.keys import KEYS, write_keys


def test_keys_are_found_by_digest_or_plain_text_and_carry_their_limits(tmp_path: Path) -> None:
    ring = KeyRing(write_keys(tmp_path / "k.toml", alice={"max_concurrent_jobs": 2, "priority": 3}))
    alice, bob, admin = (ring.authenticate(KEYS[name]) for name in ("alice", "bob", "admin"))
    assert alice is not None and (alice.name, alice.role, alice.max_concurrent_jobs, alice.priority) == (
        "alice", Role.USER, 2, 3)
    assert bob is not None and bob.name == "bob" and not bob.is_admin
    assert admin is not None and admin.is_admin
    assert ring.authenticate("alice-key-012345678") is None and ring.authenticate("") is None
    assert ring.concurrency_caps() == {"alice": 2}


@pytest.mark.parametrize(("text", "problem"), [
    ('[[keys]]\nname = "a"\nrole = "user"\n', "exactly one of key_sha256 and key"),
    ('[[keys]]\nname = "a"\nkey = "k" \nrole = "user"\n', "at least 8"),
    ('[[keys]]\nname = "a"\nkey = "long-enough"\nrole = "root"\n', "role"),
    ('[[keys]]\nname = "a b"\nkey = "long-enough"\n', "name"),
    ('[[keys]]\nname = "a"\nkey_sha256 = "abc"\n', "key_sha256"),
    ('[[keys]]\nname = "a"\nkey = "long-enough"\nmax_queued_jobs = 0\n', "max_queued_jobs"),
    ('[[keys]]\nname = "a"\nkey = "long-enough-1"\n[[keys]]\nname = "a"\nkey = "long-enough-2"\n', "same name"),
    ('[[keys]]\nname = "a"\nkey = "long-enough"\n[[keys]]\nname = "b"\nkey = "long-enough"\n', "same key"),
    ("keys = 3", "keys"),
    ("[[keys]\n", "API_KEYS_FILE"),
])
def test_a_bad_keys_file_is_refused_with_a_reason(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=problem):
        KeyRing(path)


def test_reload_swaps_keys_and_a_broken_file_keeps_the_old_ones(tmp_path: Path) -> None:
    path = write_keys(tmp_path / "k.toml")
    ring = KeyRing(path)
    path.write_text('[[keys]]\nname = "carol"\nkey = "carol-key-0123"\nrole = "admin"\n')
    assert ring.reload() == ["carol"] and ring.authenticate(KEYS["alice"]) is None
    path.write_text("[[keys]\n")
    with pytest.raises(KeyFileError):
        ring.reload()
    assert ring.names() == ["carol"]
    assert not KeyRing(None).enabled and KeyRing(None).reload() == []


async def test_the_token_bucket_allows_a_minutes_worth_then_the_steady_rate() -> None:
    limiter = LocalRateLimiter()
    waits = [await limiter.take("bob", 120) for _ in range(121)]
    assert waits[:120] == [0.0] * 120
    assert 0.4 < waits[120] <= 0.5  # 2 a second: the next token within half a second
    assert await limiter.take("alice", 120) == 0.0


@pytest.mark.parametrize("host", [
    "2130706433", "0x7f000001", "0x7f.1", "127.1", "017700000001", "[::1]", "[::ffff:7f00:1]", "0.0.0.0",
    "169.254.169.254", "[fe80::1]", "[fc00::1]", "224.0.0.1", "100.64.0.1", "100.100.100.200", "[fd00:ec2::254]",
])
async def test_every_spelling_of_an_internal_address_is_refused(host: str) -> None:
    with pytest.raises(DestinationRefused, match="non-public"):
        await DestinationPolicy().check(f"http://{host}:8080/hook")


async def test_the_allow_list_takes_names_addresses_and_networks() -> None:
    policy = DestinationPolicy(["127.0.0.1", "10.1.0.0/16", "Hooks.Internal"])
    for url in ("http://127.0.0.1:9/", "https://10.1.2.3/x", "http://hooks.internal./y", "http://8.8.8.8/"):
        assert await policy.check(url) == url
    for url in ("http://10.2.0.1/", "http://[::1]/", "http://172.16.0.1/", "ftp://8.8.8.8/", "http:///x",
                "http://8.8.8.8:99999/", "http://no-such-host.invalid/"):
        with pytest.raises(DestinationRefused):
            await policy.check(url)
    assert literal_address("example.com") is None
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = b'{"job_id":"j1","status":"completed"}'
    headers = WebhookSigner(secret).headers("msg_1", body)
    assert Webhook(secret).verify(body, headers) == {"job_id": "j1", "status": "completed"}
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"] == "msg_1"
    stamp = int(headers["webhook-timestamp"])
    bare = WebhookSigner(secret.removeprefix("whsec_")).headers("msg_1", body, timestamp=stamp)
    assert bare == headers


async def test_a_rate_limiter_whose_redis_is_down_answers_503_not_500() -> None:
    from redis.asyncio import Redis

    from comfy_gateway.access import RedisRateLimiter
    from comfy_gateway.errors import StorageError
    from support.processes import free_port

    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        with pytest.raises(StorageError) as caught:
            await RedisRateLimiter(client, "cg").take("bob", 60)
    finally:
        await client.aclose()
    assert caught.value.status_code == 503


@pytest.mark.parametrize(("method", "path", "rule"), [
    ("GET", "/api/jobs/stats", "admin"), ("DELETE", "/api/jobs/stats", "key"), ("GET", "/api/jobs/x/status", "key"),
    ("POST", "/api/circuit-breakers/gpu-1:8188/open", "admin"), ("GET", "/api/circuit-breakers", "key"),
    ("GET", "/api/metrics/instances/gpu-1:8188", "admin"), ("HEAD", "/metrics", "admin"),
    ("GET", "/dashboard", "open"),
    ("GET", "/health", "open"), ("GET", "/status", "open"), ("GET", "/docs", "open"), ("GET", "/api", "key"),
    ("GET", "/apiary", "open"),
])
def test_rules_by_method_and_path(method: str, path: str, rule: str) -> None:
    from comfy_gateway.api.auth import rule_for

    assert rule_for(method, path, metrics_public=False).value == rule
    public = rule_for(method, path, metrics_public=True).value
    assert public == ("open" if path in ("/metrics", "/api/metrics/instances/gpu-1:8188") else rule)


def test_the_openapi_document_says_which_operations_need_a_key(tmp_path: Path) -> None:
    from comfy_gateway.app import create_app
    from comfy_gateway.settings import Settings

    keys = write_keys(tmp_path / "k.toml")
    spec = create_app(Settings(_env_file=None, data_dir=tmp_path, api_keys_file=keys)).openapi()  # type: ignore[call-arg]
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["paths"]["/api/jobs/stats"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert spec["paths"]["/api/metrics"]["get"]["security"] and "security" not in spec["paths"]["/health"]["get"]
    open_spec = create_app(Settings(_env_file=None, data_dir=tmp_path)).openapi()  # type: ignore[call-arg]
    assert "securitySchemes" not in open_spec.get("components", {})
