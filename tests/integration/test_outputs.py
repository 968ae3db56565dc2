"""Every output of a job, over real sockets: listed, downloaded whole and by range, from the gateway's
blob store or from S3 (moto) through presigned URLs, and gone (410) once RESULT_TTL has passed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from comfy_gateway.access import ANONYMOUS
from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.s3 import create_bucket, object_keys
from support.waiting import eventually

WORKFLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"
CAPTION = "a caption with ünïcode ✓"
Start = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start(fake_servers, tmp_path) -> AsyncIterator[Start]:
    """`await start(**settings)`: a gateway serving the fixture workflows in front of one fake server."""
    async with contextlib.AsyncExitStack() as stack:
        count = itertools.count()

        async def run(**overrides: Any) -> RunningGateway:
            fakes = await fake_servers(1)
            settings = gateway_settings(tmp_path / f"gw{next(count)}", hosts_of(fakes), workflows_dir=WORKFLOWS,
                                        **overrides)
            running = await stack.enter_async_context(running_gateway(settings))
            running.fakes = fakes
            return running

        yield run


async def run_mixed(gw: RunningGateway) -> str:
    resp = await gw.client.post("/api/run/mixed-outputs?async=true", data={"caption": CAPTION},
                                files={"imageFile": ("a.png", png(64, 48), "image/png")})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    status = await gw.wait_job(job_id)
    assert status["status"] == "completed", status
    return str(job_id)


async def truth(gw: RunningGateway, job_id: str) -> list[bytes]:
    """The bytes of every output as the ComfyUI server itself serves them (and the text it reported)."""
    info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
    [fake] = gw.fakes
    async with httpx.AsyncClient(base_url=fake.url) as comfy:
        entry = (await comfy.get(f"/history/{info['prompt_id']}")).json()[info["prompt_id"]]
        files = []
        for node in ("3", "5"):
            for ref in entry["outputs"][node]["images"]:
                files.append((await comfy.get("/view", params=ref)).content)
        [clip] = entry["outputs"]["7"]["gifs"]
        params = {k: clip[k] for k in ("filename", "subfolder", "type")}
        files.append((await comfy.get("/view", params=params)).content)
    assert entry["outputs"]["8"]["text"] == [CAPTION]
    return [*files, CAPTION.encode()]


def check_listing(body: dict[str, Any], expected: list[bytes]) -> list[dict[str, Any]]:
    outputs = body["outputs"]
    assert body["count"] == 5 and len(outputs) == 5
    assert [o["content_type"] for o in outputs] == ["image/png"] * 3 + ["video/mp4", "text/plain; charset=utf-8"]
    assert [o["kind"] for o in outputs] == ["images", "images", "images", "gifs", "text"]
    assert [o["node_id"] for o in outputs] == ["3", "3", "5", "7", "8"]
    assert [o["size"] for o in outputs] == [len(data) for data in expected]
    assert [o["sha256"] for o in outputs] == [hashlib.sha256(data).hexdigest() for data in expected]
    assert outputs[3]["filename"].endswith(".mp4") and expected[3][4:8] == b"ftyp"
    assert body["expires_at"] is not None
    return list(outputs)


async def check_download(client: httpx.AsyncClient, url: str, data: bytes, content_type: str) -> None:
    whole = await client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == content_type
    middle = await client.get(url, headers={"Range": f"bytes=3-{len(data) // 2}"})
    assert middle.status_code == 206 and middle.content == data[3:len(data) // 2 + 1]
    assert middle.headers["content-range"] == f"bytes 3-{len(data) // 2}/{len(data)}"
    tail = await client.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == data[-7:]
    rest = await client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert rest.status_code == 206 and rest.content == data[-10:]


async def test_every_output_is_listed_and_downloads_byte_exact(start: Start) -> None:
    gw = await start()
    job_id = await run_mixed(gw)
    expected = await truth(gw, job_id)
    body = (await gw.client.get(f"/api/jobs/{job_id}/outputs")).json()
    outputs = check_listing(body, expected)
    for output, data in zip(outputs, expected, strict=True):
        assert output["url"] == output["gateway_url"] == f"{gw.url}/api/jobs/{job_id}/outputs/{output['index']}"
        await check_download(gw.client, output["url"], data, output["content_type"])
    first = await gw.client.get(f"/api/jobs/{job_id}/outputs/0")
    assert first.headers["etag"] == f'"{outputs[0]["sha256"]}"' and first.headers["accept-ranges"] == "bytes"
    cached = await gw.client.get(f"/api/jobs/{job_id}/outputs/0", headers={"If-None-Match": first.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    head = await gw.client.head(f"/api/jobs/{job_id}/outputs/3", headers={"Range": "bytes=-10"})
    assert head.status_code == 206 and head.content == b"" and head.headers["content-length"] == "10"
    size = outputs[3]["size"]
    assert head.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    stale = await gw.client.get(f"/api/jobs/{job_id}/outputs/0", headers={"Range": "bytes=0-3", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == expected[0]  # changed since: the whole file
    result = (await gw.client.get(f"/api/jobs/{job_id}/result")).json()  # the seed's shape, first image
    assert result["status"] == "completed" and result["result"]["image_base64"].startswith("data:image/png;base64,")


async def test_bad_ranges_and_indexes_get_clear_errors(start: Start) -> None:
    gw = await start()
    job_id = await run_mixed(gw)
    url = f"/api/jobs/{job_id}/outputs/0"
    size = (await gw.client.get(f"/api/jobs/{job_id}/outputs")).json()["outputs"][0]["size"]
    for bad in (f"bytes={size}-", "bytes=9-3", "bytes=0-1,4-5", "items=0-3", "bytes=-0", "bytes=x-"):
        resp = await gw.client.get(url, headers={"Range": bad})
        assert resp.status_code == 416, bad
        assert resp.json()["code"] == "range_not_satisfiable"
        assert resp.headers["content-range"] == f"bytes */{size}"
    missing = await gw.client.get(f"/api/jobs/{job_id}/outputs/5")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert (await gw.client.get(f"/api/jobs/{job_id}/outputs/-1")).status_code == 422
    assert (await gw.client.get("/api/jobs/nope/outputs")).json()["code"] == "job_not_found"


async def test_outputs_of_an_unfinished_job_are_not_ready(fake_servers, tmp_path) -> None:
    fakes = await fake_servers(1, service_time=2.0)
    settings = gateway_settings(tmp_path, hosts_of(fakes), workflows_dir=WORKFLOWS)
    async with running_gateway(settings) as gw:
        resp = await gw.client.post("/api/run/mixed-outputs?async=true",
                                    files={"imageFile": ("a.png", png(), "image/png")})
        job_id = resp.json()["job_id"]
        early = await gw.client.get(f"/api/jobs/{job_id}/outputs")
        assert early.status_code == 409 and early.json()["code"] == "job_not_finished"
        await gw.client.delete(f"/api/jobs/{job_id}")


async def test_s3_outputs_download_through_presigned_urls(start: Start, s3_endpoint: str) -> None:
    bucket = await create_bucket(s3_endpoint)
    gw = await start(result_store="s3", s3_bucket=bucket, s3_prefix="results", s3_endpoint_url=s3_endpoint)
    job_id = await run_mixed(gw)
    expected = await truth(gw, job_id)
    outputs = check_listing((await gw.client.get(f"/api/jobs/{job_id}/outputs")).json(), expected)
    async with httpx.AsyncClient() as outside:  # a client of the bucket, not of the gateway
        for output, data in zip(outputs, expected, strict=True):
            assert output["url"].startswith(f"{s3_endpoint}/{bucket}/results/outputs/")
            query = parse_qs(urlsplit(output["url"]).query)
            # valid RESULT_URL_TTL (an hour), but not past the job's expiry (JOB_CLEANUP_INTERVAL: 600 s)
            assert query["X-Amz-Signature"] and 500 < int(query["X-Amz-Expires"][0]) <= 600
            await check_download(outside, output["url"], data, output["content_type"])
    redirect = await gw.client.get(f"/api/jobs/{job_id}/outputs/3")
    assert redirect.status_code == 307 and redirect.headers["location"].startswith(f"{s3_endpoint}/{bucket}/")
    followed = await gw.client.get(f"/api/jobs/{job_id}/outputs/3", follow_redirects=True,
                                   headers={"Range": "bytes=0-99"})
    assert followed.status_code == 206 and followed.content == expected[3][:100]
    assert len(await object_keys(s3_endpoint, bucket)) == 5
    assert (await gw.client.delete(f"/api/jobs/{job_id}")).status_code == 200
    assert await object_keys(s3_endpoint, bucket) == []  # the job's objects went with it


async def test_s3_outputs_stream_through_the_gateway_without_redirect(start: Start, s3_endpoint: str) -> None:
    bucket = await create_bucket(s3_endpoint)
    gw = await start(result_store="s3", s3_bucket=bucket, s3_endpoint_url=s3_endpoint, result_redirect=False)
    job_id = await run_mixed(gw)
    expected = await truth(gw, job_id)
    outputs = (await gw.client.get(f"/api/jobs/{job_id}/outputs")).json()["outputs"]
    for output, data in zip(outputs, expected, strict=True):
        await check_download(gw.client, output["gateway_url"], data, output["content_type"])


@pytest.mark.parametrize("store", ["blobs", "s3"])
async def test_an_expired_result_is_gone_and_cleanup_deletes_its_files(start: Start, store: str,
                                                                       request: pytest.FixtureRequest) -> None:
    overrides: dict[str, Any] = {"result_ttl": 1_000, "job_cleanup_interval": 600_000}
    if store == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        overrides.update(result_store="s3", s3_bucket=await create_bucket(endpoint), s3_endpoint_url=endpoint)
    gw = await start(**overrides)
    job_id = await run_mixed(gw)
    job = await gw.service.get(job_id, ANONYMOUS)
    assert job.expires_at is not None and job.finished_at is not None
    assert job.expires_at == pytest.approx(job.finished_at + 1.0, abs=0.5)
    keys = [output.key for output in job.outputs]
    assert all([await gw.gateway.results.exists(key) for key in keys])
    await asyncio.sleep(max(0.0, job.expires_at - time.time()) + 0.05)
    for path in ("outputs", "outputs/0", "result"):
        resp = await gw.client.get(f"/api/jobs/{job_id}/{path}")
        assert resp.status_code == 410, (path, resp.text)
        assert resp.json()["code"] == "result_expired" and "expired" in resp.json()["error"]
        assert resp.json()["expired_at"].endswith("Z")
    # The gateway's own housekeeping (every 5 s) may have come first on a slow machine: one of the two did it.
    assert (await gw.gateway.janitor.sweep())["expired_results"] in (0, 1)

    async def deleted() -> bool:  # a sweep that came first may still be deleting
        return not any([await gw.gateway.results.exists(key) for key in keys])

    await eventually(deleted, timeout=10, what="the expired outputs deleted")
    assert not await gw.gateway.blobs.exists(job.result_blob or "")
    assert (await gw.client.get(f"/api/jobs/{job_id}/status")).json()["status"] == "completed"  # the row stays
    assert (await gw.gateway.janitor.sweep())["expired_results"] == 0  # done once


async def test_animations_and_audio_are_outputs_too(start: Start) -> None:
    gw = await start()
    resp = await gw.client.post("/api/run/animated-outputs?async=true",
                                files={"imageFile": ("a.png", png(32, 32), "image/png")})
    job_id = resp.json()["job_id"]
    assert (await gw.wait_job(job_id))["status"] == "completed"
    outputs = (await gw.client.get(f"/api/jobs/{job_id}/outputs")).json()["outputs"]
    assert [(o["node_id"], o["kind"], o["content_type"]) for o in outputs] == [
        ("4", "images", "image/webp"), ("5", "gifs", "image/gif"), ("6", "images", "image/png"),
        ("8", "audio", "audio/x-wav")]
    for output in outputs:
        data = (await gw.client.get(output["url"])).content
        assert len(data) == output["size"] and hashlib.sha256(data).hexdigest() == output["sha256"]
    gif = (await gw.client.get(outputs[1]["url"])).content
    webp = (await gw.client.get(outputs[0]["url"])).content
    assert gif[:6] == b"GIF89a" and b"ANIM" in webp
    assert outputs[3]["subfolder"] == "audio" and outputs[3]["size"] == 44 + 8000  # header + 0.5 s of 16 bit
