"""The scenarios of the benchmark. Each one starts its own fakes and gateway, runs its repeats and
returns a plain dict: settings, per-run figures of every metric, targets, notes (see report.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from . import images, load
from .procs import Cluster, Profiler

MB = 1024 * 1024
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Config:
    gateway_cmd: str
    workdir: Path
    repeats: int
    quick: bool
    redis_url: str
    profile_dir: Path | None = None
    profile_gil_only: bool = True

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


class Result:
    """What one scenario measured, run by run."""

    def __init__(self, name: str, title: str, settings: dict[str, Any]) -> None:
        self.name = name
        self.title = title
        self.settings = settings
        self.metrics: dict[str, dict[str, Any]] = {}
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.error: str | None = None
        self.seconds = 0.0
        self.reference: dict[str, Any] | None = None  # the same scenario run on the floor gateway


    def add(self, key: str, label: str, unit: str, value: float) -> None:
        metric = self.metrics.setdefault(key, {"label": label, "unit": unit, "runs": []})
        metric["runs"].append(round(value, 6))

    def target(self, key: str, op: str, value: float, text: str, *, of_reference: bool = False) -> None:
        """`of_reference`: the value is a ratio, this gateway's median ÷ the floor's median."""
        self.targets.append({"metric": key, "op": op, "value": value, "text": text, "of_reference": of_reference})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "settings": self.settings, "metrics": self.metrics,
                "targets": self.targets, "notes": self.notes, "error": self.error,
                "seconds": round(self.seconds, 1), "reference": self.reference}


@contextlib.contextmanager
def profiled(cfg: Config, cluster: Cluster, name: str) -> Iterator[None]:
    """py-spy on the gateway for the duration of the block, when --profile is given."""
    if cfg.profile_dir is None:
        yield
        return
    cluster.profiler = Profiler.attach(cluster.gw.main_pid(), cfg.profile_dir / f"{name}.txt",
                                       gil_only=cfg.profile_gil_only)
    try:
        yield
    finally:
        if cluster.profiler is not None:
            cluster.profiler.stop()
            cluster.profiler = None


def _cluster(cfg: Config, *, servers: int, service_time: float, settings: dict[str, Any],
             paused: bool = False, fake_options: tuple[str, ...] = ()) -> Cluster:
    return Cluster.start(cfg.gateway_cmd, servers=servers, service_time=service_time, settings=settings,
                         workdir=cfg.workdir, paused=paused, fake_options=fake_options)


def _ms(seconds: float) -> float:
    return seconds * 1000


# --- dispatch ---------------------------------------------------------------------------------------


async def _dispatch_once(cluster: Cluster, n: int, image: bytes) -> list[tuple[float, float, float]]:
    """(202 answered -> prompt arrived, request sent -> 202 answered, request sent -> arrived), seconds."""
    url = cluster.gw.url
    samples: list[tuple[float, float, str]] = []
    async with load.session() as http:
        for _ in range(3):  # warm-up, not measured
            _, job_id = await load.submit_async(http, url, "upscale-image", image)
            assert job_id, "no job id in the 202 answer"
            await load.wait_job(http, url, job_id)
        for _ in range(n):
            sent = time.time()
            status, job_id = await load.submit_async(http, url, "upscale-image", image)
            answered = time.time()
            if status != 202 or not job_id:
                raise RuntimeError(f"async submission answered {status}")
            info = await load.wait_job(http, url, job_id)
            if info.get("prompt_id"):
                samples.append((sent, answered, info["prompt_id"]))
            await asyncio.sleep(0.02)  # idle between jobs
    arrived = {p["prompt_id"]: p["arrived_at"] for f in cluster.fakes for p in f.stats()["prompts"]}
    return [(arrived[pid] - answered, answered - sent, arrived[pid] - sent)
            for sent, answered, pid in samples if pid in arrived]


# Jobs per dispatch run: enough that p99 is a percentile, not the slowest sample (with 40 it
# interpolated between the two slowest, so one stall decided it).
DISPATCH_JOBS = 200


def _dispatch_runs(cfg: Config, res: Result, servers: int, prefix: str = "") -> None:
    n = cfg.scale(DISPATCH_JOBS, 15)
    image = images.picture(256)
    cluster = _cluster(cfg, servers=servers, service_time=0.0, settings={})
    try:
        with profiled(cfg, cluster, f"dispatch{prefix}"):
            for _ in range(cfg.repeats):
                samples = asyncio.run(_dispatch_once(cluster, n, image))
                lat = [_ms(s[0]) for s in samples]
                label = f"{servers} servers: " if prefix else ""
                res.add(f"{prefix}p50", f"{label}202 answered → prompt at server, p50", "ms", load.percentile(lat, 50))
                res.add(f"{prefix}p99", f"{label}202 answered → prompt at server, p99", "ms", load.percentile(lat, 99))
                if prefix:
                    continue
                res.add("min", "202 answered → prompt at server, min", "ms", min(lat))
                res.add("answer_p50", "request sent → 202 answered, p50", "ms",
                        load.percentile([_ms(s[1]) for s in samples], 50))
                res.add("send_p50", "request sent → prompt at server, p50", "ms",
                        load.percentile([_ms(s[2]) for s in samples], 50))
    finally:
        cluster.close()


def dispatch(cfg: Config) -> Result:
    res = Result("dispatch", "Dispatch latency at idle", {
        "servers": 2, "service_time_s": 0.0, "jobs_per_run": cfg.scale(DISPATCH_JOBS, 15),
        "image": "256x256 PNG (picture)",
        "endpoint": "POST /api/async/upscale-image, one at a time, 20 ms idle between jobs"})
    _dispatch_runs(cfg, res, servers=2)
    res.target("p50", "<=", 2.0, "p50 ≤ 2 ms")
    res.target("p99", "<=", 5.0, "p99 ≤ 5 ms")
    res.notes.append(
        "The gateway answers 202 once the job is stored and wakes the dispatcher in the same step, so the "
        "prompt can reach the server before the client has read the 202: a negative figure means the "
        "dispatch finished first. Both clocks are this machine's `time.time()`; the server stamps a prompt "
        "when its POST /prompt handler accepts it.")
    return res


# --- sync overhead ----------------------------------------------------------------------------------


async def _sync_once(cluster: Cluster, n: int, n_direct: int, image: bytes) -> dict[str, list[float]]:
    url, fake = cluster.gw.url, cluster.fakes[0]
    out: dict[str, list[float]] = {"e2e": [], "exec": [], "raw": [], "raw_exec": [], "direct": [],
                                   "direct_exec": [], "parse": []}
    async with load.session() as http:
        for raw_answer, key in ((False, "e2e"), (True, "raw")):
            for i in range(n + 1):
                start = time.perf_counter()
                timings: dict[str, float] = {}
                status, body = await load.run_sync(http, url, "upscale-image", image, raw_answer=raw_answer,
                                                   timings=timings)
                elapsed = time.perf_counter() - start
                if status != 200:
                    raise RuntimeError(f"sync upscale answered {status}")
                async with http.get(f"{fake.url}/history/{body['promptId']}") as resp:
                    entry = (await resp.json())[body["promptId"]]
                if i:  # the first request warms up both sides
                    out[key].append(elapsed)
                    if not raw_answer:
                        out["parse"].append(timings["parse_s"])
                    out[f"{key}_exec" if key == "raw" else "exec"].append(load.execution_seconds(entry))
        for _ in range(n_direct):
            elapsed, exec_s = await load.direct_upscale(http, fake.url, image)
            out["direct"].append(elapsed)
            out["direct_exec"].append(exec_s)
    return out


def sync_overhead(cfg: Config) -> Result:
    n, n_direct, service = cfg.scale(4, 2), cfg.scale(2, 1), 0.2
    image = images.noise(1024)
    res = Result("sync_overhead", "Sync overhead, large image", {
        "servers": 1, "service_time_s": service, "requests_per_run": n, "direct_requests_per_run": n_direct,
        "image": f"1024x1024 noise PNG ({len(image) / MB:.1f} MB)",
        "endpoint": "POST /api/upscale-image (sync, JSON answer with base64 image), sequential"})
    cluster = _cluster(cfg, servers=1, service_time=service, settings={})
    try:
        with profiled(cfg, cluster, "sync_overhead"):
            for _ in range(cfg.repeats):
                r = asyncio.run(_sync_once(cluster, n, n_direct, image))
                nominal = [_ms(e - service) for e in r["e2e"]]
                outside = [_ms(e - x) for e, x in zip(r["e2e"], r["exec"], strict=True)]
                direct_outside = [_ms(e - x) for e, x in zip(r["direct"], r["direct_exec"], strict=True)]
                res.add("outside_p50", "end-to-end − server execution, p50", "ms", load.percentile(outside, 50))
                res.add("outside_p99", "end-to-end − server execution, p99", "ms", load.percentile(outside, 99))
                res.add("json_parse_p50", "of which the client's json.loads of the answer, p50", "ms",
                        load.percentile([_ms(p) for p in r["parse"]], 50))
                raw = [_ms(e - x) for e, x in zip(r["raw"], r["raw_exec"], strict=True)]
                res.add("raw_outside_p50", "same, answer as raw image bytes (Accept: image/png), p50", "ms",
                        load.percentile(raw, 50))
                res.add("direct_outside_p50", "direct client: end-to-end − server execution, p50", "ms",
                        load.percentile(direct_outside, 50))
                res.add("added_p50", "what the gateway adds: the two figures above, gateway − direct", "ms",
                        load.percentile(outside, 50) - load.percentile(direct_outside, 50))
                res.add("vs_direct", "end-to-end − server execution, p50, ÷ the direct client's", "",
                        load.percentile(outside, 50) / load.percentile(direct_outside, 50))
                res.add("raw_vs_direct", "same with the raw image answer, ÷ the direct client's", "",
                        load.percentile(raw, 50) / load.percentile(direct_outside, 50))
                res.add("nominal_p50", "end-to-end − nominal service time, p50", "ms", load.percentile(nominal, 50))
                res.add("nominal_p99", "end-to-end − nominal service time, p99", "ms", load.percentile(nominal, 99))
                res.add("exec_p50", "server execution (fake's own Pillow work + service time), p50", "s",
                        load.percentile(r["exec"], 50))
    finally:
        cluster.close()
    res.target("vs_direct", "<=", 1.2, "p50 ≤ 1.2 × a direct client's (JSON answer)")
    res.target("raw_vs_direct", "<=", 1.2, "p50 ≤ 1.2 × a direct client's (raw answer)")
    res.notes.append(
        "The fake really upscales: a 1024x1024 input becomes 4096x4096 with Lanczos, then 2048x2048, saved "
        "as a ~15 MB PNG, which takes it well over a second of CPU on top of the 200 ms service time. "
        "`end-to-end − nominal service time` therefore mostly measures the fake; `end-to-end − server "
        "execution` subtracts what the server spent between execution_start and execution_success (its "
        "history's timestamps) and leaves the gateway plus the HTTP/WebSocket exchange with the server. "
        "The direct client posts the same graph to the same server itself (WebSocket, /prompt, /history, "
        "/view) without the gateway: its figure is the floor any client pays for talking to ComfyUI.")
    return res


# --- throughput -------------------------------------------------------------------------------------

THROUGHPUT_SERVERS = 4
THROUGHPUT_SERVICE = 0.2
THROUGHPUT_SETTINGS = {"MAX_JOBS_PER_INSTANCE": 2, "MAX_CONCURRENT_JOBS": 8}


async def _throughput_once(cluster: Cluster, n: int, clients: int, image: bytes,
                           service: float = THROUGHPUT_SERVICE) -> dict[str, float]:
    url = cluster.gw.url
    cluster.control_all("reset_stats")
    async with load.session() as http:
        done0 = sum(await load.finished_count(http, url))
        job_ids: list[str] = []
        errors = 0
        left = n

        async def client() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                status, job_id = await load.submit_async(http, url, "upscale-image", image)
                if status == 202 and job_id:
                    job_ids.append(job_id)
                else:
                    errors += 1

        start = time.time()
        await asyncio.gather(*(client() for _ in range(clients)))
        submitted = time.time()
        deadline = time.monotonic() + 30 + n * service
        while sum(await load.finished_count(http, url)) < done0 + len(job_ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sem = asyncio.Semaphore(clients)

        async def info(job_id: str) -> dict[str, Any]:
            async with sem:
                return await load.job_info(http, url, job_id)

        infos = await asyncio.gather(*(info(j) for j in job_ids))
        spans = await _server_spans(http, cluster, {i.get("prompt_id") for i in infos})
    finished = [load.epoch(i.get("finished_at")) for i in infos if i["status"] == "completed"]
    failed = sum(1 for i in infos if i["status"] != "completed")
    end = max((f for f in finished if f is not None), default=time.time())
    per_server = [f.stats()["prompts_received"] for f in cluster.fakes]
    executions = [ended - begun for server in spans for begun, ended in server]
    return {"jobs": len(finished), "elapsed": end - start, "submit_s": submitted - start,
            "errors": errors + failed, "spread": max(per_server) - min(per_server),
            "busy": sum(executions) / (len(cluster.fakes) * (end - start)),
            "exec": sum(executions) / max(len(executions), 1), **_idle_parts(spans, start, end)}


async def _server_spans(http: Any, cluster: Cluster, prompts: set[Any]) -> list[list[tuple[float, float]]]:
    """Each server's executions of these prompts, (start, end) in epoch seconds, in order."""
    spans = []
    for fake in cluster.fakes:
        async with http.get(f"{fake.url}/history") as resp:
            history = await resp.json()
        spans.append(sorted(load.execution_span(e) for pid, e in history.items() if pid in prompts))
    return spans


def _idle_parts(spans: list[list[tuple[float, float]]], start: float, end: float) -> dict[str, float]:
    """Where a server's idle time went, mean seconds per server: before its first execution
    (`fill`; the whole run for a server that got none), between two (`gaps`), after its last
    until the run's end (`tail`)."""
    fill = sum((server[0][0] if server else end) - start for server in spans)
    gaps = sum(max(0.0, nxt[0] - prev[1]) for server in spans for prev, nxt in itertools.pairwise(server))
    tail = sum(max(0.0, end - server[-1][1]) for server in spans if server)
    count = max(len(spans), 1)
    return {"fill": fill / count, "gaps": gaps / count, "tail": tail / count}


def _throughput_runs(cfg: Config, res: Result, settings: dict[str, Any], label: str, *,
                     servers: int = THROUGHPUT_SERVERS, service: float = THROUGHPUT_SERVICE,
                     n: int | None = None) -> None:
    n, clients = n or cfg.scale(200, 60), 16
    image = images.picture(64)
    theoretical = servers / service
    cluster = _cluster(cfg, servers=servers, service_time=service, settings={**THROUGHPUT_SETTINGS, **settings})
    try:
        with profiled(cfg, cluster, f"{res.name}-{label}"):
            asyncio.run(_throughput_once(cluster, 8, 8, image, service))  # warm-up
            for _ in range(cfg.repeats):
                r = asyncio.run(_throughput_once(cluster, n, clients, image, service))
                rate = r["jobs"] / r["elapsed"]
                res.add(f"{label}_ratio", f"{label}: jobs/s ÷ theoretical ({theoretical:g}/s)", "", rate / theoretical)
                res.add(f"{label}_rate", f"{label}: jobs/s", "jobs/s", rate)
                res.add(f"{label}_busy", f"{label}: servers busy executing, fraction of the run", "", r["busy"])
                res.add(f"{label}_exec", f"{label}: server execution per prompt, mean", "ms", _ms(r["exec"]))
                res.add(f"{label}_errors", f"{label}: failed jobs", "", r["errors"])
                res.add(f"{label}_submit", f"{label}: time to submit all jobs", "s", r["submit_s"])
                res.add(f"{label}_spread", f"{label}: prompts per server, max − min", "", r["spread"])
                for part, what in (("fill", "before its first prompt"), ("gaps", "between two prompts"),
                                   ("tail", "after its last prompt")):
                    res.add(f"{label}_idle_{part}", f"{label}: a server's idle time {what}, mean", "ms",
                            _ms(r[part]))
    finally:
        cluster.close()


def _throughput_settings(cfg: Config) -> dict[str, Any]:
    return {"servers": THROUGHPUT_SERVERS, "service_time_s": THROUGHPUT_SERVICE, **THROUGHPUT_SETTINGS,
            "jobs_per_run": cfg.scale(200, 60), "clients": 16, "image": "64x64 PNG (picture)",
            "endpoint": "POST /api/async/upscale-image; end = last job's finished_at"}


def throughput(cfg: Config) -> Result:
    res = Result("throughput", "Throughput against the theoretical limit", _throughput_settings(cfg))
    _throughput_runs(cfg, res, {"JOB_STORE": "sqlite"}, "sqlite")
    res.target("sqlite_ratio", ">=", 0.97, "≥ 0.97 of servers ÷ service time")
    res.target("sqlite_busy", ">=", 0.97, "servers busy ≥ 0.97 of the run")
    res.notes.append(
        "Theoretical: every server always busy, 4 servers ÷ 0.2 s = 20 jobs/s. The clock runs from the "
        "first submission to the last job's finished_at, so it includes filling the pipeline. A fake "
        "server's execution of a prompt takes the service time plus its own work (events, a thread per "
        "node, the Pillow upscale of a 64x64 image): `servers busy` is the sum of the executions "
        "(execution_start to execution_success in each server's history) over servers × run time, the "
        "share of the servers' time the gateway kept them working.")
    return res


def _redis_cleanup(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
        return len(keys)
    finally:
        client.close()


def _median(values: list[float]) -> float:
    return load.percentile(values, 50)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # The gateway's own last words (its log tail) say more than our wrapper's first line.
    return " / ".join(lines[:1] + lines[-2:]) if len(lines) > 1 else text or type(exc).__name__


# --- capacity -----------------------------------------------------------------------------------------

CAPACITY_SERVERS = 2
CAPACITY_SETTINGS = {"MAX_JOBS_PER_INSTANCE": 4, "MAX_CONCURRENT_JOBS": 8}


async def _capacity_once(cluster: Cluster, seconds: float, clients: int, image: bytes) -> dict[str, float]:
    url = cluster.gw.url
    me = psutil.Process()
    async with load.session(limit=clients + 4) as http:
        await asyncio.gather(*(load.run_sync(http, url, "upscale-image", image) for _ in range(clients)))
        ok = errors = 0
        latencies: list[float] = []
        gw_cpu0, fakes_cpu0 = cluster.gw.cpu_seconds(), cluster.fakes_cpu_seconds()
        me0 = sum(me.cpu_times()[:2])
        start = time.perf_counter()
        stop_at = start + seconds

        async def client() -> None:
            nonlocal ok, errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    status, _ = await load.run_sync(http, url, "upscale-image", image)
                except Exception:
                    status = 0
                if status == 200:
                    ok += 1
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        gw_cpu = cluster.gw.cpu_seconds() - gw_cpu0
        fakes_cpu = cluster.fakes_cpu_seconds() - fakes_cpu0
        me_cpu = sum(me.cpu_times()[:2]) - me0
    return {"rate": ok / elapsed, "errors": errors, "gw_cpu_per_job": gw_cpu / max(ok, 1),
            "fakes_cpu_per_job": fakes_cpu / max(ok, 1), "client_cpu_per_job": me_cpu / max(ok, 1),
            "p50": load.percentile(latencies, 50), "p99": load.percentile(latencies, 99)}


def _capacity_params(cfg: Config) -> tuple[float, int, int]:
    """Seconds per run, clients, runs."""
    return (20.0 if not cfg.quick else 5.0), 32, min(cfg.repeats, 2)


def _capacity_settings(cfg: Config) -> dict[str, Any]:
    seconds, clients, repeats = _capacity_params(cfg)
    return {"servers": CAPACITY_SERVERS, "service_time_s": 0.0, **CAPACITY_SETTINGS, "clients": clients,
            "seconds_per_run": seconds, "runs": repeats, "image": "64x64 PNG (picture)",
            "endpoint": "POST /api/upscale-image (sync, JSON answer)"}


def _add_capacity(res: Result, r: dict[str, float], prefix: str = "", label: str = "") -> None:
    res.add(f"{prefix}rate", f"{label}sync jobs/s", "jobs/s", r["rate"])
    res.add(f"{prefix}errors", f"{label}errors (non-200 answers)", "", r["errors"])
    res.add(f"{prefix}gw_cpu", f"{label}gateway CPU per job", "ms", _ms(r["gw_cpu_per_job"]))
    res.add(f"{prefix}gw_bound", f"{label}jobs/s the gateway could serve with every core to itself (cores ÷ its "
            "CPU per job)", "jobs/s", CORES / r["gw_cpu_per_job"])
    res.add(f"{prefix}fakes_cpu", f"{label}fake servers' CPU per job", "ms", _ms(r["fakes_cpu_per_job"]))
    res.add(f"{prefix}client_cpu", f"{label}load generator's CPU per job", "ms", _ms(r["client_cpu_per_job"]))
    res.add(f"{prefix}p50", f"{label}request latency p50", "ms", _ms(r["p50"]))
    res.add(f"{prefix}p99", f"{label}request latency p99", "ms", _ms(r["p99"]))


def capacity(cfg: Config) -> Result:
    seconds, clients, repeats = _capacity_params(cfg)
    res = Result("capacity", "Capacity: sync jobs, service time 0", _capacity_settings(cfg))
    image = images.picture(64)
    cluster = _cluster(cfg, servers=CAPACITY_SERVERS, service_time=0.0, settings=CAPACITY_SETTINGS)
    try:
        with profiled(cfg, cluster, "capacity"):
            for _ in range(repeats):
                _add_capacity(res, asyncio.run(_capacity_once(cluster, seconds, clients, image)))
    finally:
        cluster.close()
    res.target("rate", ">=", 0.8, "≥ 0.8 of the floor's jobs/s", of_reference=True)
    res.target("gw_cpu", "<=", 3.0, "gateway CPU per job ≤ 3 ms")
    res.target("errors", "<=", 0, "0 errors")
    res.notes.append(
        "Gateway, fake servers and load generator share the machine's cores; their CPU per job shows "
        "where the time goes (user + system time of each process tree, read with psutil). Each fake "
        "server runs one prompt at a time and spends several milliseconds of its own CPU on it, so on "
        "a small machine the servers, not the gateway, set the pace; the gateway-bound figure is what "
        "the gateway alone would allow.")
    return res


# --- store: SQLite against Redis at capacity -------------------------------------------------------


def _store_clusters(cfg: Config, res: Result, prefix: str) -> dict[str, Cluster]:
    clusters = {"sqlite": _cluster(cfg, servers=CAPACITY_SERVERS, service_time=0.0,
                                   settings={**CAPACITY_SETTINGS, "JOB_STORE": "sqlite"})}
    try:
        clusters["redis"] = _cluster(cfg, servers=CAPACITY_SERVERS, service_time=0.0, settings={
            **CAPACITY_SETTINGS, "JOB_STORE": "redis", "REDIS_URL": cfg.redis_url, "REDIS_PREFIX": prefix})
    except Exception as exc:
        res.error = f"not run: the gateway with JOB_STORE=redis did not work: {_first_line(exc)}"
    return clusters


def store(cfg: Config) -> Result:
    """The capacity scenario's load on each store; both gateways run side by side and take turns,
    so a busy machine weighs on both alike."""
    seconds, clients, repeats = _capacity_params(cfg)
    res = Result("store", "Job store: SQLite against Redis (capacity scenario)",
                 {**_capacity_settings(cfg), "redis_url": cfg.redis_url})
    image = images.picture(64)
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    clusters: dict[str, Cluster] = {}
    try:
        clusters = _store_clusters(cfg, res, prefix)
        for _ in range(repeats):
            for label, cluster in clusters.items():
                with profiled(cfg, cluster, f"store-{label}"):
                    _add_capacity(res, asyncio.run(_capacity_once(cluster, seconds, clients, image)),
                                  f"{label}_sync_", f"{label}: ")
    finally:
        for cluster in clusters.values():
            cluster.close()
        with contextlib.suppress(Exception):
            _redis_cleanup(cfg.redis_url, prefix)
    if "redis_sync_rate" in res.metrics:
        runs = {key: metric["runs"] for key, metric in res.metrics.items()}
        sqlite_rate, sqlite_cpu = _median(runs["sqlite_sync_rate"]), _median(runs["sqlite_sync_gw_cpu"])
        for rate, cpu in zip(runs["redis_sync_rate"], runs["redis_sync_gw_cpu"], strict=True):
            res.add("redis_vs_sqlite_capacity", "Redis sync jobs/s ÷ SQLite's (median)", "", rate / sqlite_rate)
            res.add("redis_cpu_vs_sqlite", "Redis gateway CPU per job ÷ SQLite's (median)", "", cpu / sqlite_cpu)
        res.target("redis_vs_sqlite_capacity", ">=", 0.85, "Redis within 15 % of SQLite's capacity")
        res.target("redis_sync_errors", "<=", 0, "0 errors with Redis")
    res.notes.append(
        "Capacity, not a rate set by the servers: the capacity scenario's sync load (service time 0) on a "
        "gateway with each store. The Redis server's own CPU is not in the gateway's figure; it shares the "
        "machine's cores with everything else, so it weighs on the jobs/s.")
    return res


# --- memory -------------------------------------------------------------------------------------------


class _Sampler:
    def __init__(self, read: Callable[[], int], every: float = 0.05) -> None:
        self.peak = 0
        self._read, self._every = read, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            self._stop.wait(self._every)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _memory_once(cluster: Cluster, n: int, clients: int, image: bytes) -> dict[str, float]:
    url, gw = cluster.gw.url, cluster.gw
    async with load.session() as http:
        for small in (True, False):  # warm-up with the servers running: every code path once
            warm = images.picture(64) if small else image
            ids = [j for _, j in await asyncio.gather(
                *(load.submit_async(http, url, "upscale-image", warm) for _ in range(8 if small else 1))) if j]
            await asyncio.gather(*(load.wait_job(http, url, j, poll=0.1) for j in ids))
        cluster.control_all("pause")
        await asyncio.sleep(1.0)
        baseline = gw.rss_bytes()
        accepted = errors = 0

        async def submit(count: int) -> None:
            left = count

            async def client() -> None:
                nonlocal left, accepted, errors
                while left > 0:
                    left -= 1
                    status, job_id = await load.submit_async(http, url, "upscale-image", image)
                    if status == 202 and job_id:
                        accepted += 1
                    else:
                        errors += 1

            await asyncio.gather(*(client() for _ in range(clients)))
            await asyncio.sleep(1.0)

        with _Sampler(gw.rss_bytes) as sampler:
            await submit(n // 2)
            middle, at_middle = gw.rss_bytes(), accepted
            await submit(n - n // 2)
            final = gw.rss_bytes()
    return {"baseline": baseline, "middle": middle, "final": final, "peak": max(sampler.peak, final),
            "accepted": accepted, "second_half": accepted - at_middle, "errors": errors}


def memory(cfg: Config) -> Result:
    n, clients = cfg.scale(1000, 100), 8
    repeats = min(cfg.repeats, 2)
    image = images.noise_of_size(2 * MB)
    res = Result("memory", "Memory: queued jobs with a 2 MB image", {
        "servers": 2, "paused": True, "jobs_per_run": n, "clients": clients, "runs": repeats,
        "image": f"noise PNG ({len(image) / MB:.2f} MB)", "endpoint": "POST /api/async/upscale-image"})
    for _ in range(repeats):
        cluster = _cluster(cfg, servers=2, service_time=0.0, settings={})
        try:
            with profiled(cfg, cluster, "memory"):
                r = asyncio.run(_memory_once(cluster, n, clients, image))
        finally:
            cluster.close()
        per_job = max(r["accepted"], 1)
        res.add("growth", "RSS growth per queued job (after)", "MB", (r["final"] - r["baseline"]) / per_job / MB)
        res.add("peak_growth", "RSS growth per queued job (peak)", "MB",
                (r["peak"] - r["baseline"]) / per_job / MB)
        res.add("marginal", "RSS growth per job over the second half of the jobs", "MB",
                (r["final"] - r["middle"]) / max(r["second_half"], 1) / MB)
        res.add("total_growth", f"RSS growth with all {n} jobs queued", "MB", (r["final"] - r["baseline"]) / MB)
        res.add("baseline", "RSS before", "MB", r["baseline"] / MB)
        res.add("middle", "RSS after half of the jobs", "MB", r["middle"] / MB)
        res.add("final", "RSS after", "MB", r["final"] / MB)
        res.add("errors", "submissions refused", "", r["errors"])
    res.target("total_growth", "<=", 64.0, f"RSS growth ≤ 64 MB with {n} queued jobs")
    res.notes.append(
        "The servers are paused after a warm-up, so the jobs stay queued (a few are sent to the servers, "
        "which queue them too). RSS is that of the gateway's process tree, sampled every 50 ms; it is "
        "read after each half of the jobs, so the growth over the second half tells a steady cost per "
        "job from memory the allocator keeps after the first uploads.")
    return res


# --- pool scale -----------------------------------------------------------------------------------

POOL_SERVERS = 32
POOL_SERVICE = 1.0


def pool_scale(cfg: Config) -> Result:
    """32 servers: does the gateway still keep every one busy, and does dispatch stay as quick?"""
    n = cfg.scale(POOL_SERVERS * 10, POOL_SERVERS * 3)
    res = Result("pool_scale", f"Pool scale: {POOL_SERVERS} servers", {
        "servers": POOL_SERVERS, "service_time_s": POOL_SERVICE, "jobs_per_run": n,
        "MAX_CONCURRENT_JOBS": 2 * POOL_SERVERS, "compared_with": "the same dispatch figure on 2 servers"})
    _dispatch_runs(cfg, res, servers=2, prefix="two_")
    _dispatch_runs(cfg, res, servers=POOL_SERVERS, prefix="pool_")
    for pool, two in zip(res.metrics["pool_p50"]["runs"], res.metrics["two_p50"]["runs"], strict=True):
        res.add("pool_minus_two", f"dispatch p50, {POOL_SERVERS} servers − 2 servers", "ms", pool - two)
    _throughput_runs(cfg, res, {"MAX_CONCURRENT_JOBS": 2 * POOL_SERVERS}, "pool", servers=POOL_SERVERS,
                     service=POOL_SERVICE, n=n)
    res.target("pool_ratio", ">=", 0.97, f"throughput ≥ 0.97 of {POOL_SERVERS} ÷ service time")
    res.target("pool_minus_two", "<=", 1.0, "dispatch p50 within 1 ms of the 2-server figure")
    res.notes.append(
        f"Each of the {POOL_SERVERS} fakes is its own process; a service time of {POOL_SERVICE:g} s keeps the "
        "theoretical rate (servers ÷ service time) near the throughput scenario's, so the figure tells "
        "what a larger pool costs the gateway, not what this machine's two cores can execute.")
    return res


# --- soak ---------------------------------------------------------------------------------------------

SOAK_RATE = 20.0


async def _soak_once(cluster: Cluster, seconds: float, image: bytes) -> dict[str, Any]:
    url, gw = cluster.gw.url, cluster.gw
    samples: list[tuple[float, float]] = []
    errors = sent = 0
    async with load.session() as http:
        start = time.monotonic()
        pending: set[asyncio.Task[tuple[int, str | None]]] = set()
        while (now := time.monotonic()) - start < seconds:
            if sent < (now - start) * SOAK_RATE:
                task = asyncio.create_task(load.submit_async(http, url, "upscale-image", image))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            if not samples or now - samples[-1][0] - start >= 5.0:
                samples.append((now - start, gw.rss_bytes() / MB))
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*pending)
        errors = sum(1 for status, _ in results if status != 202)
    return {"samples": samples, "sent": sent, "errors": errors}


def _slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS (MB) against time, per minute."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples) or 1.0
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in samples) / var


def soak(cfg: Config) -> Result:
    seconds = 60.0 if cfg.quick else 600.0
    settings = {"MAX_JOBS_PER_INSTANCE": 2, "MAX_CONCURRENT_JOBS": 8, "JOB_CLEANUP_INTERVAL": 60000}
    res = Result("soak", f"Soak: {SOAK_RATE:g} jobs/s for {seconds:.0f} s", {
        "servers": 4, "service_time_s": 0.1, **settings, "rate": SOAK_RATE, "seconds": seconds,
        "image": "64x64 PNG (picture)", "endpoint": "POST /api/async/upscale-image at a steady rate"})
    cluster = _cluster(cfg, servers=4, service_time=0.1, settings=settings)
    try:
        r = asyncio.run(_soak_once(cluster, seconds, images.picture(64)))
    finally:
        cluster.close()
    steady = [s for s in r["samples"] if s[0] >= min(60.0, seconds / 4)]  # after the warm-up
    res.add("slope", "RSS slope after the first minute", "MB/min", _slope_per_minute(steady))
    res.add("rss_start", "RSS after the first minute", "MB", steady[0][1])
    res.add("rss_end", "RSS at the end", "MB", steady[-1][1])
    res.add("jobs", "jobs submitted", "", r["sent"])
    res.add("errors", "submissions refused", "", r["errors"])
    res.target("slope", "<=", 0.5, "RSS slope ≈ 0 (≤ 0.5 MB/min)")
    res.target("errors", "<=", 0, "0 errors")
    res.notes.append(
        "Finished jobs are kept for JOB_CLEANUP_INTERVAL (here one minute) and then removed with their blobs, so "
        "after the first minute the store holds a steady number of jobs: any lasting growth of RSS is a leak.")
    return res


# --- placement: warm-model affinity against least-loaded ----------------------------------------

PLACEMENT_SERVERS = 4
PLACEMENT_SERVICE = 0.3
PLACEMENT_MODEL_LOAD = 1.0
PLACEMENT_SETTINGS = {"MAX_JOBS_PER_INSTANCE": 2, "MAX_CONCURRENT_JOBS": 8}
MIXED_TASKS = ("upscale-image", "remove-background")
MIXED_SEED = 17


async def _submit_with_eta(http: Any, url: str, task: str, image: bytes) -> tuple[str, float | None] | None:
    """Submit one job; read its status at once: (job id, predicted seconds from creation to its end)."""
    status, job_id = await load.submit_async(http, url, task, image)
    if status != 202 or not job_id:
        return None
    async with http.get(f"{url}/api/jobs/{job_id}/status") as resp:
        body = await resp.json()
    read_at, created = time.time(), load.epoch(body.get("created_at"))
    remaining = body.get("estimated_remaining_time_seconds")
    return job_id, None if remaining is None or created is None else read_at - created + remaining


async def _mixed_once(cluster: Cluster, n: int, clients: int, image: bytes) -> dict[str, Any]:
    """n jobs, upscale and remove-background in a random order (the same one for each run and strategy),
    submitted by `clients` at once. Not taking turns: with an even number of servers a strict
    alternation lined up with least-loaded's rotation among equally loaded servers, so that each
    server got one type only and never loaded a model, which is not what a mixed workload does."""
    url = cluster.gw.url
    cluster.control_all("reset_stats")
    order = random.Random(MIXED_SEED)
    todo = [order.choice(MIXED_TASKS) for _ in range(n)]
    predicted: dict[str, float | None] = {}
    errors = 0
    async with load.session() as http:

        async def client() -> None:
            nonlocal errors
            while todo:
                got = await _submit_with_eta(http, url, todo.pop(), image)
                if got is None:
                    errors += 1
                else:
                    predicted[got[0]] = got[1]

        start = time.time()
        await asyncio.gather(*(client() for _ in range(clients)))
        sem = asyncio.Semaphore(clients)

        async def finished(job_id: str) -> dict[str, Any]:
            async with sem:
                return await load.wait_job(http, url, job_id, poll=0.1, timeout=60 + n)

        infos = await asyncio.gather(*(finished(j) for j in predicted))
    done = [i for i in infos if i["status"] == "completed"]
    end = max((e for i in done if (e := load.epoch(i["finished_at"])) is not None), default=time.time())
    loads = sum(f.stats()["model_loads"] for f in cluster.fakes)
    return {"rate": len(done) / (end - start), "errors": errors + len(infos) - len(done),
            "loads_per_job": loads / max(len(done), 1), "eta_errors": _eta_errors(done, predicted)}


def _eta_errors(done: list[dict[str, Any]], predicted: dict[str, float | None]) -> list[float]:
    """|predicted − actual| ÷ actual of each finished job, times from its creation to its end."""
    errors = []
    for info in done:
        created, end = load.epoch(info["created_at"]), load.epoch(info["finished_at"])
        guess = predicted.get(info["job_id"])
        if created is not None and end is not None and guess is not None and end > created:
            errors.append(abs(guess - (end - created)) / (end - created))
    return errors


def _placement_runs(cfg: Config, res: Result, strategy: str, n: int) -> None:
    image = images.picture(64)
    cluster = _cluster(cfg, servers=PLACEMENT_SERVERS, service_time=PLACEMENT_SERVICE,
                       settings={**PLACEMENT_SETTINGS, "PLACEMENT": strategy},
                       fake_options=("--model-load-time", str(PLACEMENT_MODEL_LOAD)))
    try:
        with profiled(cfg, cluster, f"{res.name}-{strategy}"):
            asyncio.run(_mixed_once(cluster, 16, 8, image))  # warm-up: the gateway measures its servers
            for _ in range(cfg.repeats):
                r = asyncio.run(_mixed_once(cluster, n, 16, image))
                res.add(f"{strategy}_rate", f"{strategy}: jobs/s", "jobs/s", r["rate"])
                res.add(f"{strategy}_loads", f"{strategy}: model loads per job", "", r["loads_per_job"])
                res.add(f"{strategy}_errors", f"{strategy}: failed jobs", "", r["errors"])
                if r["eta_errors"]:
                    res.add(f"{strategy}_eta_p50", f"{strategy}: ETA error, abs(predicted − actual) ÷ actual, p50", "",
                            load.percentile(r["eta_errors"], 50))
                    res.add(f"{strategy}_eta_p90", f"{strategy}: ETA error, p90", "",
                            load.percentile(r["eta_errors"], 90))
    finally:
        cluster.close()


def placement(cfg: Config) -> Result:
    n = cfg.scale(96, 40)
    res = Result("placement", "Placement: warm-model affinity against least-loaded, mixed workload", {
        "servers": PLACEMENT_SERVERS, "service_time_s": PLACEMENT_SERVICE, "model_load_s": PLACEMENT_MODEL_LOAD,
        **PLACEMENT_SETTINGS, "jobs_per_run": n, "clients": 16, "image": "64x64 PNG (picture)",
        "endpoint": "POST /api/async/{upscale-image, remove-background}, in a seeded random order; end = last "
                    "finished_at"})
    _placement_runs(cfg, res, "affinity", n)
    _placement_runs(cfg, res, "least_loaded", n)
    least = _median(res.metrics["least_loaded_rate"]["runs"])
    for value in res.metrics["affinity_rate"]["runs"]:
        res.add("speedup", "affinity jobs/s ÷ least-loaded jobs/s (median)", "", value / least)
    res.target("speedup", ">=", 1.5, "affinity ≥ 1.5 × least-loaded jobs/s")
    res.target("affinity_eta_p50", "<=", 0.3, "ETA error p50 ≤ 30 % (affinity)")
    res.notes.append(
        "Each fake server pays a 1 s model load when a prompt uses other models than its previous prompt "
        "(the upscale model or InspyrenetRembg), then 0.3 s of service. Least-loaded spreads the mixed "
        "queue evenly and so keeps switching models; affinity sends each job where its model is loaded "
        "unless that server's queue makes another one finish first. Theoretical: 4 ÷ 0.3 s = 13.3 jobs/s "
        "without switches, 4 ÷ 1.3 s = 3.1 jobs/s with a switch per job. The ETA is read from the "
        "status endpoint right after each submission (`estimated_remaining_time_seconds` plus the time "
        "since creation) and compared with the job's real creation-to-finish time. Each mode first runs "
        "16 jobs that are not measured, so the gateway has measured its servers.")
    return res


SCENARIOS: dict[str, Callable[[Config], Result]] = {
    "dispatch": dispatch,
    "sync_overhead": sync_overhead,
    "throughput": throughput,
    "capacity": capacity,
    "memory": memory,
    "store": store,
    "pool_scale": pool_scale,
    "soak": soak,
    "placement": placement,
}
ORDER = ("dispatch", "sync_overhead", "throughput", "capacity", "memory", "store", "pool_scale", "soak", "placement")
DEFAULT = ORDER
# Scenarios that also run on the floor gateway (bench/floor.py) in the same run, for the figures beside ours.
SIDE_BY_SIDE = ("dispatch", "sync_overhead", "throughput", "capacity", "memory", "pool_scale")
