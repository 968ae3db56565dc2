"""`queue_position` of queued jobs: their place in this gateway's queue, moving up as jobs ahead leave it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph
from support.v2_contract import validate
from support.waiting import eventually


@pytest.fixture
def gateway_options() -> dict[str, Any]:
    return {"max_concurrent_jobs": 1}


async def _submit(client: httpx.AsyncClient, asset_id: str) -> dict[str, Any]:
    created = await client.post("/api/v2/jobs", json={
        "workflow": invert_graph({"__type": "core/ASSET", "info": {"id": asset_id}})})
    assert created.status_code == 201, created.text
    return created.json()


async def _positions(client: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> list[int | None]:
    bodies = [(await client.get(job["urls"]["self"])).json() for job in jobs]
    for body in bodies:
        validate("job", body)
    return [body["queue_position"] for body in bodies]


async def test_queued_jobs_show_their_place_and_move_up(v2gw: RunningGateway) -> None:
    client = v2gw.client
    for fake in v2gw.fakes:
        fake.set_service_time(30)  # the first job holds the one slot
    asset = (await client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                               data={"file_path": "in.png"})).json()
    running = await _submit(client, asset["id"])
    await eventually(lambda: sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 1, timeout=10)
    queued = [await _submit(client, asset["id"]) for _ in range(3)]  # one slot, taken: these wait

    assert [job["queue_position"] for job in queued] == [1, 2, 3]  # as created
    assert await _positions(client, [running, *queued]) == [None, 1, 2, 3]
    listed = {job["id"]: job["queue_position"] for job in (await client.get("/api/v2/jobs")).json()["jobs"]}
    assert listed == {running["id"]: None, **{job["id"]: n for n, job in enumerate(queued, 1)}}

    canceled = (await client.post(queued[0]["urls"]["cancel"])).json()
    assert (canceled["status"], canceled["queue_position"]) == ("canceled", None)
    assert await _positions(client, queued[1:]) == [1, 2]
    for fake in v2gw.fakes:
        fake.set_service_time(0)
    await client.post(running["urls"]["cancel"])  # the slow job goes; the queue drains
    for job in queued[1:]:
        await v2gw.gateway.service.wait(job["id"], 20)
    assert await _positions(client, queued) == [None, None, None]
