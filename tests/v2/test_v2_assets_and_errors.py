"""v2 assets (dedup, hash checks, Range) and the typed error envelope for bad input."""

from __future__ import annotations

import httpx
import pytest
from blake3 import blake3

from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph


@pytest.fixture
def gateway_options() -> dict[str, object]:
    """This module's gateway takes request bodies of at most 4 KiB."""
    return {"max_upload_bytes": 4096}


async def _upload(client: httpx.AsyncClient, data: bytes, name: str = "in.png", **fields: str) -> httpx.Response:
    return await client.post("/api/v2/assets", files={"file": (name, data, "image/png")},
                             data={"file_path": name, **fields})


def _error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


async def test_uploads_are_content_addressed_and_deduplicated(v2gw: RunningGateway) -> None:
    data = png(20, 20)
    digest = "blake3:" + blake3(data).hexdigest()
    assert (await v2gw.client.head(f"/api/v2/assets/by-hash/{digest}")).status_code == 404

    first = await _upload(v2gw.client, data, expected_hash=digest)
    second = await _upload(v2gw.client, data, "other.png")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["hash"] == second.json()["hash"] == digest
    assert first.json()["id"] != second.json()["id"] and second.json()["file_path"] == "other.png"
    assert (await v2gw.client.head(f"/api/v2/assets/by-hash/{digest}")).status_code == 200
    assert first.json()["url"].startswith(v2gw.url + "/api/v2/assets/")


async def test_content_answers_ranges(v2gw: RunningGateway) -> None:
    data = png(30, 30)
    asset = (await _upload(v2gw.client, data)).json()

    whole = await v2gw.client.get(asset["url"])
    part = await v2gw.client.get(asset["url"], headers={"Range": "bytes=4-9"})
    tail = await v2gw.client.get(asset["url"], headers={"Range": "bytes=-5"})
    beyond = await v2gw.client.get(asset["url"], headers={"Range": f"bytes={len(data)}-"})

    assert whole.content == data and whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206 and part.content == data[4:10]
    assert part.headers["content-range"] == f"bytes 4-9/{len(data)}"
    assert tail.status_code == 206 and tail.content == data[-5:]
    _error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"


async def test_a_declared_hash_that_does_not_match_is_a_409(v2gw: RunningGateway) -> None:
    error = _error(await _upload(v2gw.client, png(), expected_hash="blake3:" + "a" * 64), 409, "hash_mismatch")
    assert error["details"]["expected_hash"] == "blake3:" + "a" * 64


@pytest.mark.parametrize(("request_args", "status", "code"), [
    ({"method": "GET", "url": "/api/v2/jobs/8b1e0f6e-0000-4000-8000-000000000000"}, 404, "not_found"),
    ({"method": "POST", "url": "/api/v2/jobs/unknown/cancel"}, 404, "not_found"),
    ({"method": "GET", "url": "/api/v2/jobs/unknown/events"}, 404, "not_found"),
    ({"method": "GET", "url": "/api/v2/assets/unknown"}, 404, "not_found"),
    ({"method": "POST", "url": "/api/v2/jobs", "content": b"[1, 2"}, 400, "invalid_request"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": ["not", "an", "object"]}, 400, "invalid_request"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {}}, 422, "invalid_workflow"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {"workflow": {"1": {"inputs": {}}}}}, 422, "invalid_workflow"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {"workflow": {"nodes": [], "links": [], "x": 1}}},
     422, "workflow_format_ui"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {"workflow": invert_graph(), "webhook_url": "http://x"}},
     422, "invalid_workflow"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {"workflow": invert_graph(), "extra_data": {"k": 1}}},
     400, "invalid_request"),
    ({"method": "POST", "url": "/api/v2/jobs", "json": {"workflow": invert_graph(), "metadata": {"k": 1}}},
     422, "metadata_invalid"),
    ({"method": "POST", "url": "/api/v2/jobs",
      "json": {"workflow": invert_graph({"__type": "core/ASSET", "info": {"id": "nope"}})}}, 422, "missing_asset"),
    ({"method": "POST", "url": "/api/v2/assets/from-hash", "json": {"hash": "md5:abc"}}, 400, "invalid_request"),
    ({"method": "POST", "url": "/api/v2/assets/from-hash", "json": {"hash": "blake3:" + "b" * 64}},
     404, "blob_not_found"),
    ({"method": "POST", "url": "/api/v2/assets", "json": {"file": "x"}}, 415, "unsupported_media_type"),
    ({"method": "POST", "url": "/api/v2/assets", "files": {"other": ("a.png", b"x")}}, 400, "invalid_request"),
    ({"method": "GET", "url": "/api/v2/jobs?limit=1000"}, 400, "invalid_request"),
    ({"method": "GET", "url": "/api/v2/jobs?status=done"}, 400, "invalid_request"),
    ({"method": "GET", "url": "/api/v2/jobs?cursor=99999999999999999999"}, 400, "invalid_request"),
    ({"method": "GET", "url": "/api/v2/jobs?cursor=abc"}, 400, "invalid_request"),
    ({"method": "GET", "url": "/api/v2/nothing-here"}, 404, "not_found"),
    ({"method": "DELETE", "url": "/api/v2/jobs"}, 405, "method_not_allowed"),
])
async def test_bad_requests_get_the_typed_error_envelope(v2gw: RunningGateway, request_args, status, code) -> None:
    _error(await v2gw.client.request(**request_args), status, code)


async def test_an_upload_over_the_cap_is_a_413_in_the_v2_envelope(v2gw: RunningGateway) -> None:
    _error(await _upload(v2gw.client, b"\0" * 8192, "big.bin"), 413, "payload_too_large")


async def test_deleting_an_asset_keeps_the_bytes_other_assets_name(v2gw: RunningGateway) -> None:
    data = png(12, 12)
    first, second = (await _upload(v2gw.client, data)).json(), (await _upload(v2gw.client, data, "b.png")).json()

    assert (await v2gw.client.delete(f"/api/v2/assets/{first['id']}")).status_code == 204

    _error(await v2gw.client.get(f"/api/v2/assets/{first['id']}"), 404, "not_found")
    _error(await v2gw.client.delete(f"/api/v2/assets/{first['id']}"), 404, "not_found")
    assert (await v2gw.client.get(second["url"])).content == data


async def test_a_head_probe_answers_with_the_headers_of_a_json_error(v2gw: RunningGateway) -> None:
    bad = await v2gw.client.head("/api/v2/assets/by-hash/nil")
    unknown = await v2gw.client.head("/api/v2/assets/by-hash/blake3:" + "c" * 64)

    assert (bad.status_code, unknown.status_code) == (400, 404)
    assert all(r.headers["content-type"] == "application/json" and r.content == b"" for r in (bad, unknown))


async def test_the_job_list_pages_newest_first_with_next_cursor(v2gw: RunningGateway) -> None:
    asset = (await _upload(v2gw.client, png(8, 8))).json()
    graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
    ids = [(await v2gw.client.post("/api/v2/jobs", json={"workflow": graph})).json()["id"] for _ in range(3)]

    first = (await v2gw.client.get("/api/v2/jobs", params={"limit": 2})).json()
    second = (await v2gw.client.get("/api/v2/jobs", params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids[::-1]
    assert "next_cursor" not in second
