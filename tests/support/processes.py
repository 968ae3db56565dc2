"""Real processes for fault tests: the gateway CLI and the fake ComfyUI, started and always stopped.

`free_port()` finds a loopback port; `start_fake()` runs the fake as a child process
(`fake_comfyui.process`); `start_gateway()` runs `comfy-gateway serve` configured by environment
variables and waits until it answers HTTP. `stop()` ends a process by its own id (SIGTERM, then
SIGKILL) and is safe to call twice; use it in a `finally`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fake_comfyui.process import FakeProcess, stop_process

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A child process with its output collected on a thread (so its pipe never fills up)."""

    popen: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return "".join(self.lines[-200:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, signum)

    def wait_exit(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path | None) -> Proc:
    popen = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1)
    proc = Proc(popen)

    def read() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            proc.lines.append(line)

    proc._reader = threading.Thread(target=read, daemon=True)
    proc._reader.start()
    return proc


def stop(proc: Proc | FakeProcess | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit within `timeout`. Harmless on an exited process."""
    if proc is None:
        return
    stop_process(proc.popen, timeout)
    if isinstance(proc, Proc):
        if proc._reader is not None:
            proc._reader.join(timeout=2)
        if proc.popen.stdout is not None:
            with contextlib.suppress(OSError):
                proc.popen.stdout.close()


def kill9(proc: Proc) -> None:
    proc.signal(signal.SIGKILL)
    proc.popen.wait(timeout=5)


def start_fake(*, service_time: float = 0.0, name: str | None = None, timeout: float = 10.0) -> FakeProcess:
    """`python -m fake_comfyui --port 0`; returns once it printed its listening line."""
    return FakeProcess.start(service_time, name=name, timeout=timeout)


def gateway_env(data_dir: Path, hosts: str, port: int, **overrides: Any) -> dict[str, str]:
    """Environment for `comfy-gateway serve`: durations in ms, every path inside `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "JOB_", "REDIS_"))}
    values: dict[str, Any] = {
        "HOST": "127.0.0.1", "PORT": port, "COMFYUI_HOSTS": hosts, "DATA_DIR": data_dir,
        "METRICS_FILE_PATH": data_dir / "metrics" / "metrics.json", "JOB_STORE": "sqlite",
        "HEALTH_CHECK_INTERVAL": 500, "HEALTH_CHECK_TIMEOUT": 1000, "JOB_TIMEOUT": 30_000,
        "SHUTDOWN_GRACE": 5_000, "LEASE_DURATION": 5_000, "MAX_CONCURRENT_JOBS": 4,
        "MAX_JOBS_PER_INSTANCE": 2, "LOG_LEVEL": "warning",
    }
    values.update({k.upper(): v for k, v in overrides.items()})
    env.update({k: str(v) for k, v in values.items()})
    return env


def start_gateway(data_dir: Path, hosts: str, *, port: int | None = None, timeout: float = 20.0,
                  **overrides: Any) -> Proc:
    """`comfy-gateway serve` on a free port with its own DATA_DIR; returns once it answers HTTP.

    It runs in `data_dir` so no `.env` of the working tree is read.
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = gateway_env(data_dir, hosts, port, **overrides)
    proc = _spawn([str(VENV_BIN / "comfy-gateway"), "serve"], env, data_dir)
    proc.url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def wait_http(proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"the gateway exited with {proc.popen.returncode}: {proc.output()}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{proc.url}/health", timeout=1)
            return
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not answer within {timeout}s: {proc.output()}")


@contextlib.contextmanager
def processes() -> Iterator[list[Proc | FakeProcess]]:
    """Collect processes started in the block; every one is stopped on the way out."""
    started: list[Proc | FakeProcess] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)
