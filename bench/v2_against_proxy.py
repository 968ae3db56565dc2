"""The same Comfy SDK flows against this gateway and against comfy-api-proxy, both in front of one fake.

    .venv/bin/python bench/v2_against_proxy.py [--out bench/V2-PROXY.md]

Starts one fake ComfyUI, the gateway and `comfy-api-proxy` (the dev dependency) on loopback ports,
drives both with the SDK (`comfy_sdk.Comfy`, COMFY_BASE_URL switched per client) and raw HTTP where
the SDK hides the answer, and prints one table: what each answered, and whether they agree.
Everything it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from comfy_sdk import Comfy, IdempotencyKeyReuse
from PIL import Image
from procs import BIN, default_gateway_cmd, free_port, start_gateway

from fake_comfyui.process import FakeProcess, stop_process

GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cmp"}},
}
Flow = Callable[[Comfy, str], dict[str, Any]]


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(buf, "PNG")
    return buf.getvalue()


def client(url: str) -> Comfy:
    os.environ["COMFY_BASE_URL"] = url
    os.environ.pop("COMFY_API_KEY", None)
    return Comfy(timeout=30.0)


def workflow(sdk: Comfy, color: tuple[int, int, int] = (10, 200, 60)) -> Any:
    wf = sdk.workflows.from_json({k: {**v, "inputs": dict(v["inputs"])} for k, v in GRAPH.items()})
    wf.set_input("1", "image", sdk.assets.from_bytes(png(color), filename="in.png"))
    return wf


def run_and_save(sdk: Comfy, url: str) -> dict[str, Any]:
    job = sdk.run(workflow(sdk))
    [out] = job.get_outputs("3") or [None]
    data = out.to_bytes() if out else b""
    raw = httpx.get(f"{url}/api/v2/jobs/{job.id}").json()
    return {"run: final status": job.status, "run: outputs of node 3": len(job.get_outputs("3")),
            "run: output is a PNG": data.startswith(b"\x89PNG"),
            "run: output size_bytes matches": bool(out) and out.size_bytes == len(data),
            "run: output hash given": bool(raw["outputs"]) and raw["outputs"][0]["hash"] is not None,
            "run: started_at / completed_at set": raw["started_at"] is not None and raw["completed_at"] is not None,
            "run: Range on output": out is not None and out.to_bytes(range=(0, 3)) == b"\x89PNG"}


def stream(sdk: Comfy, url: str) -> dict[str, Any]:
    job = sdk.submit(workflow(sdk, (1, 2, 3)))
    kinds: list[str] = []
    for event in job.events():
        name = type(event).__name__
        if not kinds or kinds[-1] != name:
            kinds.append(name)
    lines = httpx.get(f"{url}/api/v2/jobs/{job.id}/events", timeout=30).text.splitlines()
    ids = [line for line in lines if line.startswith("id:")]
    resumed = httpx.get(f"{url}/api/v2/jobs/{job.id}/events", headers={"Last-Event-ID": "1"}, timeout=30).text
    return {"events: kinds seen live (SDK)": " > ".join(kinds),
            "events: ids on frames": bool(ids),
            "events: Last-Event-ID skips what was seen": "event: status" in resumed and resumed.count(
                "event: status") < sum(line == "event: status" for line in lines)}


def cancel(sdk: Comfy, url: str) -> dict[str, Any]:
    job = sdk.submit(workflow(sdk, (9, 9, 9)))
    deadline = time.monotonic() + 10
    while job.refresh().status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    answered = job.cancel().status
    with contextlib.suppress(TimeoutError):
        job.wait(timeout=10)
    return {"cancel: status answered": answered, "cancel: final status": job.status}


def idempotency(sdk: Comfy, url: str) -> dict[str, Any]:
    key = f"cmp-{time.time_ns()}"
    wf = workflow(sdk, (4, 5, 6))
    first = sdk.submit(wf, idempotency_key=key)
    try:
        sdk.submit(wf, idempotency_key=key)
        second = "accepted"
    except IdempotencyKeyReuse as exc:
        second = f"{exc.http_status} {exc.code}"
    first.wait(timeout=30)
    return {"idempotency: same key twice": second}


def assets(sdk: Comfy, url: str) -> dict[str, Any]:
    data = png((7, 7, 7))
    a, b = sdk.assets.from_bytes(data, filename="a.png"), sdk.assets.from_bytes(data, filename="b.png")
    a.commit()
    b.commit()
    upload = lambda: httpx.post(f"{url}/api/v2/assets", files={"file": ("c.png", data, "image/png")},  # noqa: E731
                                data={"file_path": "c.png"})
    return {"assets: created_new of 2 uploads (SDK)": (a.created_new, b.created_new),
            "assets: same id for same bytes": a.id == b.id,
            "assets: direct re-upload status": upload().status_code}


def errors(sdk: Comfy, url: str) -> dict[str, Any]:
    unknown = httpx.get(f"{url}/api/v2/jobs/4f1c6a6e-0000-4000-8000-000000000000")
    missing = httpx.post(f"{url}/api/v2/jobs", json={"workflow": {**GRAPH, "1": {
        "class_type": "LoadImage", "inputs": {"image": {"__type": "core/ASSET", "info": {"id": "nope"}}}}}})
    bad = httpx.post(f"{url}/api/v2/jobs", json={"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    listed = httpx.get(f"{url}/api/v2/jobs?limit=1").json()

    def code(resp: httpx.Response) -> str:
        return f"{resp.status_code} {resp.json().get('error', {}).get('code')}"

    return {"errors: unknown job": code(unknown), "errors: unresolvable core/ASSET": code(missing),
            "errors: unknown node class at submit": code(bad) if bad.status_code >= 400 else f"{bad.status_code}",
            "list: paging field": "next_cursor" if "next_cursor" in listed else
            ("truncated" if "truncated" in listed else "none")}


def streams_at_once(sdk: Comfy, url: str) -> dict[str, Any]:
    job = sdk.submit(workflow(sdk, (3, 3, 3)))
    deadline = time.monotonic() + 10
    while job.refresh().status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)

    def open_one(_: int) -> int:
        with httpx.stream("GET", f"{url}/api/v2/jobs/{job.id}/events", timeout=30) as resp:
            status = resp.status_code
            for _line in resp.iter_lines():
                pass
            return status

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(open_one, range(12)))
    return {"events: 12 streams at once, refused": sum(s != 200 for s in statuses)}


FLOWS: list[Flow] = [run_and_save, stream, cancel, idempotency, assets, errors, streams_at_once]


@contextlib.contextmanager
def proxy(fake_url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    log = open(workdir / "proxy.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([str(BIN / "comfy-api-proxy"), "--comfyui", fake_url, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v2/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)
        log.close()


def observe(url: str) -> dict[str, Any]:
    sdk = client(url)
    seen: dict[str, Any] = {}
    try:
        for flow in FLOWS:
            try:
                seen.update(flow(sdk, url))
            except Exception as exc:  # a flow that breaks is itself the observation
                seen[f"{flow.__name__}: raised"] = f"{type(exc).__name__}: {str(exc)[:80]}"
    finally:
        sdk.close()
    return seen


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    rows = ["| check | comfy-gateway | comfy-api-proxy | agree |", "|---|---|---|---|"]
    for key in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(key, "—"), theirs.get(key, "—")
        rows.append(f"| {key} | {a} | {b} | {'yes' if a == b else '**no**'} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--service-time", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="v2cmp-") as tmp:
        workdir = Path(tmp)
        fake = FakeProcess.start(service_time=args.service_time, cwd=workdir)
        gateway = None
        try:
            gateway = start_gateway(default_gateway_cmd(), fake.host_port, {}, workdir)
            ours = observe(gateway.url)
            with proxy(fake.url, workdir) as proxy_url:
                theirs = observe(proxy_url)
        finally:
            if gateway is not None:
                stop_process(gateway.proc)
            fake.stop()
    text = table(ours, theirs)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
