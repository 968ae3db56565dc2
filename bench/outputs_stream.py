"""A 300 MB output through the gateway: its memory while the file streams in and out, and how fast
it downloads against reading the same file from disk.

    python bench/outputs_stream.py                     # 300 MB, the gateway's blob store
    python bench/outputs_stream.py --mb 50 --store s3  # S3 (a moto server it starts), streamed through
    python bench/outputs_stream.py --no-write          # print the figures, leave RESULTS.md alone

One fake ComfyUI server runs the `long-audio` workflow (tests/fixtures/workflows): a WAV file of the
asked size, written by the fake and fetched by the gateway with /view. The gateway runs as its own
process; its RSS is sampled every 20 ms from before the job to the end of the download. The figures
go into their own section of bench/RESULTS.md, one per store (replaced on the next run).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.procs import Cluster, default_gateway_cmd, free_port  # noqa: E402
from fake_comfyui.process import stop_process  # noqa: E402

WORKFLOWS = ROOT / "tests" / "fixtures" / "workflows"
WAV_BYTES_PER_SECOND = 48_000 * 2  # the workflow's mono 16-bit 48 kHz tone
CHUNK = 256 * 1024
MB = 1024 * 1024
TARGET_GROWTH_MB = 50


class RssSampler:
    """The peak RSS of the gateway's processes, sampled on a thread."""

    def __init__(self, cluster: Cluster, every_s: float = 0.02) -> None:
        self._cluster = cluster
        self._every = every_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._cluster.gw.rss_bytes())
            self.samples += 1
            time.sleep(self._every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (40, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def run_job(client: httpx.Client, seconds: float) -> str:
    resp = client.post(f"/api/run/long-audio?async=true&seconds={seconds}",
                       files={"imageFile": ("a.png", tiny_png(), "image/png")})
    resp.raise_for_status()
    job_id = str(resp.json()["job_id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}/status").json()
        if status["status"] in ("completed", "failed"):
            if status["status"] == "failed":
                raise RuntimeError(f"the job failed: {status.get('error')}")
            return job_id
        time.sleep(0.05)
    raise RuntimeError("the job did not finish in 10 minutes")


def download(client: httpx.Client, url: str, copy: Path | None = None) -> tuple[int, str, float]:
    """Bytes, SHA-256 and seconds of one streamed download (also written to `copy` when given)."""
    digest = hashlib.sha256()
    size = 0
    started = time.perf_counter()
    with client.stream("GET", url) as resp, (copy.open("wb") if copy else contextlib.nullcontext()) as out:
        resp.raise_for_status()
        for chunk in resp.iter_bytes(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    return size, digest.hexdigest(), time.perf_counter() - started


def read_from_disk(path: Path) -> tuple[int, float]:
    """The same bytes read from the file, in the same chunks, also hashed (what the client did)."""
    digest = hashlib.sha256()
    size = 0
    started = time.perf_counter()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, time.perf_counter() - started


@contextlib.contextmanager
def s3_server(workdir: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server as a child process, and the gateway settings that point at it."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    with open(workdir / "moto.log", "wb") as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.put(f"{endpoint}/bench-results", timeout=2).raise_for_status()  # create the bucket
                break
            time.sleep(0.1)
        yield {"result_store": "s3", "s3_bucket": "bench-results", "s3_endpoint_url": endpoint,
               "result_redirect": "false", "aws_access_key_id": "bench", "aws_secret_access_key": "bench",
               "aws_default_region": "us-east-1"}
    finally:
        stop_process(proc)


def measure(mb: int, store: str, workdir: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {"workflows_dir": WORKFLOWS, "job_timeout": 600_000}
    with contextlib.ExitStack() as stack:
        if store == "s3":
            settings.update(stack.enter_context(s3_server(workdir)))
        cluster = Cluster.start(default_gateway_cmd(), servers=1, service_time=0.0, settings=settings,
                                workdir=workdir)
        stack.callback(cluster.close)
        with httpx.Client(base_url=cluster.gw.url, timeout=600) as client:
            warm = run_job(client, 1.0)  # every code path once, so the baseline is the steady state
            download(client, f"/api/jobs/{warm}/outputs/0")
            time.sleep(0.5)
            baseline = cluster.gw.rss_bytes()
            started = time.perf_counter()
            with RssSampler(cluster) as during_ingest:
                job_id = run_job(client, mb * MB / WAV_BYTES_PER_SECOND)
            ingest_s = time.perf_counter() - started
            [output] = [o for o in client.get(f"/api/jobs/{job_id}/outputs").json()["outputs"] if o["kind"] == "audio"]
            index = output["index"]
            # The file on disk to compare with: the blob the gateway stored, or (S3) a copy of the download.
            on_disk = blob_path(cluster.gw.data_dir, job_id, index) if store == "blobs" else workdir / "copy.wav"
            with RssSampler(cluster) as during_download:
                size, sha256, seconds = download(client, f"/api/jobs/{job_id}/outputs/{index}",
                                                 None if store == "blobs" else on_disk)
            assert size == output["size"] and sha256 == output["sha256"], "the download differs from the output"
            disk = read_from_disk(on_disk)
    return {
        "store": store, "output_bytes": size, "baseline_rss_mb": baseline / MB,
        "ingest_peak_rss_mb": during_ingest.peak / MB, "download_peak_rss_mb": during_download.peak / MB,
        "growth_mb": (max(during_ingest.peak, during_download.peak) - baseline) / MB,
        "rss_samples": during_ingest.samples + during_download.samples, "ingest_s": ingest_s,
        "download_s": seconds, "download_mb_s": size / MB / seconds,
        "disk_read_s": disk[1], "disk_read_mb_s": disk[0] / MB / disk[1],
    }


def blob_path(data_dir: Path, job_id: str, index: int) -> Path:
    """Where the directory blob store keeps an output (the first attempt's)."""
    key = f"outputs/{job_id}-1/{index}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return data_dir / "blobs" / digest[:2] / digest[2:4] / key


def markers(store: str) -> tuple[str, str]:
    return report.markers(f"outputs-stream:{store}")


def section(figures: dict[str, Any]) -> str:
    start, end = markers(figures["store"])
    met = "met" if figures["growth_mb"] < TARGET_GROWTH_MB else "NOT met"
    return "\n".join([
        start,
        f"## outputs_stream: one {figures['output_bytes'] / MB:.0f} MB output through the gateway ({figures['store']})",
        "",
        f"`python bench/outputs_stream.py --store {figures['store']}`: a WAV output of the fake's `long-audio` "
        "workflow streams from /view into the result store, then out to a client; the gateway's RSS is sampled "
        "every 20 ms." + (" The store is a moto S3 server (its own process); RESULT_REDIRECT=false, so the "
                          "download passes through the gateway, and the disk figure reads a copy of it."
                          if figures["store"] == "s3" else ""),
        "",
        "| figure | value |",
        "|---|---|",
        f"| gateway RSS before the job | {figures['baseline_rss_mb']:.1f} MB |",
        f"| peak while the output is stored | {figures['ingest_peak_rss_mb']:.1f} MB |",
        f"| peak while it downloads | {figures['download_peak_rss_mb']:.1f} MB |",
        f"| growth (target < {TARGET_GROWTH_MB} MB: {met}) | {figures['growth_mb']:.1f} MB |",
        f"| job: prompt, /view into the store | {figures['ingest_s']:.2f} s |",
        f"| download through the gateway | {figures['download_mb_s']:.0f} MB/s ({figures['download_s']:.2f} s) |",
        f"| the same file read from disk (page cache, same chunks, hashed) | {figures['disk_read_mb_s']:.0f} MB/s |",
        f"| download / disk | {figures['download_mb_s'] / figures['disk_read_mb_s']:.2f} |",
        end,
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/outputs_stream.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=300, help="size of the output (default %(default)s)")
    parser.add_argument("--store", choices=("blobs", "s3"), default="blobs")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    try:
        figures = measure(args.mb, args.store, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if not args.no_write:
        report.write_section(ROOT / "bench" / "RESULTS.md", f"outputs-stream:{args.store}", section(figures))
    return 0 if figures["growth_mb"] < TARGET_GROWTH_MB else 1


if __name__ == "__main__":
    sys.exit(main())
