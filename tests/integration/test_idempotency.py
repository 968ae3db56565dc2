"""Idempotency-Key: retried task requests get the same job, never a second one."""

from __future__ import annotations

import asyncio

from support.images import png

IMAGE = png(16, 16)


def files(image: bytes = IMAGE) -> dict:
    return {"imageFile": ("a.png", image, "image/png")}


async def test_a_retried_async_request_gets_the_same_job(gw):
    headers = {"Idempotency-Key": "order-42"}
    first = await gw.client.post("/api/async/upscale-image", files=files(), headers=headers)
    again = await gw.client.post("/api/async/upscale-image", files=files(), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    await gw.wait_job(first.json()["job_id"])
    other = await gw.client.post("/api/async/upscale-image", files=files(), headers={"Idempotency-Key": "order-43"})
    await gw.wait_job(other.json()["job_id"])
    assert other.json()["job_id"] != first.json()["job_id"]
    assert sum(f.stats()["prompts_received"] for f in gw.fakes) == 2
    assert (await gw.client.get("/api/jobs/stats")).json()["total_jobs"] == 2


async def test_concurrent_sync_requests_with_one_key_share_one_job(gw):
    headers = {"Idempotency-Key": "burst-1"}
    answers = await asyncio.gather(*(gw.client.post("/api/upscale-image", files=files(), headers=headers)
                                     for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.json()["jobId"] for a in answers}) == 1
    assert len({a.json()["imageBase64"] for a in answers}) == 1
    assert sum(f.stats()["prompts_received"] for f in gw.fakes) == 1


async def test_a_key_reused_for_another_request_is_refused(gw):
    headers = {"Idempotency-Key": "order-7"}
    first = await gw.client.post("/api/async/upscale-image", files=files(), headers=headers)
    other_image = await gw.client.post("/api/async/upscale-image", files=files(png(20, 20)), headers=headers)
    other_task = await gw.client.post("/api/async/remove-background", files=files(), headers=headers)
    assert other_image.status_code == other_task.status_code == 422
    assert other_image.json()["code"] == "idempotency_key_reused"
    assert other_image.json()["job_id"] == first.json()["job_id"]
    bad = await gw.client.post("/api/async/upscale-image", files=files(), headers={"Idempotency-Key": "no spaces"})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]
