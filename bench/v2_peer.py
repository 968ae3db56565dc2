"""The same Comfy API v2 workload through this gateway and through comfy-api-proxy, in one run.

    .venv/bin/python bench/v2_peer.py [--jobs 40] [--seconds 15] [--clients 8] [--no-write]

One fake ComfyUI (service time 0.2 s), then each gateway in front of it in turn, driven by the official
SDK as its users would: submit a graph with an uploaded input asset, wait, fetch the output. First
one job at a time (latency per job), then `--clients` threads for `--seconds` (capacity), with the
CPU each gateway process spent per job. The figures go into their own section of bench/RESULTS.md
(or of the file `--out` names).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench import report  # noqa: E402
from bench.load import percentile  # noqa: E402
from bench.procs import default_gateway_cmd, start_gateway  # noqa: E402
from bench.v2_against_proxy import client, proxy, workflow  # noqa: E402
from fake_comfyui.process import FakeProcess, stop_process  # noqa: E402

SECTION = "v2-peer"


def one_job(sdk: Any) -> None:
    job = sdk.run(workflow(sdk))
    [out] = job.get_outputs("3")
    if not out.to_bytes().startswith(b"\x89PNG"):
        raise RuntimeError("the output is not a PNG")


def cpu(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])


def measure(url: str, pid: int, jobs: int, seconds: float, clients: int) -> dict[str, float]:
    sdk = client(url)
    try:
        for _ in range(3):  # warm-up
            one_job(sdk)
        latencies = []
        for _ in range(jobs):
            t0 = time.perf_counter()
            one_job(sdk)
            latencies.append(time.perf_counter() - t0)
    finally:
        sdk.close()
    done, errors, lock = [0], [0], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(_: int) -> None:
        own = client(url)
        try:
            while time.monotonic() < stop_at:
                try:
                    one_job(own)
                    with lock:
                        done[0] += 1
                except Exception:
                    with lock:
                        errors[0] += 1
        finally:
            own.close()

    cpu0, t0 = cpu(pid), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    elapsed, spent = time.perf_counter() - t0, cpu(pid) - cpu0
    return {"p50_ms": 1000 * percentile(latencies, 50), "p90_ms": 1000 * percentile(latencies, 90),
            "rate": done[0] / elapsed, "errors": errors[0], "cpu_ms_per_job": 1000 * spent / max(done[0], 1)}


def run_both(jobs: int, seconds: float, clients: int, service: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="v2peer-") as tmp:
        workdir = Path(tmp)
        fake = FakeProcess.start(service_time=service, cwd=workdir)
        try:
            gateway = start_gateway(default_gateway_cmd(), fake.host_port, {"MAX_CONCURRENT_JOBS": 8,
                                                                             "MAX_JOBS_PER_INSTANCE": 8}, workdir)
            try:
                results["comfy-gateway"] = measure(gateway.url, gateway.main_pid(), jobs, seconds, clients)
            finally:
                stop_process(gateway.proc)
            with proxy(fake.url, workdir) as proxy_url:
                pid = _listening_pid(proxy_url)
                results["comfy-api-proxy"] = measure(proxy_url, pid, jobs, seconds, clients)
        finally:
            fake.stop()
    return results


def _listening_pid(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"no process listens on {url}")


ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("p50_ms", "one job at a time: submit, wait, fetch output, p50", lambda v: f"{v:.1f} ms"),
    ("p90_ms", "one job at a time, p90", lambda v: f"{v:.1f} ms"),
    ("rate", "capacity: jobs/s with the clients at once", lambda v: f"{v:.2f}"),
    ("cpu_ms_per_job", "gateway process CPU per job (capacity run)", lambda v: f"{v:.2f} ms"),
    ("errors", "errors in the capacity run", lambda v: f"{v:.0f}"),
]


def section(results: dict[str, dict[str, float]], jobs: int, seconds: float, clients: int, service: float) -> str:
    ours, theirs = results["comfy-gateway"], results["comfy-api-proxy"]
    first, last = report.markers(SECTION)
    lines = [first, "## v2_peer: the same v2 workload through comfy-gateway and comfy-api-proxy", "",
             f"`python bench/v2_peer.py`: one fake ComfyUI (service time {service:g} s), each gateway in front "
             f"of it in turn, "
             f"driven by the official comfy-sdk: a graph with an uploaded input asset, wait, fetch its output. "
             f"{jobs} jobs one at a time, then {clients} clients for {seconds:g} s. comfy-gateway runs with its "
             f"defaults (SQLite, every job and its outputs stored, limits on). One fake runs one prompt at a time, "
             f"so capacity is bounded by it ({1 / service:.1f} jobs/s at most) for both; the CPU per job says "
             f"what each gateway spends to get there.",
             "", "| figure | comfy-gateway | comfy-api-proxy |", "|---|---|---|"]
    lines += [f"| {label} | {fmt(ours[key])} | {fmt(theirs[key])} |" for key, label, fmt in ROWS]
    faster = ours["p50_ms"] <= theirs["p50_ms"]
    more = ours["rate"] >= theirs["rate"]
    lines += ["", f"Target: at least as fast per job ({'met' if faster else 'NOT met'}) and at least its capacity "
              f"({'met' if more else 'NOT met'}).", last]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--service-time", type=float, default=0.2,
                        help="seconds the fake takes per prompt (with 0 the proxy reports its jobs expired)")
    report.add_section_options(parser)
    args = parser.parse_args()
    results = run_both(args.jobs, args.seconds, args.clients, args.service_time)
    report.publish_section(args, SECTION, section(results, args.jobs, args.seconds, args.clients, args.service_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
