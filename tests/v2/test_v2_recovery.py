"""A v2 job outlives a gateway restart: the new process re-attaches to its prompt and keeps its outputs."""

from __future__ import annotations

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.v2 import SAVE, invert_graph
from support.waiting import eventually


async def test_a_running_graph_job_completes_after_a_restart(fake_servers, tmp_path) -> None:
    fakes = await fake_servers(2)
    for fake in fakes:
        fake.set_service_time(2.0)
    settings = gateway_settings(tmp_path, hosts_of(fakes), shutdown_grace=0)
    async with running_gateway(settings) as first:
        asset = (await first.client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                                         data={"file_path": "in.png"})).json()
        graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
        job = (await first.client.post("/api/v2/jobs", json={"workflow": graph})).json()
        await eventually(lambda: sum(f.stats()["prompts_received"] for f in fakes) == 1, timeout=10)

    async with running_gateway(settings) as second:
        done = await second.gateway.service.wait(job["id"], 20)
        body = (await second.client.get(f"/api/v2/jobs/{job['id']}")).json()

    assert done.state.value == "completed" and body["status"] == "succeeded"
    assert sum(f.stats()["prompts_received"] for f in fakes) == 1  # followed, not run again
    assert [o["node_id"] for o in body["outputs"]] == [SAVE]
