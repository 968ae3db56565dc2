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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from fake_comfyui.process import FakeProcess, stop_process

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT = 30.0


def default_gateway_cmd() -> str:
    exe = BIN / "comfy-gateway"
    return f"{exe} serve" if exe.exists() else f"{sys.executable} -m comfy_gateway serve"


def floor_gateway_cmd() -> str:
    """The harness's own pass-through gateway (bench/floor.py): the reference beside every scenario."""
    return f"{sys.executable} {ROOT / 'bench' / 'floor.py'}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    return 0.0


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
        return sum(cpu_seconds(p.pid) for p in self.processes())

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
    stop_process(proc)
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
        stop_process(self.proc, timeout=20, sig=signal.SIGINT)
        return self.output if self.output.exists() else None


@dataclass
class Cluster:
    """N fakes and one gateway in front of them, for one measurement."""

    fakes: list[FakeProcess] = field(default_factory=list)
    gateway: Gateway | None = None
    profiler: Profiler | None = None

    @classmethod
    def start(cls, template: str, *, servers: int, service_time: float, settings: dict[str, Any],
              workdir: Path, paused: bool = False, fake_options: Sequence[str] = ()) -> Cluster:
        """`fake_options`: more command-line options of every fake, e.g. `("--model-load-time", "1")`."""
        cluster = cls()
        try:
            with open(workdir / "fakes.log", "ab") as log:
                for n in range(servers):
                    cluster.fakes.append(FakeProcess.start(service_time, name=f"fake-{n + 1}", paused=paused,
                                                           stderr=log, cwd=ROOT, timeout=READY_TIMEOUT,
                                                           options=fake_options))
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
        return sum(cpu_seconds(f.pid) for f in self.fakes)

    def close(self) -> None:
        if self.profiler is not None:
            with contextlib.suppress(Exception):
                self.profiler.stop()
        if self.gateway is not None:
            stop_process(self.gateway.proc)
            shutil.rmtree(self.gateway.data_dir, ignore_errors=True)
        for fake in self.fakes:
            fake.stop()
