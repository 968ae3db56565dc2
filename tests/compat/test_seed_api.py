"""Drop-in compatibility: every endpoint of SEED-API.md answers with the original's status code, keys, types,
nesting and formats, over real sockets, and each answer also validates against the gateway's own OpenAPI
schema (so the documentation cannot drift from the wire).

One table, run in three stages around one scenario: the task endpoints first; then the read endpoints while
the server holds one job processing and another pending; then the endpoints that change state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from compat import shapes as s
from compat.checks import PATTERNS, problems_of
from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.tally import all_finished, submit
from support.waiting import eventually

SUBMIT, HELD, AFTER = "submit", "held", "after"
ORIGINAL_ORIGINS = "https://signmaster.com,http://signdroid.signmaster.local,http://signdroid.smdev.local"
IMAGE = "image"  # a row that uploads a PNG as `imageFile`


@dataclass(frozen=True)
class Row:
    stage: str
    method: str
    route: str  # the OpenAPI path; {names} in it are filled from the scenario
    status: int
    shape: dict[str, Any]
    args: dict[str, str] = field(default_factory=dict)  # route placeholder -> scenario name
    query: str = ""
    body: str | None = None  # IMAGE, or None
    form: dict[str, str] = field(default_factory=dict)
    fail: bool = False  # the server fails the prompt this row causes


TABLE = [
    # §3, §4: the task endpoints (the failing one first, while no other job is queued).
    Row(SUBMIT, "POST", "/api/upscale-image", 502, s.SYNC_FAILED, body=IMAGE, fail=True),
    Row(SUBMIT, "POST", "/api/remove-background", 200, s.SYNC_CROP, body=IMAGE),
    Row(SUBMIT, "POST", "/api/upscale-image", 200, s.SYNC, body=IMAGE, form={"format": "jpeg"}),
    Row(SUBMIT, "POST", "/api/upscale-remove-bg", 200, s.SYNC, body=IMAGE, query="?format=webp"),
    Row(SUBMIT, "POST", "/api/remove-background", 202, s.ACCEPTED_CROP, body=IMAGE, query="?async=true"),
    Row(SUBMIT, "POST", "/api/upscale-image", 202, s.ACCEPTED, body=IMAGE, query="?mode=async"),
    Row(SUBMIT, "POST", "/api/async/remove-background", 202, s.ACCEPTED_CROP, body=IMAGE, form={"crop": "false"}),
    Row(SUBMIT, "POST", "/api/async/upscale-image", 202, s.ACCEPTED, body=IMAGE),
    Row(SUBMIT, "POST", "/api/async/upscale-remove-bg", 202, s.ACCEPTED, body=IMAGE),
    Row(SUBMIT, "POST", "/api/remove-background", 400, s.NO_FILE, form={"format": "PNG"}),
    Row(SUBMIT, "POST", "/api/async/upscale-image", 400, s.NO_FILE, form={"format": "PNG"}),
    Row(SUBMIT, "POST", "/api/upscale-image", 400, s.BAD_FORMAT, body=IMAGE, query="?format=gif"),
    Row(SUBMIT, "POST", "/api/async/remove-background", 400, s.BAD_FORMAT, body=IMAGE, form={"format": "jpg"}),
    # §5, §6: status and result, in every state.
    Row(HELD, "GET", "/api/jobs/{job_id}/status", 200, s.STATUS_PENDING, {"job_id": "pending"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/status", 200, s.STATUS_PROCESSING, {"job_id": "processing"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/status", 200, s.STATUS_COMPLETED, {"job_id": "completed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/status", 200, s.STATUS_FAILED, {"job_id": "failed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/status", 404, s.JOB_NOT_FOUND, {"job_id": "unknown"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/result", 200, s.RESULT, {"job_id": "completed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/result", 409, s.NOT_COMPLETED, {"job_id": "pending"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/result", 409, s.NOT_COMPLETED, {"job_id": "processing"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/result", 409, s.NOT_COMPLETED_FAILED, {"job_id": "failed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/result", 404, s.JOB_NOT_FOUND, {"job_id": "unknown"}),
    # §7: the admin views of jobs.
    Row(HELD, "GET", "/api/jobs/stats", 200, s.JOB_STATS),
    Row(HELD, "GET", "/api/jobs/processor/stats", 200, s.PROCESSOR_STATS),
    Row(HELD, "GET", "/api/jobs/list", 200, s.JOB_LIST),
    Row(HELD, "GET", "/api/jobs/list", 200, s.JOB_LIST, query="?status=completed&type=remove-background"),
    Row(HELD, "GET", "/api/jobs/{job_id}/info", 200, s.JOB_COMPLETED, {"job_id": "completed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/info", 200, s.JOB_FAILED, {"job_id": "failed"}),
    Row(HELD, "GET", "/api/jobs/{job_id}/info", 404, s.JOB_NOT_FOUND_BARE, {"job_id": "unknown"}),
    # §8: health and status.
    Row(HELD, "GET", "/health", 200, s.HEALTH_BODY),
    Row(HELD, "GET", "/status", 200, s.QUICK_STATUS),
    Row(HELD, "GET", "/status/metrics", 200, s.BASIC_METRICS),
    # §9: the metrics API.
    Row(HELD, "GET", "/api/metrics", 200, s.METRICS),
    Row(HELD, "GET", "/api/metrics/performance", 200, s.PERFORMANCE),
    Row(HELD, "GET", "/api/metrics/errors", 200, s.ERRORS),
    Row(HELD, "GET", "/api/metrics/instances", 200, s.INSTANCES),
    Row(HELD, "GET", "/api/metrics/instances/{instance}", 200, s.ONE_INSTANCE, {"instance": "host"}),
    Row(HELD, "GET", "/api/metrics/instances/{instance}", 404, s.INSTANCE_NOT_FOUND, {"instance": "unknown"}),
    Row(HELD, "GET", "/api/metrics/persistence", 200, s.PERSISTENCE),
    Row(HELD, "GET", "/api/circuit-breakers", 200, s.BREAKERS),
    # The endpoints that change state.
    Row(AFTER, "POST", "/api/metrics/save", 200, s.SAVED),
    Row(AFTER, "POST", "/api/circuit-breakers/{name}/open", 200, s.BREAKER_OPENED, {"name": "health-breaker"}),
    Row(AFTER, "POST", "/api/circuit-breakers/{name}/close", 200, s.BREAKER_CLOSED, {"name": "health-breaker"}),
    Row(AFTER, "POST", "/api/circuit-breakers/{name}/open", 200, s.BREAKER_OPENED, {"name": "workflow-breaker"}),
    Row(AFTER, "POST", "/api/circuit-breakers/{name}/close", 200, s.BREAKER_CLOSED, {"name": "workflow-breaker"}),
    Row(AFTER, "POST", "/api/circuit-breakers/{name}/open", 404, s.BREAKER_NOT_FOUND, {"name": "unknown"}),
    Row(AFTER, "DELETE", "/api/jobs/{job_id}", 200, s.DELETED, {"job_id": "completed"}),
    Row(AFTER, "DELETE", "/api/jobs/{job_id}", 404, s.JOB_NOT_FOUND_BARE, {"job_id": "completed"}),
    Row(AFTER, "POST", "/api/jobs/cleanup", 200, s.CLEANED),
]


def schema_problems(spec: dict[str, Any], row: Row, body: Any) -> list[str]:
    """The answer checked against what the gateway's OpenAPI document promises for it."""
    try:
        schema = spec["paths"][row.route][row.method.lower()]["responses"][str(row.status)]["content"][
            "application/json"]["schema"]
    except KeyError:
        return [f"OpenAPI documents no JSON {row.status} answer for {row.method} {row.route}"]
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    return [f"OpenAPI: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


async def call(client: httpx.AsyncClient, row: Row, names: dict[str, str]) -> httpx.Response:
    path = row.route.format(**{k: names[v] for k, v in row.args.items()}) + row.query
    files = {"imageFile": ("photo.png", png(16, 16), "image/png")} if row.body == IMAGE else None
    if files is None and row.form:
        files = {"other": ("notes.txt", b"", "text/plain")}  # multipart, but no image
    return await client.request(row.method, path, files=files, data=row.form or None)


async def run_stage(gw: RunningGateway, stage: str, names: dict[str, str]) -> list[str]:
    spec = gw.app.openapi()
    problems: list[str] = []
    for row in (r for r in TABLE if r.stage == stage):
        if row.fail:
            gw.fakes[0].fail_next(1, message="the node broke")
        resp = await call(gw.client, row, names)
        where = f"{row.method} {row.route}{row.query} {row.args or ''}"
        if resp.status_code != row.status:
            problems.append(f"{where}: status {resp.status_code} (expected {row.status}): {resp.text[:300]}")
            continue
        if not resp.headers.get("content-type", "").startswith("application/json"):
            problems.append(f"{where}: content-type {resp.headers.get('content-type')}")
            continue
        if not PATTERNS["uuid"].fullmatch(resp.headers.get("x-request-id", "")):
            problems.append(f"{where}: X-Request-ID {resp.headers.get('x-request-id')!r} is not a UUID")
        body = resp.json()
        problems += [f"{where}: {p}" for p in problems_of(body, row.shape) + schema_problems(spec, row, body)]
    return problems


async def hold_two_jobs(gw: RunningGateway, names: dict[str, str]) -> None:
    """One job processing on the paused server, one pending behind it (one slot per server)."""
    gw.fakes[0].pause()
    names["processing"] = await submit(gw.client, "upscale-image")

    async def processing() -> bool:
        return (await gw.client.get(f"/api/jobs/{names['processing']}/status")).json()["status"] == "processing"

    await eventually(processing, 10, what="the held job to be processing")
    names["pending"] = await submit(gw.client, "remove-background")


async def test_every_endpoint_answers_as_the_original(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.02)
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_jobs_per_instance=1, max_concurrent_jobs=1)
    async with running_gateway(settings) as gw:
        gw.fakes = fakes
        host = fakes[0].host_port
        names = {"unknown": str(uuid.uuid4()), "host": host, "health-breaker": "health-check-instance-1",
                 "workflow-breaker": f"workflow-{host}"}
        problems = await run_stage(gw, SUBMIT, names)
        await all_finished(gw.client, [], timeout=20)
        names["completed"] = await submit(gw.client, "remove-background")
        assert (await gw.wait_job(names["completed"]))["status"] == "completed"
        fakes[0].fail_next(1, message="the node broke")
        names["failed"] = await submit(gw.client, "upscale-image")
        assert (await gw.wait_job(names["failed"]))["status"] == "failed"
        await hold_two_jobs(gw, names)
        problems += await run_stage(gw, HELD, names)
        fakes[0].resume()
        await all_finished(gw.client, [], timeout=20)
        problems += await run_stage(gw, AFTER, names)
    assert problems == []


def test_the_checks_refuse_what_the_original_never_sends():
    shape = {"total": "int", "rate": "pct2", "at": "iso", "byType": {"*": "int"}, "gone": "absent"}
    good = {"total": 3, "rate": "98.50%", "at": "2026-12-01T07:07:21.939Z", "byType": {"a": 1}}
    assert problems_of(good, shape) == []
    bad = {"rate": "98.5%", "total": 3.0, "at": "2026-12-01T07:07:21.939+00:00", "byType": {"a": "1"}, "gone": 1}
    found = problems_of(bad, shape)
    assert len(found) == 6, found  # float total, one-decimal rate, offset time, string count, extra key, order


async def test_browsers_of_the_original_origins_are_allowed_and_see_the_request_id(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), cors_origins=ORIGINAL_ORIGINS)
    async with running_gateway(settings) as gw:
        origin = {"Origin": "https://signmaster.com"}
        preflight = await gw.client.options("/api/async/upscale-image", headers={
            **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-Request-ID"})
        allowed = await gw.client.get("/status", headers=origin)
        other = await gw.client.get("/status", headers={"Origin": "https://elsewhere.example"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin["Origin"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-origin"] == origin["Origin"]
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers  # not a 500
