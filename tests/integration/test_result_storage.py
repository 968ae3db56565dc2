"""Where a named workflow's result lives, over real sockets: a PNG result is its first output, written
once as it arrives from the server and served without the workflow in its text chunks; a result in
another format is a file of its own; a result refused after it arrived leaves no file behind."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image

from comfy_gateway.images import strip_png_text
from comfy_gateway.jobs.outputs import output_key
from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png

TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")


async def upscale(gw: RunningGateway, **fields: str) -> str:
    resp = await gw.client.post("/api/async/upscale-image", data=fields,
                                files={"imageFile": ("in.png", png(24, 16), "image/png")})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


async def as_served_by_the_server(fake_url: str, gw: RunningGateway, job_id: str) -> bytes:
    prompt_id = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()["prompt_id"]
    async with httpx.AsyncClient(base_url=fake_url) as comfy:
        entry = (await comfy.get(f"/history/{prompt_id}")).json()[prompt_id]
        [ref] = [image for node in entry["outputs"].values() for image in node.get("images", [])]
        return (await comfy.get("/view", params=ref)).content


async def test_a_png_result_is_its_first_output_stored_once_and_served_without_its_text(fake_servers, tmp_path):
    [fake] = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of([fake]))) as gw:
        job_id = await upscale(gw)
        assert (await gw.wait_job(job_id))["status"] == "completed"
        raw = await as_served_by_the_server(fake.url, gw, job_id)
        job = await gw.gateway.store.get(job_id)
        assert job is not None and job.result_blob == output_key(job_id, job.attempt, 0)
        assert not await gw.gateway.blobs.exists(f"results/{job_id}-{job.attempt}")  # no second copy
        output = await gw.client.get(f"/api/jobs/{job_id}/outputs/0")
        assert output.content == raw and b"tEXt" in raw  # the output: byte for byte what the server made
        body = (await gw.client.get(f"/api/jobs/{job_id}/result")).json()
        result = base64.b64decode(body["result"]["image_base64"].split(",", 1)[1])
        assert result == strip_png_text(raw) and not any(kind in result for kind in TEXT_CHUNKS)
        assert job.result_meta["size_bytes"] == len(result)
        assert Image.open(io.BytesIO(result)).tobytes() == Image.open(io.BytesIO(raw)).tobytes()


async def test_a_sync_answer_is_the_result_without_its_text(fake_servers, tmp_path):
    [fake] = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of([fake]))) as gw:
        resp = await gw.client.post("/api/upscale-image", headers={"Accept": "image/png"},
                                    files={"imageFile": ("in.png", png(24, 16), "image/png")})
        assert resp.status_code == 200, resp.text
        raw = await as_served_by_the_server(fake.url, gw, resp.headers["X-Job-ID"])
        assert resp.content == strip_png_text(raw) and resp.content != raw


async def test_a_result_in_another_format_is_a_file_of_its_own(fake_servers, tmp_path):
    [fake] = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of([fake]))) as gw:
        job_id = await upscale(gw, format="webp")
        assert (await gw.wait_job(job_id))["status"] == "completed"
        job = await gw.gateway.store.get(job_id)
        assert job is not None and job.result_blob == f"results/{job_id}-{job.attempt}"
        result = (await gw.client.get(f"/api/jobs/{job_id}/result")).json()["result"]
        assert result["image_base64"].startswith("data:image/webp;base64,")
        output = await gw.client.get(f"/api/jobs/{job_id}/outputs/0")
        assert output.headers["content-type"] == "image/png"
        assert output.content == await as_served_by_the_server(fake.url, gw, job_id)


async def test_a_result_refused_for_its_pixels_leaves_no_file(fake_servers, tmp_path):
    """The upscaled result (4x) is past MAX_RESULT_PIXELS: it was stored while it arrived, and goes."""
    [fake] = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of([fake]), max_result_pixels=100, max_attempts=1)
    async with running_gateway(settings) as gw:
        job_id = await upscale(gw)
        status = await gw.wait_job(job_id)
        assert status["status"] == "failed" and "pixels" in str(status), status
        job = await gw.gateway.store.get(job_id)
        assert job is not None and job.outputs == []
        assert not await gw.gateway.blobs.exists(output_key(job_id, job.attempt, 0))
