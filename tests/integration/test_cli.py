"""The command line against a running gateway: submit an image, read jobs, the pool's status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pexpect

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import decode, png
from support.keys import KEYS, write_keys

CLI = str(Path(sys.executable).parent / "comfy-gateway")


async def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [CLI, *args], capture_output=True, text=True, timeout=60,
                                   env=env)


async def test_submit_writes_the_result_under_a_predictable_name_and_jobs_lists_it(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    source = tmp_path / "in.png"
    source.write_bytes(png(20, 10))
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        done = await run_cli("submit", str(source), "--url", gw.url, "--out-dir", str(tmp_path / "out"),
                             "--format", "webp", "--param", "scale_by=1.0")
        assert done.returncode == 0, done.stdout + done.stderr
        assert decode((tmp_path / "out" / "in.upscale-image.webp").read_bytes()).size == (80, 40)
        assert "1 done, 0 failed, 0 skipped" in done.stdout  # not a terminal: plain lines, then the table
        job_id = (await gw.client.get("/api/jobs/list")).json()["jobs"][0]["job_id"]
        status = await run_cli("jobs", job_id, "--url", gw.url)
        assert json.loads(status.stdout)["status"] == "completed"
        missing = await run_cli("jobs", "nope", "--url", gw.url)
        assert missing.returncode == 1 and "not found" in missing.stdout


async def test_submit_refuses_arguments_that_name_nothing(tmp_path):
    done = await run_cli("submit", str(tmp_path / "nowhere" / "*.png"), "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "no such file, folder or matching pattern" in done.stdout


async def test_status_shows_the_pool_and_reads_the_url_from_the_environment(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        env = {"PATH": "/usr/bin:/bin", "COMFY_GATEWAY_URL": gw.url, "COLUMNS": "150"}
        shown = await run_cli("status", env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "comfy-gateway healthy" in shown.stdout and "done 1, failed 0" in shown.stdout
    for fake in fakes:
        assert fake.host_port in shown.stdout


async def test_status_says_when_the_gateway_cannot_be_reached():
    shown = await run_cli("status", "--url", "http://127.0.0.1:9")
    assert shown.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in shown.stdout



async def test_status_watch_redraws_until_interrupted(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    first_drawn = threading.Event()

    def watch(url: str) -> int | None:
        child = pexpect.spawn(CLI, ["status", "--watch", "0.3", "--url", url], encoding="utf-8",
                              dimensions=(30, 120), timeout=30)
        child.expect(r"done 0, failed 0")
        first_drawn.set()
        child.expect(r"done 1, failed 0")  # the job finished while it watched
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        return child.exitstatus

    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        watching = asyncio.create_task(asyncio.to_thread(watch, gw.url))
        assert await asyncio.to_thread(first_drawn.wait, 30)
        await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        assert await watching == 0


async def test_with_access_control_the_key_comes_from_the_flag_or_the_environment(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    source = tmp_path / "in.png"
    source.write_bytes(png(20, 10))
    out = str(tmp_path / "out")
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=write_keys(tmp_path / "keys.toml"))
    async with running_gateway(settings) as gw:
        base = {"PATH": "/usr/bin:/bin", "COMFY_GATEWAY_URL": gw.url, "COLUMNS": "150"}
        refused = await run_cli("submit", str(source), "--out-dir", out, env=base)
        keyed = {**base, "COMFY_GATEWAY_API_KEY": KEYS["bob"]}
        done = await run_cli("submit", str(source), "--out-dir", out, env=keyed)
        user_status = await run_cli("status", "--api-key", KEYS["bob"], env=base)
        admin_status = await run_cli("status", "--api-key", KEYS["admin"], env=base)
    assert refused.returncode == 1 and "an API key is required" in refused.stdout
    assert done.returncode == 0 and (tmp_path / "out" / "in.upscale-image.png").exists(), done.stdout
    assert user_status.returncode == 1 and "HTTP 403" in user_status.stdout  # the pool's figures are for admins
    assert admin_status.returncode == 0 and "comfy-gateway healthy" in admin_status.stdout
