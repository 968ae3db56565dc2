"""A graph that needs what no configured server has is refused at submit, as the contract says; one
that some server can run goes there; servers not read yet count as able to run anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from comfy_sdk import AsyncComfy, InvalidWorkflow

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.processes import free_port
from support.v2 import INVERT, LOADER, SAVE, invert_graph
from support.v2_contract import validate
from support.waiting import eventually


async def _capabilities_known(gw: RunningGateway, count: int) -> None:
    await eventually(lambda: sum(i.capabilities is not None for i in gw.gateway.pool) == count, timeout=10,
                     what="the servers' /object_info")


def _upscale_graph(model: str) -> dict[str, Any]:
    graph = invert_graph()
    graph["4"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}}
    graph["5"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["4", 0], "image": [INVERT, 0]}}
    graph[SAVE]["inputs"]["images"] = ["5", 0]
    return graph


@pytest.fixture
async def lacking_gw(fake_servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two servers, neither of which has ImageInvert; the SDK pointed at the gateway in front of them."""
    fakes = await fake_servers(2, without_nodes=["ImageInvert"])
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        gw.fakes = fakes
        await _capabilities_known(gw, 2)
        monkeypatch.setenv("COMFY_BASE_URL", gw.url)
        monkeypatch.delenv("COMFY_API_KEY", raising=False)
        async with AsyncComfy(timeout=30.0) as sdk:
            yield gw, sdk


async def test_a_node_class_no_server_has_is_refused_at_submit_with_the_contracts_error(lacking_gw) -> None:
    gw, sdk = lacking_gw
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))

    with pytest.raises(InvalidWorkflow) as refused:
        await sdk.submit(workflow)

    assert refused.value.code == "invalid_workflow"
    answer = await gw.client.post("/api/v2/jobs", json={"workflow": invert_graph()})
    assert answer.status_code == 422
    body = answer.json()
    validate("error", body)
    details = body["error"]["details"]
    assert details["node_errors"] == {INVERT: [{"field": "class_type", "reason": "missing_node_type",
                                                "message": "node ImageInvert"}]}
    assert details["missing"] == ["node ImageInvert"]
    assert set(details["servers"]) == {f.host_port for f in gw.fakes}
    assert sum(f.stats()["prompts_received"] for f in gw.fakes) == 0
    assert (await gw.client.get("/api/v2/jobs")).json()["jobs"] == []


async def test_a_model_no_server_offers_is_refused_and_one_that_some_server_has_runs_there(
        fake_servers, tmp_path: Path) -> None:
    (with_invert,) = await fake_servers(1)
    (without,) = await fake_servers(1, without_nodes=["ImageInvert"])
    async with running_gateway(gateway_settings(tmp_path, hosts_of([with_invert, without]))) as gw:
        await _capabilities_known(gw, 2)
        refused = await gw.client.post("/api/v2/jobs", json={"workflow": _upscale_graph("no-such-model.pth")})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["node_errors"] == {"4": [{
            "field": "model_name", "reason": "value_not_in_list",
            "message": "model no-such-model.pth (UpscaleModelLoader.model_name)"}]}

        asset = (await gw.client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                                      data={"file_path": "in.png"})).json()
        ids = []
        for _ in range(4):  # more than one slot's worth, so a server that could not run it would be tried
            created = await gw.client.post("/api/v2/jobs", json={
                "workflow": invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for job_id in ids:
            await gw.gateway.service.wait(job_id, 20)
            body = (await gw.client.get(f"/api/v2/jobs/{job_id}")).json()
            assert body["status"] == "succeeded", body["error"]
        assert without.stats()["prompts_received"] == 0
        assert with_invert.stats()["prompts_received"] == 4


async def test_a_server_not_read_yet_counts_as_able_to_run_anything(fake_servers, tmp_path: Path) -> None:
    (lacking,) = await fake_servers(1, without_nodes=["ImageInvert"])
    unread = f"127.0.0.1:{free_port()}"  # nothing listens there: its /object_info is never read
    async with running_gateway(gateway_settings(tmp_path, f"{lacking.host_port},{unread}")) as gw:
        await _capabilities_known(gw, 1)
        created = await gw.client.post("/api/v2/jobs", json={"workflow": invert_graph()})
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "queued"
