"""Counting what became of the jobs a fault test submitted: completed, failed, unfinished or lost.

A job is lost when the gateway no longer knows it (404) or reports a state it cannot be in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from support.waiting import eventually

from .images import png


@dataclass
class Tally:
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.submitted - self.completed - self.failed - self.unfinished

    def line(self) -> str:
        return f"submitted={self.submitted} completed={self.completed} failed={self.failed} lost={self.lost}"

    def failed_codes(self) -> list[str]:
        return sorted(str((s.get("error_details") or {}).get("code")) for s in self.statuses.values()
                      if s.get("status") == "failed")


async def tally(client: httpx.AsyncClient, ids: Iterable[str]) -> Tally:
    ids = list(ids)
    result = Tally(submitted=len(ids))
    answers = await asyncio.gather(*(client.get(f"/api/jobs/{job_id}/status") for job_id in ids))
    for job_id, resp in zip(ids, answers, strict=True):
        if resp.status_code != 200:
            continue
        body = resp.json()
        result.statuses[job_id] = body
        state = body.get("status")
        if state == "completed":
            result.completed += 1
        elif state == "failed":
            result.failed += 1
        elif state in ("pending", "processing"):
            result.unfinished += 1
    return result


async def submit(client: httpx.AsyncClient, task: str = "upscale-image", size: int = 16,
                 headers: dict[str, str] | None = None) -> str:
    resp = await client.post(f"/api/async/{task}", files={"imageFile": ("in.png", png(size, size), "image/png")},
                             headers=headers)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


async def all_finished(client: httpx.AsyncClient, ids: list[str], timeout: float) -> None:
    """Wait (bounded, polling the job stats) until none of the gateway's jobs is pending or processing."""

    async def done() -> bool:
        by_status = (await client.get("/api/jobs/stats")).json()["by_status"]
        return by_status["pending"] == 0 and by_status["processing"] == 0

    await eventually(done, timeout, what=f"{len(ids)} jobs to finish", step=0.1)


async def breaker_state(client: httpx.AsyncClient, name: str) -> str:
    return str((await client.get("/api/circuit-breakers")).json()["circuit_breakers"][name]["state"])
