"""The fake as a child process, for benchmarks and process-level tests: start it, talk to it, stop it.

`FakeProcess.start()` runs `python -m fake_comfyui --port 0`, waits for its listening line and keeps
draining its output on a thread (so the pipe never fills). `control()` and `stats()` use the fake's
`/fake/control` and `/fake/stats` endpoints. `stop_process()` ends any child process: SIGTERM, then
SIGKILL if it does not exit in time; harmless on one that has exited.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

LISTENING = "fake_comfyui listening on "


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
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
class FakeProcess:
    popen: subprocess.Popen[str]
    url: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://").rstrip("/")

    def output(self) -> str:
        return "".join(self.lines)

    @classmethod
    def start(cls, service_time: float = 0.0, *, name: str | None = None, paused: bool = False,
              stderr: BinaryIO | int | None = subprocess.STDOUT, cwd: Path | None = None,
              timeout: float = 30.0, options: Sequence[str] = ()) -> FakeProcess:
        """A running fake; its stderr goes to `stderr` (default: collected with stdout).

        `options` are more command-line options, e.g. `("--model-load-time", "1")`."""
        cmd = [sys.executable, "-m", "fake_comfyui", "--port", "0", "--service-time", str(service_time)]
        if name:
            cmd += ["--name", name]
        if paused:
            cmd.append("--paused")
        cmd += options
        popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1, cwd=cwd)
        fake = cls(popen)
        listening = threading.Event()

        def drain() -> None:
            assert popen.stdout is not None
            with popen.stdout:  # closed once the output ends
                for line in popen.stdout:
                    fake.lines.append(line)
                    if line.startswith(LISTENING) and not listening.is_set():
                        fake.url = line.removeprefix(LISTENING).strip()
                        listening.set()
            listening.set()  # the output ended: the process is gone

        fake.reader = threading.Thread(target=drain, daemon=True, name=f"fake-output-{popen.pid}")
        fake.reader.start()
        if not listening.wait(timeout) or not fake.url:
            fake.stop()
            raise RuntimeError(f"the fake ComfyUI did not start (exit code {popen.poll()}): {fake.output()}")
        return fake

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def control(self, action: str, **extra: Any) -> None:
        self._call("/fake/control", {"action": action, **extra})

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("/fake/stats")
        return stats

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        entry: dict[str, Any] | None = self._call(f"/history/{prompt_id}").get(prompt_id)
        return entry

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process and wait until its output is read to the end (and its pipe closed)."""
        stop_process(self.popen, timeout)
        if self.reader is not None:
            self.reader.join(timeout)
