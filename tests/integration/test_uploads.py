"""Uploads larger than the form parser's old spooling threshold (1 MB) arrive whole."""

from __future__ import annotations

from support.images import noise_png


async def test_a_3_mb_upload_is_stored_byte_for_byte(gw):
    image = noise_png(1000, 1000)
    assert len(image) > 2 * 1024 * 1024
    resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("big.png", image, "image/png")})
    assert resp.status_code == 202, resp.text
    job = await gw.gateway.store.get(resp.json()["job_id"])
    assert job is not None and job.input_blob
    assert await gw.gateway.blobs.inner.get(job.input_blob) == image  # on disk, not only in memory
    assert job.params["original_filename"] == "big.png"
