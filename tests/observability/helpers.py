"""Shared steps of the observability tests: submitting jobs, steering them, scraping, reading logs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from fake_comfyui import FakeComfyUI
from support.gateway import RunningGateway
from support.images import png
from support.waiting import eventually

UPSCALE = "upscale-image"
REMOVE_BG = "remove-background"


async def submit(gw: RunningGateway, task: str, headers: dict[str, str] | None = None) -> str:
    resp = await gw.client.post(f"/api/async/{task}", files={"imageFile": ("a.png", png(16, 16), "image/png")},
                                headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


async def run_job(gw: RunningGateway, task: str, expect: str = "completed") -> str:
    """Submit one job, wait for it to finish with the `expect`ed status; returns its id."""
    job_id = await submit(gw, task)
    status = await gw.wait_job(job_id)
    assert status["status"] == expect, status
    return job_id


async def steer_to(gw: RunningGateway, target: FakeComfyUI, fakes: list[FakeComfyUI]) -> None:
    """Open every other server's breaker (an operator's forced open) so new work goes to `target`."""
    for fake in fakes:
        action = "close" if fake is target else "open"
        resp = await gw.client.post(f"/api/circuit-breakers/{fake.host_port}/{action}")
        assert resp.status_code == 200, resp.text




async def wait_status(gw: RunningGateway, path: str, code: int, status: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll `path` until it answers `code` with body status `status`; returns that body."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        resp = await gw.client.get(path)
        seen["body"] = resp.json()
        return resp.status_code == code and seen["body"]["status"] == status

    await eventually(check, timeout, f"{path} -> {code} {status} (last: {seen.get('body')})")
    return seen["body"]


@dataclass
class Mix:
    """The known job mix run by `run_known_mix`, and what the metrics must say about it."""

    a: str
    b: str
    failed: list[tuple[str, str, str, str]] = field(default_factory=list)  # (job id, type, instance, message)


async def run_known_mix(gw: RunningGateway, fakes: list[FakeComfyUI]) -> Mix:
    """Ten jobs, in order:

    on A: upscale ok x2, upscale FAIL, remove-bg ok
    on B: upscale ok x3, remove-bg ok x2, remove-bg FAIL

    upscale 6 (5 ok, 1 failed), remove-bg 4 (3 ok, 1 failed); A 4 (3 ok), B 6 (5 ok).
    """
    fa, fb = fakes
    mix = Mix(a=fa.host_port, b=fb.host_port)
    await steer_to(gw, fa, fakes)
    for _ in range(2):
        await run_job(gw, UPSCALE)
    fa.fail_next(1, message="boom on A")
    mix.failed.append((await run_job(gw, UPSCALE, "failed"), UPSCALE, mix.a, "boom on A"))
    await run_job(gw, REMOVE_BG)
    await steer_to(gw, fb, fakes)
    for _ in range(3):
        await run_job(gw, UPSCALE)
    for _ in range(2):
        await run_job(gw, REMOVE_BG)
    fb.fail_next(1, message="boom on B")
    mix.failed.append((await run_job(gw, REMOVE_BG, "failed"), REMOVE_BG, mix.b, "boom on B"))
    return mix


async def scrape(gw: RunningGateway) -> dict[str, Metric]:
    """GET /metrics parsed by prometheus-client's own parser, by family name."""
    resp = await gw.client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(resp.text)}


def sample_value(family: Metric, suffix: str = "", **labels: str) -> float | None:
    """The value of the one sample of `family` (name + `suffix`) with exactly these labels, or None."""
    name = family.name + suffix
    for sample in family.samples:
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines log file, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
