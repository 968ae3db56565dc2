"""Lying ComfyUI servers: wrong types, deep nesting, huge answers and frames, giant results.

The real `comfy-gateway serve` runs in front of fake servers running as their own processes, each
told to lie about its next prompt (fake_comfyui/lies.py). Every row ends with the job completed
(retried on a server that told the truth, or followed by polling) or failed with a clear code,
never `internal_error`; the gateway's resident memory, sampled while the job runs, grows by less
than 100 MB. Each test prints its RSS figures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from support.images import png
from support.processes import Proc, processes, start_fake, start_gateway
from support.waiting import eventually

pytestmark = pytest.mark.slow

MB = 1024 * 1024
RSS_BUDGET = 100 * MB
HUGE = 100 * MB


@dataclass
class Peak:
    baseline: int
    peak: int = 0

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)

    def line(self, row: str) -> str:
        return (f"{row}: rss baseline={self.baseline / MB:.1f} MB peak={self.peak / MB:.1f} MB "
                f"growth={self.growth / MB:.1f} MB")


@contextmanager
def rss_peak(proc: Proc) -> Iterator[Peak]:
    """Sample the process's RSS every 10 ms on a thread while the block runs."""
    process = psutil.Process(proc.pid)
    peak = Peak(baseline=process.memory_info().rss)
    peak.peak = peak.baseline
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak.peak = max(peak.peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


async def run_job(client: httpx.AsyncClient, fmt: str = "png") -> dict[str, Any]:
    resp = await client.post(f"/api/async/upscale-image?format={fmt}",
                             files={"imageFile": ("in.png", png(16, 16), "image/png")})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]

    async def finished() -> dict[str, Any] | None:
        info = (await client.get(f"/api/jobs/{job_id}/info")).json()
        return info if info["status"] in ("completed", "failed") else None

    info = dict(await eventually(finished, timeout=60, what="the job to finish", step=0.1))
    # The info's `error` is the original's string; the status carries the error's code and details.
    info["error"] = (await client.get(f"/api/jobs/{job_id}/status")).json().get("error_details")
    return info


async def lied_about(how: str, tmp_path, *, liars: int, honest: int = 0, fmt: str = "png",
                     lie_bytes: int = HUGE, **gateway_env: Any) -> tuple[dict[str, Any], Peak, int]:
    """One warm-up job, then one job while `liars` servers lie about their next prompt; the gateway
    runs with its default limits.

    Returns the job's info, the RSS figures and how many lies the servers told."""
    with processes() as procs:
        fakes = [start_fake(name=f"fake-{n}") for n in range(liars + honest)]
        procs += fakes
        gateway = start_gateway(tmp_path / "data", ",".join(f.host_port for f in fakes), max_attempts=3,
                                max_jobs_per_instance=1, **gateway_env)
        procs.append(gateway)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            warm = await run_job(client, fmt)  # every code path the job takes is loaded before measuring
            assert warm["status"] == "completed", warm
            for fake in fakes[:liars]:
                fake.control("lie_next", how=how, n=1, bytes=lie_bytes)
            with rss_peak(gateway) as peak:
                info = await run_job(client, fmt)
            told = sum(sum(f.stats()["lies_told"].values()) for f in fakes)
    print(f"\n{peak.line(how)}; job {info['status']} after {info['attempt']} attempt(s), "
          f"error={(info.get('error') or {}).get('code')}")
    assert peak.growth < RSS_BUDGET, peak.line(how)
    return info, peak, told


def assert_retried_to_completion(info: dict[str, Any], told: int) -> None:
    assert info["status"] == "completed", info.get("error")
    assert told >= 1, "no server told the lie"
    assert info["attempt"] >= 2, "the job was not run again after the lie"
    codes = {a["error"]["code"] for a in info["attempts_history"] or []}
    assert codes == {"upstream_unavailable"}, info["attempts_history"]


async def test_history_with_wrong_types_is_the_servers_fault_and_the_job_runs_elsewhere(tmp_path):
    info, _, told = await lied_about("history_types", tmp_path, liars=2)
    assert_retried_to_completion(info, told)


async def test_history_nested_200k_deep_is_the_servers_fault_and_the_job_runs_elsewhere(tmp_path):
    info, _, told = await lied_about("history_deep", tmp_path, liars=2)
    assert_retried_to_completion(info, told)


async def test_a_100_mb_history_is_refused_at_the_cap_and_the_job_runs_elsewhere(tmp_path):
    info, _, told = await lied_about("history_huge", tmp_path, liars=2)
    assert_retried_to_completion(info, told)
    assert "larger than" in info["attempts_history"][0]["error"]["message"]


async def test_a_100_mb_view_fails_the_job_as_result_too_large_without_reading_it_all(tmp_path):
    info, _, told = await lied_about("view_huge", tmp_path, liars=1)
    assert told == 1
    assert info["status"] == "failed"
    assert info["error"]["code"] == "result_too_large", info["error"]
    assert info["attempt"] == 1  # as large anywhere: not run again


async def test_a_12000x12000_result_as_jpeg_is_refused_before_decoding(tmp_path):
    info, _, told = await lied_about("image_huge", tmp_path, liars=1, fmt="jpeg")
    assert told == 1
    assert info["status"] == "failed"
    assert info["error"]["code"] == "result_too_large", info["error"]
    assert "12000x12000" in info["error"]["message"]


async def test_an_oversized_event_frame_drops_the_socket_and_the_prompt_is_followed_by_polling(tmp_path):
    info, _, told = await lied_about("ws_frame", tmp_path, liars=1)
    assert told == 1
    assert info["status"] == "completed", info.get("error")
