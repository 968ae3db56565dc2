"""The command line against a running gateway: submit an image, read jobs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import decode, png

CLI = str(Path(sys.executable).parent / "comfy-gateway")


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [CLI, *args], capture_output=True, text=True, timeout=60)


async def test_submit_writes_the_result_and_jobs_lists_it(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    source = tmp_path / "in.png"
    source.write_bytes(png(20, 10))
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        done = await run_cli("submit", str(source), "--url", gw.url, "-o", str(tmp_path / "out.webp"),
                             "--format", "webp")
        assert done.returncode == 0, done.stderr
        assert decode((tmp_path / "out.webp").read_bytes()).size == (40, 20)
        queued = await run_cli("submit", str(source), "--url", gw.url, "--task", "remove-background", "--no-wait")
        job_id = json.loads(queued.stdout)["job_id"]
        await gw.wait_job(job_id)
        status = await run_cli("jobs", job_id, "--url", gw.url)
        assert json.loads(status.stdout)["status"] == "completed"
        missing = await run_cli("jobs", "nope", "--url", gw.url)
        assert missing.returncode == 1 and "not found" in missing.stdout
