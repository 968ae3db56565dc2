"""Processes of one benchmark run: fake ComfyUI servers, the gateway under test, an optional profiler.

Everything started here is stopped in `Cluster.close()` (SIGTERM, then SIGKILL), which the runner
calls in a `finally`, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


def default_gateway_cmd() -> str:
    exe = BIN / "comfy-gateway"
    return f"{exe} serve" if exe.exists() else f"{sys.executable} -m comfy_gateway serve"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


@dataclass
class Fake:
    proc: subprocess.Popen[str]
    url: str

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    def control(self, action: str, **extra: Any) -> None:
        resp = httpx.post(f"{self.url}/fake/control", json={"action": action, **extra}, timeout=10)
        resp.raise_for_status()

    def stats(self) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/fake/stats", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        resp = httpx.get(f"{self.url}/history/{prompt_id}", timeout=10)
        resp.raise_for_status()
        return resp.json().get(prompt_id)

    def cpu_seconds(self) -> float:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        return 0.0


def start_fake(service_time: float, name: str, *, paused: bool = False, log: Path | None = None) -> Fake:
    cmd = [sys.executable, "-m", "fake_comfyui", "--port", "0", "--service-time", str(service_time),
           "--name", name]
    if paused:
        cmd.append("--paused")
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    if log:
        err.close()  # type: ignore[union-attr]
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("fake_comfyui listening on "):
            proc.stdout.close()
            return Fake(proc, line.split(" on ", 1)[1].strip())
    _stop(proc)
    raise RuntimeError(f"fake ComfyUI {name} did not start (exit code {proc.returncode})")


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> list[psutil.Process]:
        """The gateway and its children (a template may start it through a wrapper)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def main_pid(self) -> int:
        """The deepest process of the tree: the server itself when the template wraps it."""
        procs = self.processes()
        return procs[-1].pid if procs else self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def gateway_env(port: int, hosts: str, data_dir: Path, settings: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "JOB_", "MAX_"))}
    env.update({
        "PORT": str(port), "HOST": "127.0.0.1", "COMFYUI_HOSTS": hosts, "DATA_DIR": str(data_dir),
        "METRICS_FILE_PATH": str(data_dir / "metrics" / "metrics.json"), "LOG_LEVEL": "info",
        "SHUTDOWN_GRACE": "1000", "PYTHONUNBUFFERED": "1",
    })
    env.update({k.upper(): str(v) for k, v in settings.items()})
    return env


def start_gateway(template: str, hosts: str, settings: dict[str, Any], workdir: Path) -> Gateway:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="gw-data-", dir=workdir))
    log = workdir / f"gateway-{port}.log"
    cmd = shlex.split(template.format(port=port, comfy_hosts=hosts, data_dir=data_dir))
    # The gateway runs from the scratch folder so a developer's .env never leaks into a measurement.
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                env=gateway_env(port, hosts, data_dir, settings))
    gw = Gateway(proc, port, log, data_dir)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with code {proc.returncode}:\n{gw.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{gw.url}/health", timeout=2).status_code == 200:
                return gw
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"the gateway did not become healthy in {READY_TIMEOUT:.0f} s:\n{gw.log_tail()}")


@dataclass
class Profiler:
    """py-spy attached to a running process, writing collapsed stacks when stopped."""

    proc: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def attach(cls, pid: int, output: Path, rate: int = 250, gil_only: bool = True) -> Profiler | None:
        exe = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
        if exe is None:
            return None
        output.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads",
               "--nonblocking", "--function", "-o", str(output)]
        if gil_only:  # only the thread holding the GIL: where Python spends CPU
            cmd.append("--gil")
        proc = subprocess.Popen(cmd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return cls(proc, output)

    def stop(self) -> Path | None:
        _stop(self.proc, signal.SIGINT, timeout=20)
        return self.output if self.output.exists() else None


@dataclass
class Cluster:
    """N fakes and one gateway in front of them, for one measurement."""

    fakes: list[Fake] = field(default_factory=list)
    gateway: Gateway | None = None
    profiler: Profiler | None = None

    @classmethod
    def start(cls, template: str, *, servers: int, service_time: float, settings: dict[str, Any],
              workdir: Path, paused: bool = False) -> Cluster:
        cluster = cls()
        try:
            for n in range(servers):
                cluster.fakes.append(start_fake(service_time, f"fake-{n + 1}", paused=paused,
                                                log=workdir / "fakes.log"))
            hosts = ",".join(f.host_port for f in cluster.fakes)
            cluster.gateway = start_gateway(template, hosts, settings, workdir)
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway

    def control_all(self, action: str, **extra: Any) -> None:
        for fake in self.fakes:
            fake.control(action, **extra)

    def fakes_cpu_seconds(self) -> float:
        return sum(f.cpu_seconds() for f in self.fakes)

    def close(self) -> None:
        if self.profiler is not None:
            with contextlib.suppress(Exception):
                self.profiler.stop()
        if self.gateway is not None:
            _stop(self.gateway.proc)
            shutil.rmtree(self.gateway.data_dir, ignore_errors=True)
        for fake in self.fakes:
            _stop(fake.proc)
