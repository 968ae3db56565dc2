"""Storage faults against the real `comfy-gateway serve`: a full disk, a deleted database, a
read-only database, Redis stopped for 10 s. While the fault lasts, new submits get a JSON 503 or
507 with Retry-After and /health reports the storage; once it clears, every job accepted before
or during the fault completes. Each test prints `submitted=N completed=N failed=N lost=N`.

The disk faults use a small tmpfs mounted for the test (root only, as in CI), so the disk really
is full or really is read-only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.images import png
from support.processes import processes, start_fake, start_gateway
from support.tally import all_finished, tally
from support.waiting import eventually

pytestmark = pytest.mark.slow
FAST_ADOPTION = {"lease_duration": 2_000, "max_concurrent_jobs": 2, "max_jobs_per_instance": 1}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk that can really fill up, or be made read-only."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
    return filler


async def try_submit(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/api/async/upscale-image", files={"imageFile": ("in.png", png(16, 16), "image/png")})


async def submit_all(client: httpx.AsyncClient, n: int) -> list[str]:
    answers = [await try_submit(client) for _ in range(n)]
    assert [a.status_code for a in answers] == [202] * n, [a.text for a in answers]
    return [a.json()["job_id"] for a in answers]


def assert_refused(resp: httpx.Response, statuses: set[int]) -> None:
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("retry-after") and resp.json()["error"]


async def health_storage(client: httpx.AsyncClient) -> tuple[int, dict]:
    resp = await client.get("/health")
    return resp.status_code, resp.json().get("storage") or {}


async def settle(client: httpx.AsyncClient, ids: list[str]) -> None:
    await all_finished(client, ids, timeout=40)
    t = await tally(client, ids)
    print(f"\n{t.line()}")
    assert t.lost == 0 and (t.completed, t.failed) == (len(ids), 0), t.failed_codes()


async def test_full_disk_refuses_new_work_with_507_and_loses_no_accepted_job(small_disk):
    data = small_disk / "data"
    with processes() as procs:
        fakes = [start_fake(service_time=1.0, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        gw = start_gateway(data, ",".join(f.host_port for f in fakes), **FAST_ADOPTION)
        procs.append(gw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            ids = await submit_all(client, 8)
            filler = fill(small_disk)
            during = [await try_submit(client) for _ in range(5)]
            await asyncio.sleep(1.5)  # the running jobs finish into a full disk
            status, storage = await health_storage(client)
            filler.unlink()
            await settle(client, ids)
            after = await try_submit(client)
    for resp in during:  # the blob write meets ENOSPC (507); SQLite may report its own failure first (503)
        assert_refused(resp, {503, 507})
        assert resp.json()["code"] in ("insufficient_storage", "store_unavailable")
    assert any(resp.status_code == 507 for resp in during)
    assert status == 503 and storage["ok"] is False, storage
    assert after.status_code == 202


async def test_deleted_database_is_written_back_and_no_job_is_lost(tmp_path):
    data = tmp_path / "data"
    with processes() as procs:
        fakes = [start_fake(service_time=0.5, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        hosts = ",".join(f.host_port for f in fakes)
        gw = start_gateway(data, hosts, log_level="info", **FAST_ADOPTION)
        procs.append(gw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            ids = await submit_all(client, 6)
            (data / "jobs.db").unlink()
            ids += await submit_all(client, 4)
            await settle(client, ids)
        gw.popen.terminate()
        await asyncio.to_thread(gw.wait_exit, 15)
        again = start_gateway(data, hosts, **FAST_ADOPTION)  # what a restart finds on disk
        procs.append(again)
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            t = await tally(client, ids)
    assert "The jobs database file was deleted" in gw.output()
    assert (t.completed, t.lost) == (10, 0), t.line()


def immutable(files: list[Path], on: bool) -> None:
    """`chattr +i`: the file cannot be written, by root either, through descriptors already open too."""
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, files)], check=True)


async def test_read_only_database_answers_503_and_completes_accepted_jobs_after(tmp_path):
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs)")
    data = tmp_path / "data"
    with processes() as procs:
        fakes = [start_fake(service_time=1.0, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        gw = start_gateway(data, ",".join(f.host_port for f in fakes), **FAST_ADOPTION)
        procs.append(gw)
        files = [data / "jobs.db", data / "jobs.db-wal"]
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            ids = await submit_all(client, 6)
            immutable(files, True)
            try:
                during = [await try_submit(client) for _ in range(3)]
                await asyncio.sleep(1.5)  # the running jobs finish into a database that cannot be written
                status, storage = await health_storage(client)
            finally:
                immutable(files, False)
            await settle(client, ids)
    for resp in during:
        assert_refused(resp, {503})
        assert resp.json()["code"] == "store_unavailable"
    assert status == 503 and storage["ok"] is False and storage["code"] == "store_unavailable", storage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def test_redis_stopped_for_10_s_answers_503_and_loses_no_accepted_job(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    port, folder = _free_port(), tmp_path / "redis"
    folder.mkdir()
    redis = _redis(port, folder)
    try:
        with processes() as procs:
            fakes = [start_fake(service_time=0.5, name=f"fake-{n}") for n in range(2)]
            procs += fakes
            gw = start_gateway(tmp_path / "data", ",".join(f.host_port for f in fakes), job_store="redis",
                               redis_url=f"redis://127.0.0.1:{port}/0", **FAST_ADOPTION)
            procs.append(gw)
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                ids = await submit_all(client, 14)
                redis.terminate()
                redis.wait(10)
                during = [await try_submit(client) for _ in range(3)]
                health = await client.get("/health")
                await asyncio.sleep(10)
                redis = _redis(port, folder)
                await eventually(lambda: _accepts(client), timeout=20, what="submits accepted again")
                await settle(client, ids)
    finally:
        redis.kill()
        redis.wait(10)
    for resp in during:
        assert_refused(resp, {503})
    assert health.status_code == 503 and health.headers["content-type"].startswith("application/json")


async def _accepts(client: httpx.AsyncClient) -> bool:
    resp = await try_submit(client)
    return resp.status_code == 202
