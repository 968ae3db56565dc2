"""The seed's job admin endpoints, end to end."""

from __future__ import annotations

import asyncio

from support.blobs import stored_blobs
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.tally import submit
from support.waiting import eventually


async def test_stats_list_info_and_filters(gw):
    ids = [await submit(gw.client, task) for task in ("upscale-image", "upscale-image", "remove-background")]
    for job_id in ids:
        await gw.wait_job(job_id)

    stats = (await gw.client.get("/api/jobs/stats")).json()
    assert stats["total_jobs"] == 3
    assert stats["by_status"]["completed"] == 3 and stats["by_status"]["pending"] == 0
    assert stats["byType"] == {"upscale-image": 2, "remove-background": 1}
    assert sum(stats["byInstance"].values()) == 3

    listing = (await gw.client.get("/api/jobs/list", params={"type": "upscale-image"})).json()
    assert listing["count"] == 2 and {j["type"] for j in listing["jobs"]} == {"upscale-image"}
    instance = listing["jobs"][0]["comfyui_instance"]
    combined = (await gw.client.get("/api/jobs/list", params={
        "type": "upscale-image", "status": "completed", "instance": instance})).json()
    assert combined["jobs"] and all(j["comfyui_instance"] == instance for j in combined["jobs"])
    assert (await gw.client.get("/api/jobs/list", params={"status": "failed"})).json()["count"] == 0
    unknown = await gw.client.get("/api/jobs/list", params={"status": "nonsense"})
    assert (unknown.status_code, unknown.json()["total"]) == (200, 0)  # as the original: no job matches

    info = (await gw.client.get(f"/api/jobs/{ids[2]}/info")).json()
    assert info["type"] == "remove-background" and info["status"] == "completed"
    assert info["prompt_id"] and info["attempt"] == 1 and info["result"]["content_type"] == "image/png"


async def test_processor_stats_shows_limits_and_instances(gw):
    body = (await gw.client.get("/api/jobs/processor/stats")).json()
    assert body["max_concurrent_jobs"] == 4 and body["max_jobs_per_instance"] == 2
    assert set(body["instances"]) == {f.host_port for f in gw.fakes}
    assert body["processor_running"] is True


async def test_delete_and_unknown_job(gw):
    job_id = await submit(gw.client)
    await gw.wait_job(job_id)
    assert (await gw.client.delete(f"/api/jobs/{job_id}")).status_code == 200
    assert (await gw.client.get(f"/api/jobs/{job_id}/status")).status_code == 404
    assert (await gw.client.delete(f"/api/jobs/{job_id}")).status_code == 404
    missing = await gw.client.get("/api/jobs/does-not-exist/result")
    assert missing.status_code == 404 and "error" in missing.json()


async def test_delete_running_job_interrupts_its_prompt(gw):
    for fake in gw.fakes:
        fake.hang_next(1)
    job_id = await submit(gw.client)
    # Running means its prompt reached a server (processing alone may be before the POST /prompt).
    await eventually(lambda: sum(f.stats()["prompts_received"] for f in gw.fakes) == 1, timeout=10,
                     what="the prompt at a server")
    resp = await gw.client.delete(f"/api/jobs/{job_id}")
    assert resp.status_code == 200 and resp.json()["cancelled"] is True
    await eventually(lambda: sum(f.stats()["interrupted"] for f in gw.fakes) == 1, timeout=10,
                     what="the prompt interrupted")


async def test_cleanup_removes_finished_jobs_and_their_blobs(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), job_cleanup_interval=1000)) as gw:
        job_id = await submit(gw.client)
        await gw.wait_job(job_id)
        assert stored_blobs(tmp_path / "blobs")
        await asyncio.sleep(1.1)
        body = (await gw.client.post("/api/jobs/cleanup")).json()
        assert body["removed"] == 1
        assert (await gw.client.get(f"/api/jobs/{job_id}/status")).status_code == 404
        assert stored_blobs(tmp_path / "blobs") == {}


async def test_events_stream_progress_until_the_job_ends(gw):
    import json

    for fake in gw.fakes:
        fake.set_service_time(1.0)
    job_id = await submit(gw.client)
    events = []
    async with gw.client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    statuses = [e["status"] for e in events]
    progress = [e["progress_percentage"] for e in events]
    assert statuses[-1] == "completed" and progress[-1] == 100
    assert "processing" in statuses and any(0 < p < 100 for p in progress)
    assert progress == sorted(progress)
    assert (await gw.client.get("/api/jobs/nope/events")).status_code == 404
