"""The v2 event stream: ids on every event, Last-Event-ID resumes it, and it holds no upstream socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph
from support.waiting import eventually

Frame = tuple[str, str, dict[str, Any]]


async def _submit(client: httpx.AsyncClient) -> dict[str, Any]:
    asset = (await client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                               data={"file_path": "in.png"})).json()
    graph = invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}})
    return (await client.post("/api/v2/jobs", json={"workflow": graph})).json()


async def _frames(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None,
                  stop_after: int | None = None) -> list[Frame]:
    """The stream's frames (id, event, data), until it ends or `stop_after` frames were read."""
    frames: list[Frame] = []
    fields: dict[str, str] = {}
    async with client.stream("GET", url, headers=headers) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
            elif not line and "event" in fields:
                frames.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
                if stop_after is not None and len(frames) >= stop_after:
                    break
    return frames


async def test_last_event_id_replays_exactly_what_was_missed(v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.set_service_time(1.5)
    job = await _submit(v2gw.client)

    before = await _frames(v2gw.client, job["urls"]["events"], stop_after=3)  # queued, running, a progress
    assert [e for _, e, _ in before[:2]] == ["status", "status"] and before[2][1] == "progress"
    after = await _frames(v2gw.client, job["urls"]["events"], headers={"Last-Event-ID": before[-1][0]})

    everything = [*before, *after]
    statuses = [d["status"] for _, e, d in everything if e == "status"]
    assert statuses == ["queued", "running", "succeeded"]  # each once: nothing replayed twice
    assert [e for _, e, _ in after].count("output") == 1 and after[-1][1] == "status"
    timeline_ids = [int(i) for i, e, _ in everything if e != "progress"]
    assert timeline_ids == list(range(1, len(timeline_ids) + 1))
    progress = [d["value"] for _, e, d in everything if e == "progress"]
    assert progress == sorted(progress)

    # A client that saw everything gets nothing more; one that saw nothing gets the whole timeline.
    assert await _frames(v2gw.client, job["urls"]["events"], headers={"Last-Event-ID": after[-1][0]}) == []
    fresh = await _frames(v2gw.client, job["urls"]["events"])
    assert [e for _, e, _ in fresh] == ["status", "status", "output", "status"]


async def test_many_streams_open_no_upstream_socket(v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.set_service_time(1.0)
    job = await _submit(v2gw.client)

    def posted() -> bool:  # its prompt is on a server, followed on the socket the gateway keeps there
        return sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 1

    await eventually(posted, timeout=10)
    sockets_before = sum(f.stats()["sockets_seen"] for f in v2gw.fakes)

    streams = await asyncio.gather(*(_frames(v2gw.client, job["urls"]["events"]) for _ in range(12)))

    assert all(frames[-1][2] == {"status": "succeeded"} for frames in streams)
    assert sum(f.stats()["sockets_seen"] for f in v2gw.fakes) == sockets_before
