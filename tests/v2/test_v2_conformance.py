"""Every v2 answer body, success and error, validated against the contract's schema models."""

from __future__ import annotations

import json
from typing import Any

import httpx

from support.gateway import RunningGateway
from support.images import png
from support.v2 import LOADER, SAVE, invert_graph
from support.v2_contract import nullable_in_spec, relaxed_fields, validate


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


def test_only_fields_the_contract_makes_nullable_are_relaxed() -> None:
    for model, fields in relaxed_fields().items():
        for name in fields - {"outputs"}:  # `outputs` differs only through its items' nullable `hash`
            assert nullable_in_spec(model, name), f"{model}.{name}"


async def _upload(client: httpx.AsyncClient, data: bytes, name: str) -> httpx.Response:
    return await client.post("/api/v2/assets", files={"file": (name, data, "image/png")},
                             data={"file_path": name})


async def test_every_v2_answer_conforms(v2gw: RunningGateway) -> None:
    client = v2gw.client
    data = png(16, 16)
    checked: list[str] = []

    def check(kind: str, body: Any, what: str) -> None:
        validate(kind, body)
        checked.append(what)

    first = await _upload(client, data, "in.png")
    assert first.status_code == 201
    check("asset", first.json(), "POST /assets (new)")
    again = await _upload(client, data, "again.png")
    assert again.status_code == 200 and again.json()["created_new"] is False
    check("asset", again.json(), "POST /assets (dedup)")
    asset = first.json()
    minted = await client.post("/api/v2/assets/from-hash", json={"hash": asset["hash"], "file_path": "x.png"})
    assert minted.status_code == 201
    check("asset", minted.json(), "POST /assets/from-hash")
    check("asset", (await client.get(f"/api/v2/assets/{asset['id']}")).json(), "GET /assets/{id}")

    graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
    created = await client.post("/api/v2/jobs", json={"workflow": graph, "metadata": {"run": "7"}})
    assert created.status_code == 201
    check("job", created.json(), "POST /jobs (queued)")
    job = created.json()
    await v2gw.gateway.service.wait(job["id"], 20)
    done = (await client.get(job["urls"]["self"])).json()
    assert done["status"] == "succeeded"
    check("job", done, "GET /jobs/{id} (succeeded)")
    [output] = done["outputs"]
    assert output["node_id"] == SAVE
    check("output", output, "job output")
    check("asset", (await client.get(f"/api/v2/assets/{output['id']}")).json(), "GET /assets/{output id}")
    listed = (await client.get("/api/v2/jobs")).json()
    for item in listed["jobs"]:
        check("job", item, "GET /jobs item")
    check("job", (await client.post(job["urls"]["cancel"])).json(), "POST /jobs/{id}/cancel (finished)")
    task = await client.post("/api/upscale-image", files={"imageFile": ("a.png", data, "image/png")})
    as_v2 = (await client.get(f"/api/v2/jobs/{task.json()['jobId']}")).json()  # a task job, seen through v2
    assert as_v2["status"] == "succeeded" and len(as_v2["outputs"]) == 1
    check("job", as_v2, "GET /jobs/{task job id}")

    events = _sse((await client.get(job["urls"]["events"])).text)
    for event, body in events:
        check({"status": "status_event", "progress": "progress", "output": "output"}[event], body, f"SSE {event}")
    assert [e for e, _ in events][-2:] == ["output", "status"]

    for response in (
        await client.get("/api/v2/jobs/no-such-job"),
        await client.post("/api/v2/jobs", content=b"{not json"),
        await client.post("/api/v2/jobs", json={"workflow": {"nodes": [], "links": []}}),
        await client.post("/api/v2/jobs", json={"workflow": invert_graph({"__type": "core/ASSET", "info": {}})}),
        await client.post("/api/v2/assets/from-hash", json={"hash": "blake3:" + "0" * 64}),
        await client.get("/api/v2/assets/nope/content"),
        await client.get("/api/v2/no-such-route"),
    ):
        assert response.status_code >= 400
        check("error", response.json(), f"error {response.status_code} {response.json()['error']['code']}")
    assert len(checked) >= 20, checked


async def test_a_queued_job_answers_with_nulls_where_the_contract_allows_them(v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.pause()
    asset = (await _upload(v2gw.client, png(), "in.png")).json()
    graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
    body = (await v2gw.client.post("/api/v2/jobs", json={"workflow": graph})).json()
    validate("job", body)
    assert (body["status"], body["started_at"], body["progress"], body["error"], body["outputs"]) == (
        "queued", None, None, None, [])
    assert body["created_at"].endswith("Z") and body["urls"]["self"].startswith(v2gw.url)
    assert LOADER in (await v2gw.client.get(f"/api/v2/jobs/{body['id']}/workflow")).json()["workflow"]
    for fake in v2gw.fakes:
        fake.resume()
