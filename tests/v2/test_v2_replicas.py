"""The v2 surface on two replicas sharing Redis: one key store, one asset store, one event timeline."""

from __future__ import annotations

import pytest

from support.images import png
from support.replicas import two_replicas
from support.v2 import invert_graph

pytestmark = pytest.mark.redis


async def test_assets_keys_and_events_are_shared_by_every_replica(fake_servers, tmp_path, redis_prefix) -> None:
    fakes = await fake_servers(2)
    for fake in fakes:
        fake.set_service_time(1.0)
    async with two_replicas(tmp_path, fakes, redis_prefix) as (a, b):
        upload = await a.client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                                     data={"file_path": "in.png"})
        asset = upload.json()
        assert (await b.client.head(f"/api/v2/assets/by-hash/{asset['hash']}")).status_code == 200
        body = {"workflow": invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})}

        created = await b.client.post("/api/v2/jobs", json=body, headers={"Idempotency-Key": "one-order"})
        reused = await a.client.post("/api/v2/jobs", json=body, headers={"Idempotency-Key": "one-order"})

        assert created.status_code == 201
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reuse"
        job = created.json()
        whole = (await a.client.get(f"/api/v2/jobs/{job['id']}/events")).text  # ends with the job
        timeline = [line for line in whole.splitlines() if line.startswith("id: ") and "-" not in line]
        assert timeline == ["id: 1", "id: 2", "id: 3", "id: 4"]  # queued, running, the output, succeeded
        # The other replica resumes the same timeline after `running`.
        rest = (await b.client.get(f"/api/v2/jobs/{job['id']}/events", headers={"Last-Event-ID": "2"})).text
        assert [line for line in rest.splitlines() if line.startswith(("id: ", "event: "))] == [
            "id: 3", "event: output", "id: 4", "event: status"]
        assert '"status":"succeeded"' in rest
        assert [j["id"] for j in (await a.client.get("/api/v2/jobs")).json()["jobs"]] == [job["id"]]
