"""What a request costs in memory: a large upload is parsed in memory and arrives whole; requests
start no worker threads (each would keep a malloc arena of its own)."""

from __future__ import annotations

import asyncio
import threading

from support.images import noise_png, png


async def test_a_3_mb_upload_is_stored_byte_for_byte(gw):
    image = noise_png(1000, 1000)
    assert len(image) > 2 * 1024 * 1024  # past the 1 MB a form parser spools to disk by default
    resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("big.png", image, "image/png")})
    assert resp.status_code == 202, resp.text
    job = await gw.gateway.store.get(resp.json()["job_id"])
    assert job is not None and job.input_blob
    assert await gw.gateway.blobs.inner.get(job.input_blob) == image  # on disk, not only in memory
    assert job.params["original_filename"] == "big.png"


async def test_concurrent_requests_start_no_worker_thread_each(gw):
    before = threading.active_count()
    answers = await asyncio.gather(*(
        gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        for _ in range(24)))
    assert [a.status_code for a in answers] == [202] * 24
    assert threading.active_count() < before + 12  # the blob and SQLite threads, not one per request
