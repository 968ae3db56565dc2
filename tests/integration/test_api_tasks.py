"""End to end over real sockets: the seed's task endpoints on a gateway with two fake ComfyUI servers."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import decode, jpeg, noise_png, png


def image_of(data_uri: str) -> Image.Image:
    head, _, b64 = data_uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64")
    return decode(base64.b64decode(b64))


def has_real_alpha(img: Image.Image) -> bool:
    alpha = img.getchannel("A")
    low, high = alpha.getextrema()
    return img.mode == "RGBA" and low == 0 and high == 255


async def test_sync_upscale_png_is_exactly_twice_the_size(gw):
    resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("in.png", png(40, 30), "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"imageBase64", "promptId", "jobId", "format"} and body["format"] == "PNG"
    assert body["imageBase64"].startswith("data:image/png;base64,")
    assert image_of(body["imageBase64"]).size == (80, 60)
    assert body["promptId"] and body["jobId"]
    assert resp.headers["x-request-id"]


async def test_a_large_result_is_the_exact_json_of_a_small_one(gw):
    # Past a megabyte the answer is sent in parts: the bytes must stay those of a compact JSON body.
    resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("in.png", noise_png(400, 300), "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["imageBase64"]) > 1024 * 1024
    assert resp.content == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.headers["content-type"] == "application/json"
    assert image_of(body["imageBase64"]).size == (800, 600)
    result = await gw.client.get(f"/api/jobs/{body['jobId']}/result")
    assert result.json()["result"]["image_base64"] == body["imageBase64"]
    assert result.content == json.dumps(result.json(), ensure_ascii=False, separators=(",", ":")).encode()


async def test_sync_remove_background_jpeg_has_alpha(gw):
    resp = await gw.client.post("/api/remove-background", files={"imageFile": ("in.jpg", jpeg(64, 64), "image/jpeg")})
    assert resp.status_code == 200, resp.text
    img = image_of(resp.json()["imageBase64"])
    assert img.size == (64, 64)
    assert has_real_alpha(img)


async def test_webp_in_works_like_png_and_jpeg(gw):
    from support.images import encode

    webp = encode(decode(png(30, 20)).convert("RGB"), "WEBP")
    resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("in.webp", webp, "image/webp")})
    assert resp.status_code == 200, resp.text
    assert image_of(resp.json()["imageBase64"]).size == (60, 40)


async def test_upscale_remove_bg_chains_both(gw):
    resp = await gw.client.post("/api/upscale-remove-bg", files={"imageFile": ("in.png", png(32, 32), "image/png")})
    assert resp.status_code == 200, resp.text
    img = image_of(resp.json()["imageBase64"])
    assert img.size == (64, 64)
    assert has_real_alpha(img)


async def test_accept_image_returns_raw_bytes_and_format_param_converts(gw):
    resp = await gw.client.post("/api/upscale-image?format=jpeg", headers={"Accept": "image/*"},
                                files={"imageFile": ("in.png", png(20, 20), "image/png")})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    img = decode(resp.content)
    assert (img.format, img.size) == ("JPEG", (40, 40))


@pytest.mark.parametrize("query", ["?async=true", "?mode=async"])
async def test_sync_route_becomes_async_on_request(gw, query):
    resp = await gw.client.post(f"/api/upscale-image{query}", files={"imageFile": ("a.png", png(), "image/png")})
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "pending"
    status = await gw.wait_job(body["job_id"])
    assert status["status"] == "completed"


async def test_async_flow_status_and_result_shapes(gw):
    resp = await gw.client.post("/api/async/remove-background", files={"imageFile": ("a.png", png(), "image/png")})
    assert resp.status_code == 202
    accepted = resp.json()
    assert set(accepted) == {"job_id", "status", "message", "estimated_completion_time", "status_url", "result_url",
                             "format", "crop"}
    job_id = accepted["job_id"]
    assert accepted["status_url"] == f"/api/jobs/{job_id}/status"
    assert accepted["result_url"] == f"/api/jobs/{job_id}/result"

    status = await gw.wait_job(job_id)
    for key in ("job_id", "status", "type", "processing_time_seconds", "estimated_remaining_time_seconds",
                "progress_percentage", "comfyui_instance"):
        assert key in status
    assert status["type"] == "remove-background"
    assert status["progress_percentage"] == 100
    assert status["comfyui_instance"] in {f.host_port for f in gw.fakes}

    result = (await gw.client.get(accepted["result_url"])).json()
    assert result["job_id"] == job_id and result["status"] == "completed"
    assert has_real_alpha(image_of(result["result"]["image_base64"]))
    assert result["result"]["prompt_id"]

    raw = await gw.client.get(accepted["result_url"], headers={"Accept": "image/png"})
    assert raw.headers["content-type"] == "image/png"
    assert decode(raw.content).mode == "RGBA"


async def test_result_before_finish_is_409_with_status(gw):
    for fake in gw.fakes:
        fake.pause()
    resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
    job_id = resp.json()["job_id"]
    early = await gw.client.get(f"/api/jobs/{job_id}/result")
    assert early.status_code == 409
    assert early.json()["status"] in ("pending", "processing")
    for fake in gw.fakes:
        fake.resume()
    assert (await gw.wait_job(job_id))["status"] == "completed"
    assert (await gw.client.get(f"/api/jobs/{job_id}/result")).status_code == 200


async def test_progress_comes_from_comfyui_events(gw):
    gw.fakes[0].set_service_time(1.0)
    gw.fakes[1].set_service_time(1.0)
    job_id = (await gw.client.post("/api/async/upscale-image",
                                   files={"imageFile": ("a.png", png(), "image/png")})).json()["job_id"]
    seen = set()
    for _ in range(100):
        status = (await gw.client.get(f"/api/jobs/{job_id}/status")).json()
        seen.add(status["progress_percentage"])
        if status["status"] == "completed":
            break
        await _tick()
    assert status["status"] == "completed"
    assert any(0 < p < 100 for p in seen), seen  # partial progress was reported while it ran


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_output_size_is_not_taken_from_comfyui_cache(gw):
    """Two identical uploads run twice (unique filename prefix), and both come back whole."""
    payload = png(24, 24)
    first = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", payload, "image/png")})
    second = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", payload, "image/png")})
    assert first.json()["promptId"] != second.json()["promptId"]
    assert image_of(first.json()["imageBase64"]).size == image_of(second.json()["imageBase64"]).size == (48, 48)


async def test_workflow_parameter_and_generic_route(gw):
    image = {"imageFile": ("a.png", png(40, 40), "image/png")}
    resp = await gw.client.post("/api/run/upscale-image?scale_by=0.25", files=image)
    assert resp.status_code == 200, resp.text
    assert image_of(resp.json()["imageBase64"]).size == (40, 40)  # 4x then 0.25
    listing = (await gw.client.get("/api/workflows")).json()
    assert {w["name"] for w in listing["workflows"]} >= {"remove-background", "upscale-image", "upscale-remove-bg"}
    bad = await gw.client.post("/api/run/upscale-image?scale_by=abc", files=image)
    assert bad.status_code == 400 and "scale_by" in bad.json()["error"]
    missing = await gw.client.post("/api/run/nope", files=image)
    assert missing.status_code == 404


async def test_output_files_are_written_when_enabled(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), output_files=True)) as gw:
        resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        job_id = resp.json()["jobId"]
    written = tmp_path / "outputs" / job_id / "result.png"
    assert Image.open(io.BytesIO(written.read_bytes())).size == (128, 96)


async def test_upload_input_mode_runs_on_core_nodes_only(fake_servers, tmp_path):
    """INPUT_MODE=upload: the image goes through /upload/image and core LoadImage, no custom loader."""
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), input_mode="upload")) as gw:
        resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.jpg", jpeg(30, 20), "image/jpeg")})
        assert resp.status_code == 200, resp.text
        assert image_of(resp.json()["imageBase64"]).size == (60, 40)
    uploaded = list(fakes[0].storage.input_dir.iterdir())
    assert [p.suffix for p in uploaded] == [".jpg"]


async def test_any_workflow_file_becomes_an_endpoint(fake_servers, tmp_path):
    import json

    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "invert.json").write_text(json.dumps({
        "name": "invert", "input": {"node": "1", "mode": "upload"}, "result": {"node": "3"},
        "graph": {"1": {"class_type": "LoadImage", "inputs": {"image": ""}},
                  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}}}}))
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), workflows_dir=folder)) as gw:
        image = {"imageFile": ("a.png", png(8, 8, (10, 20, 30)), "image/png")}
        resp = await gw.client.post("/api/run/invert", files=image)
        assert resp.status_code == 200, resp.text
    assert image_of(resp.json()["imageBase64"]).convert("RGB").getpixel((0, 0)) == (245, 235, 225)
