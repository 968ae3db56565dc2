"""The v2 surface with API keys: Bearer auth as the contract has it, each tenant its own jobs, keys and assets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from comfy_sdk import AsyncComfy, Unauthorized

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.keys import KEYS, auth, write_keys
from support.v2 import LOADER, SAVE, invert_graph


@pytest.fixture
async def keyed(fake_servers, tmp_path) -> AsyncIterator[RunningGateway]:
    fakes = await fake_servers(2)
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=write_keys(tmp_path / "keys.toml"))
    async with running_gateway(settings) as running:
        yield running


async def _upload(client: httpx.AsyncClient, who: str, data: bytes) -> dict[str, Any]:
    answer = await client.post("/api/v2/assets", files={"file": ("in.png", data, "image/png")},
                               data={"file_path": "in.png"}, headers=auth(who))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def test_the_sdk_runs_with_its_api_key_and_without_one_gets_401(keyed: RunningGateway, monkeypatch) -> None:
    monkeypatch.setenv("COMFY_BASE_URL", keyed.url)
    async with AsyncComfy(api_key=KEYS["alice"]) as sdk:
        workflow = sdk.workflows.from_json(invert_graph())
        workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))
        job = await sdk.run(workflow)
        assert job.status == "succeeded" and len(job.get_outputs(SAVE)) == 1
    monkeypatch.delenv("COMFY_API_KEY", raising=False)
    async with AsyncComfy() as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.jobs.get(job.id)

    refused = await keyed.client.get(f"/api/v2/jobs/{job.id}")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthorized"
    assert (await keyed.client.get("/api/v2/health")).status_code == 200  # the probe needs no key


async def test_a_tenant_sees_only_its_own_jobs_assets_and_keys(keyed: RunningGateway) -> None:
    client = keyed.client
    data = png(9, 9)
    alices = await _upload(client, "alice", data)
    graph = {"workflow": invert_graph({"__type": "core/ASSET", "info": {"id": alices["id"]}})}
    job = await client.post("/api/v2/jobs", json=graph, headers={**auth("alice"), "Idempotency-Key": "k"})
    assert job.status_code == 201

    # Bob cannot see, use, probe or mint from what alice uploaded, nor see her job.
    assert (await client.get(f"/api/v2/assets/{alices['id']}", headers=auth("bob"))).status_code == 404
    assert (await client.head(f"/api/v2/assets/by-hash/{alices['hash']}", headers=auth("bob"))).status_code == 404
    minted = await client.post("/api/v2/assets/from-hash", json={"hash": alices["hash"]}, headers=auth("bob"))
    assert minted.status_code == 404 and minted.json()["error"]["code"] == "blob_not_found"
    used = await client.post("/api/v2/jobs", json=graph, headers=auth("bob"))
    assert used.status_code == 422 and used.json()["error"]["code"] == "missing_asset"
    assert (await client.get(job.json()["urls"]["self"], headers=auth("bob"))).status_code == 404
    assert (await client.get("/api/v2/jobs", headers=auth("bob"))).json()["jobs"] == []
    # Keys are each tenant's own; the bytes are still stored once.
    bobs = await _upload(client, "bob", data)
    assert bobs["created_new"] is False and bobs["hash"] == alices["hash"]
    bob_graph = {"workflow": invert_graph({"__type": "core/ASSET", "info": {"id": bobs["id"]}})}
    assert (await client.post("/api/v2/jobs", json=bob_graph,
                              headers={**auth("bob"), "Idempotency-Key": "k"})).status_code == 201
    # The admin sees every tenant's job.
    assert (await client.get(job.json()["urls"]["self"], headers=auth("admin"))).status_code == 200
