"""Asset uploads honour Idempotency-Key as the contract says (single-use, 422 on reuse, given back
only when nothing was minted); the job list pages by key, so new jobs do not shift its pages."""

from __future__ import annotations

import asyncio

import httpx
from blake3 import blake3
from comfy_sdk import AsyncComfy

from support.gateway import RunningGateway
from support.images import png
from support.v2 import LOADER, invert_graph
from support.v2_contract import validate


async def _upload(client: httpx.AsyncClient, data: bytes, key: str | None, **fields: str) -> httpx.Response:
    return await client.post("/api/v2/assets", files={"file": ("in.png", data, "image/png")},
                             data={"file_path": "in.png", **fields}, headers={"Idempotency-Key": key} if key else {})


async def test_an_asset_key_is_single_use(v2gw: RunningGateway) -> None:
    client = v2gw.client
    first = await _upload(client, png(9, 9), "upload-1")
    again = await _upload(client, png(9, 9), "upload-1")
    other_bytes = await _upload(client, png(10, 10), "upload-1")

    assert first.status_code == 201
    for refused in (again, other_bytes):
        assert refused.status_code == 422
        validate("error", refused.json())
        assert refused.json()["error"]["code"] == "idempotency_key_reuse"
    assert (await _upload(client, png(9, 9), "upload-2")).status_code == 200  # a new key: deduplicated bytes
    assert (await _upload(client, png(9, 9), None)).status_code == 200  # no key: no rule


async def test_concurrent_uploads_with_one_key_mint_one_asset(v2gw: RunningGateway) -> None:
    answers = await asyncio.gather(*(_upload(v2gw.client, png(12, 12), "same-key") for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 422, 422, 422]


async def test_a_key_whose_upload_minted_nothing_can_be_used_again(v2gw: RunningGateway) -> None:
    data = png(11, 11)
    mismatch = await _upload(v2gw.client, data, "retry-me", expected_hash="blake3:" + "0" * 64)
    assert mismatch.status_code == 409 and mismatch.json()["error"]["code"] == "hash_mismatch"
    bad = await _upload(v2gw.client, data, "retry-me", expected_hash="not-a-hash")
    assert bad.status_code == 400
    fixed = await _upload(v2gw.client, data, "retry-me", expected_hash="blake3:" + blake3(data).hexdigest())
    assert fixed.status_code == 201, fixed.text


async def test_the_sdk_uploads_with_its_key_and_new_jobs_do_not_shift_the_pages(
        sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.pause()  # jobs stay as they are while the pages are read
    asset = sdk.assets.from_bytes(png(13, 13), filename="in.png")
    await asset.commit()  # HEAD by-hash misses, so a multipart POST with the handle's key
    assert asset.created_new is True
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", asset)
    older = [(await sdk.submit(workflow)).id for _ in range(4)]

    first = (await v2gw.client.get("/api/v2/jobs", params={"limit": 2})).json()
    newer = [(await sdk.submit(workflow)).id for _ in range(2)]  # would push an offset's pages along
    second = (await v2gw.client.get("/api/v2/jobs", params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [j["id"] for j in first["jobs"] + second["jobs"]] == older[::-1]
    assert [s.id async for s in sdk.list_jobs()] == [*newer[::-1], *older[::-1]]  # the SDK follows the cursors
    bad = await v2gw.client.get("/api/v2/jobs", params={"cursor": first["next_cursor"][:-3] + "!!!"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    for fake in v2gw.fakes:
        fake.resume()
