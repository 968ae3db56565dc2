"""Idempotency-Key under /api/v2: single-use on the one key store the task endpoints use too."""

from __future__ import annotations

import asyncio

from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph


async def _graph(v2gw: RunningGateway) -> dict[str, object]:
    asset = (await v2gw.client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                                    data={"file_path": "in.png"})).json()
    return invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})


async def test_concurrent_submits_with_one_key_make_one_job(v2gw: RunningGateway) -> None:
    body = {"workflow": await _graph(v2gw)}
    answers = await asyncio.gather(*(v2gw.client.post("/api/v2/jobs", json=body, headers={"Idempotency-Key": "k-1"})
                                     for _ in range(5)))

    assert sorted(a.status_code for a in answers) == [201, 422, 422, 422, 422]
    [created] = [a.json() for a in answers if a.status_code == 201]
    refusals = [a.json()["error"] for a in answers if a.status_code == 422]
    assert {r["code"] for r in refusals} == {"idempotency_key_reuse"}
    assert {r["details"]["job_id"] for r in refusals} == {created["id"]}
    assert [j["id"] for j in (await v2gw.client.get("/api/v2/jobs")).json()["jobs"]] == [created["id"]]


async def test_a_refused_submit_does_not_spend_its_key(v2gw: RunningGateway) -> None:
    missing = invert_graph({"__type": "core/ASSET", "info": {"id": "4f1c6a6e-0000-4000-8000-000000000000"}})
    refused = await v2gw.client.post("/api/v2/jobs", json={"workflow": missing}, headers={"Idempotency-Key": "k-2"})
    accepted = await v2gw.client.post("/api/v2/jobs", json={"workflow": await _graph(v2gw)},
                                      headers={"Idempotency-Key": "k-2"})

    assert refused.status_code == 422 and refused.json()["error"]["code"] == "missing_asset"
    assert accepted.status_code == 201


async def test_one_key_store_for_both_surfaces(v2gw: RunningGateway) -> None:
    task = await v2gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")},
                                  headers={"Idempotency-Key": "shared-1"})
    assert task.status_code == 202
    v2_after_task = await v2gw.client.post("/api/v2/jobs", json={"workflow": await _graph(v2gw)},
                                           headers={"Idempotency-Key": "shared-1"})
    assert v2_after_task.status_code == 422
    assert v2_after_task.json()["error"]["details"]["job_id"] == task.json()["job_id"]

    v2_first = await v2gw.client.post("/api/v2/jobs", json={"workflow": await _graph(v2gw)},
                                      headers={"Idempotency-Key": "shared-2"})
    task_after_v2 = await v2gw.client.post("/api/async/upscale-image",
                                           files={"imageFile": ("a.png", png(), "image/png")},
                                           headers={"Idempotency-Key": "shared-2"})
    assert v2_first.status_code == 201
    assert task_after_v2.status_code == 422 and task_after_v2.json()["code"] == "idempotency_key_reused"
    # The task endpoints still replay: the same request with its key answers the same job.
    replay = await v2gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")},
                                    headers={"Idempotency-Key": "shared-1"})
    assert replay.status_code == 202 and replay.json()["job_id"] == task.json()["job_id"]


async def test_a_key_the_contract_cannot_carry_is_refused(v2gw: RunningGateway) -> None:
    answer = await v2gw.client.post("/api/v2/jobs", json={"workflow": await _graph(v2gw)},
                                    headers={"Idempotency-Key": "x" * 256})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
