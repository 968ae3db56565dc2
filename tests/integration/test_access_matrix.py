"""Who may call what, over every route: no key, user A (alice), user B (bob), admin.

One table, one row per route; the test fails if a route of the app has no row, so a new route
gets its access decided here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.keys import KEYS, auth, write_keys
from support.tally import submit

CALLERS = (None, "alice", "bob", "admin")
UPLOAD = ("a.png", png(16, 16), "image/png")
OPEN = (200, 200, 200, 200)
KEY = (401, 200, 200, 200)
ADMIN = (401, 403, 403, 200)
ALICES = (401, 200, 404, 200)  # alice's job: bob sees no such job
BAD_REQUEST = (401, 400, 400, 400)


@dataclass(frozen=True)
class Row:
    method: str
    template: str  # the route as the app declares it
    path: str  # what is requested: {job} is alice's job, {delete} a fresh job of alice's per caller
    expected: tuple[int, int, int, int]
    upload: bool = False


ROWS = [
    *(Row("POST", f"/api/{task}", f"/api/{task}", KEY, upload=True)
      for task in ("remove-background", "upscale-image", "upscale-remove-bg")),
    *(Row("POST", f"/api/async/{task}", f"/api/async/{task}", (401, 202, 202, 202), upload=True)
      for task in ("remove-background", "upscale-image", "upscale-remove-bg")),
    Row("POST", "/api/run/{workflow}", "/api/run/upscale-image", KEY, upload=True),
    Row("GET", "/api/workflows", "/api/workflows", KEY),
    Row("GET", "/api/jobs/stats", "/api/jobs/stats", ADMIN),
    Row("GET", "/api/jobs/processor/stats", "/api/jobs/processor/stats", ADMIN),
    Row("GET", "/api/jobs/list", "/api/jobs/list", ADMIN),
    Row("POST", "/api/jobs/cleanup", "/api/jobs/cleanup", ADMIN),
    Row("GET", "/api/jobs/{job_id}/status", "/api/jobs/{job}/status", ALICES),
    Row("GET", "/api/jobs/{job_id}/result", "/api/jobs/{job}/result", ALICES),
    Row("GET", "/api/jobs/{job_id}/events", "/api/jobs/{job}/events", ALICES),
    Row("GET", "/api/jobs/{job_id}/info", "/api/jobs/{job}/info", ALICES),
    Row("DELETE", "/api/jobs/{job_id}", "/api/jobs/{delete}", ALICES),
    Row("GET", "/api/jobs/{job_id}/preview/{which}", "/api/jobs/{job}/preview/input", ALICES),
    Row("GET", "/api/jobs/{job_id}/outputs", "/api/jobs/{job}/outputs", ALICES),
    Row("GET", "/api/jobs/{job_id}/outputs/{index}", "/api/jobs/{job}/outputs/0", ALICES),
    Row("GET", "/health", "/health", OPEN),
    Row("GET", "/status", "/status", OPEN),
    Row("GET", "/live", "/live", OPEN),  # Kubernetes probes carry no key
    Row("GET", "/ready", "/ready", OPEN),
    Row("GET", "/status/metrics", "/status/metrics", ADMIN),
    Row("GET", "/api/metrics", "/api/metrics", ADMIN),
    Row("GET", "/api/metrics/performance", "/api/metrics/performance", ADMIN),
    Row("GET", "/api/metrics/errors", "/api/metrics/errors", ADMIN),
    Row("GET", "/api/metrics/instances", "/api/metrics/instances", ADMIN),
    Row("GET", "/api/metrics/instances/{instance}", "/api/metrics/instances/{instance}", ADMIN),
    Row("POST", "/api/metrics/save", "/api/metrics/save", ADMIN),
    Row("GET", "/api/metrics/persistence", "/api/metrics/persistence", ADMIN),
    Row("GET", "/api/metrics/timeline", "/api/metrics/timeline", ADMIN),
    Row("GET", "/api/circuit-breakers", "/api/circuit-breakers", KEY),
    Row("POST", "/api/circuit-breakers/{name}/open", "/api/circuit-breakers/{instance}/open", ADMIN),
    Row("POST", "/api/circuit-breakers/{name}/close", "/api/circuit-breakers/{instance}/close", ADMIN),
    # the Comfy API v2 (requests without a body: 400 once the key is good); {job}.0 is its output
    Row("POST", "/api/v2/jobs", "/api/v2/jobs", BAD_REQUEST),
    Row("GET", "/api/v2/jobs", "/api/v2/jobs", KEY),
    Row("GET", "/api/v2/jobs/{job_id}", "/api/v2/jobs/{job}", ALICES),
    Row("GET", "/api/v2/jobs/{job_id}/workflow", "/api/v2/jobs/{job}/workflow", (401, 400, 404, 400)),
    Row("POST", "/api/v2/jobs/{job_id}/cancel", "/api/v2/jobs/{job}/cancel", ALICES),
    Row("GET", "/api/v2/jobs/{job_id}/events", "/api/v2/jobs/{job}/events", ALICES),
    Row("POST", "/api/v2/assets", "/api/v2/assets", BAD_REQUEST, upload=True),
    Row("POST", "/api/v2/assets/from-hash", "/api/v2/assets/from-hash", BAD_REQUEST),
    Row("HEAD", "/api/v2/assets/by-hash/{hash_}", "/api/v2/assets/by-hash/nil", BAD_REQUEST),
    Row("GET", "/api/v2/assets/{asset_id}", "/api/v2/assets/{job}.0", ALICES),
    Row("DELETE", "/api/v2/assets/{asset_id}", "/api/v2/assets/{job}.0", (401, 400, 404, 400)),
    Row("GET", "/api/v2/assets/{asset_id}/content", "/api/v2/assets/{job}.0/content", ALICES),
    Row("GET", "/api/v2/health", "/api/v2/health", OPEN),
    # outside the OpenAPI document
    Row("GET", "/metrics", "/metrics", ADMIN),
    Row("GET", "/dashboard", "/dashboard", OPEN),  # the page; what it reads is ruled above
    Row("GET", "/openapi.json", "/openapi.json", OPEN),
    Row("GET", "/docs", "/docs", OPEN),
    Row("GET", "/api/no-such-route", "/api/no-such-route", (401, 404, 404, 404)),
    Row("DELETE", "/api/jobs/stats", "/api/jobs/stats", (401, 404, 404, 404)),  # a job named "stats"
]


@pytest.fixture
async def gw(fake_servers, tmp_path) -> AsyncIterator[RunningGateway]:
    fakes = await fake_servers(2)
    keys = write_keys(tmp_path / "keys.toml")
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys)) as running:
        running.fakes = fakes
        yield running


async def finished_job(gw: RunningGateway, who: str) -> str:
    job_id = await submit(gw.client, headers=auth(who))
    await gw.wait_job(job_id)
    return job_id


def test_every_route_of_the_app_has_a_row():
    from comfy_gateway.app import create_app

    declared = {(method.upper(), path) for path, ops in create_app().openapi()["paths"].items() for method in ops}
    assert declared <= {(row.method, row.template) for row in ROWS}


async def test_each_route_answers_each_caller_as_the_table_says(gw: RunningGateway):
    job = await finished_job(gw, "alice")
    deletable = {who: await finished_job(gw, "alice") for who in CALLERS}
    instance = gw.fakes[1].host_port
    got: dict[str, tuple[int, ...]] = {}
    for row in ROWS:
        codes = []
        for who in CALLERS:
            path = row.path.format(job=job, delete=deletable[who], instance=instance)
            files = {"imageFile": UPLOAD} if row.upload else None
            resp = await gw.client.request(row.method, path, headers=auth(who), files=files)
            codes.append(resp.status_code)
            if resp.status_code in (401, 403):
                assert resp.headers["content-type"] == "application/json"
                assert row.method == "HEAD" or resp.json()["error"]
            if resp.status_code == 401:
                assert resp.headers["www-authenticate"].startswith("Bearer")
        got[f"{row.method} {row.template}"] = tuple(codes)
    expected = {f"{row.method} {row.template}": row.expected for row in ROWS}
    assert got == expected


async def test_a_wrong_key_is_401_and_open_routes_ignore_it(gw: RunningGateway):
    for headers in ({"Authorization": "Bearer nope"}, {"X-API-Key": "nope"}, {"Authorization": f"Basic {KEYS['bob']}"}):
        resp = await gw.client.get("/api/workflows", headers=headers)
        assert resp.status_code == 401 and resp.json()["code"] == "unauthorized"
    resp = await gw.client.get("/api/workflows", headers={"Authorization": "Bearer nope"})
    assert resp.headers["www-authenticate"] == 'Bearer realm="comfy-gateway", error="invalid_token"'
    assert (await gw.client.get("/health", headers={"Authorization": "Bearer nope"})).status_code == 200


async def test_jobs_belong_to_their_key_and_so_do_idempotency_keys(gw: RunningGateway):
    idem = {"Idempotency-Key": "same-key"}
    a = await gw.client.post("/api/async/upscale-image", files={"imageFile": UPLOAD}, headers={**auth("alice"), **idem})
    b = await gw.client.post("/api/async/upscale-image", files={"imageFile": UPLOAD}, headers={**auth("bob"), **idem})
    again = await gw.client.post("/api/async/upscale-image", files={"imageFile": UPLOAD},
                                 headers={**auth("alice"), **idem})
    assert a.json()["job_id"] != b.json()["job_id"]  # bob's same key names bob's own job
    assert again.json()["job_id"] == a.json()["job_id"] and again.headers["idempotent-replayed"] == "true"
    info = (await gw.client.get(f"/api/jobs/{b.json()['job_id']}/info", headers=auth("admin"))).json()
    assert (info["tenant"], info["priority"]) == ("bob", 0)
    unknown = await gw.client.get("/api/jobs/00000000-0000-0000-0000-000000000000/status", headers=auth("alice"))
    other = await gw.client.get(f"/api/jobs/{b.json()['job_id']}/status", headers=auth("alice"))
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"].replace(b.json()["job_id"], "X") == unknown.json()["error"].replace(
        "00000000-0000-0000-0000-000000000000", "X")  # nothing tells an other's job from none


async def test_metrics_public_opens_the_metrics_reads_only(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    keys = write_keys(tmp_path / "keys.toml")
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys, metrics_public=True)
    async with running_gateway(settings) as gw:
        reads = [await gw.client.get(path) for path in ("/metrics", "/api/metrics", "/status/metrics", "/dashboard")]
        save = [(await gw.client.post("/api/metrics/save", headers=auth(who))).status_code
                for who in (None, "alice", "admin")]
        jobs = (await gw.client.get("/api/jobs/stats")).status_code
    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    assert save == [401, 403, 200] and jobs == 401


async def test_keys_never_reach_the_logs_but_their_names_do(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    keys = write_keys(tmp_path / "keys.toml")
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys, log_level="debug")
    async with running_gateway(settings) as gw:
        job = await finished_job(gw, "alice")
        await gw.client.get(f"/api/jobs/{job}/status", headers=auth("bob"))
        await gw.client.get("/api/jobs/list", headers=auth("admin"))
        await gw.client.get("/api/workflows", headers={"Authorization": "Bearer not-a-key-of-anyone"})
    logged = "".join(path.read_text() for path in settings.logs_dir.glob("*.log*"))
    assert '"api_key": "alice"' in logged.replace('":"', '": "') and "HTTP request" in logged
    for secret in (*KEYS.values(), "not-a-key-of-anyone"):
        assert secret not in logged


async def test_cors_answers_the_listed_origins_only(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), cors_origins="https://app.example.com")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
    async with running_gateway(settings) as gw:
        allowed = await gw.client.options("/api/async/upscale-image",
                                          headers={"Origin": "https://app.example.com", **preflight})
        refused = await gw.client.options("/api/async/upscale-image",
                                          headers={"Origin": "https://evil.example", **preflight})
        simple = await gw.client.get("/health", headers={"Origin": "https://app.example.com"})
        other = await gw.client.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert refused.status_code == 400 and refused.json()["code"] == "cors_refused"
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in other.headers and other.status_code == 200


def test_cors_origins_must_be_explicit(tmp_path):
    for bad in ("*", "https://*.example.com", "app.example.com", "https://app.example.com/path"):
        with pytest.raises(ValueError, match="explicit origin"):
            gateway_settings(tmp_path, "127.0.0.1:1", cors_origins=bad)
