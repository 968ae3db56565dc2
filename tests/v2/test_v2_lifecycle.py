"""v2 jobs under the gateway's own rules: the job deadline, and a cancel that takes a job out of the queue."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph
from support.waiting import eventually


@pytest.fixture
def gateway_options() -> dict[str, Any]:
    """One job at a time, and each may run for 1.5 s."""
    return {"max_concurrent_jobs": 1, "job_timeout": 1_500}


async def _submit(client: httpx.AsyncClient) -> dict[str, Any]:
    asset = (await client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                               data={"file_path": "in.png"})).json()
    graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
    return (await client.post("/api/v2/jobs", json={"workflow": graph})).json()


async def test_a_job_past_its_deadline_fails_and_a_queued_one_is_canceled_before_it_runs(
        v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.hang_next(1)
    hanging = await _submit(v2gw.client)
    await eventually(lambda: sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 1, timeout=10)
    waiting = await _submit(v2gw.client)  # no free slot: it stays queued

    canceled = (await v2gw.client.post(waiting["urls"]["cancel"])).json()
    await v2gw.gateway.service.wait(hanging["id"], 10)
    timed_out = (await v2gw.client.get(hanging["urls"]["self"])).json()

    assert canceled["status"] == "canceled" and canceled["error"] is None
    assert timed_out["status"] == "failed" and timed_out["error"]["code"] == "job_timed_out"
    assert sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 1  # the canceled job never ran
    assert (await v2gw.client.get(waiting["urls"]["self"])).json()["status"] == "canceled"
