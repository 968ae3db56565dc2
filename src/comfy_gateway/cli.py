"""comfy-gateway serve | demo | submit | jobs: the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from .access import KeyFileError, KeyRing
from .app import create_app
from .client_cli import add_commands
from .http_server import uvicorn_config
from .observability.logging import configure_logging, flush_logging, get_logger
from .settings import Settings


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value stops here with the variable's name."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            print(f"configuration error: {name}: {err['msg']} (got {err.get('input')!r})", file=sys.stderr)
        raise SystemExit(2) from None


class GatewayServer(uvicorn.Server):
    """uvicorn, plus a drain before it stops listening.

    On SIGTERM/SIGINT the gateway stops admitting jobs at once; then, while the listener still
    answers (new work gets 503 with Retry-After and `Connection: close`), running jobs get
    SHUTDOWN_GRACE to finish and their sync requests their results. Only then does uvicorn close the
    listener and give open answers a moment to be written: one grace period in all."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        gateway = getattr(self._app.state, "gateway", None)
        if gateway is not None:
            gateway.begin_drain()
        super().handle_exit(sig, frame)

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's SIGINT/SIGTERM, plus SIGHUP: read API_KEYS_FILE again. On leaving, every log
        line still queued is written: uvicorn raises the signal that stopped it again next, and the
        process ends on it without running its exit handlers."""
        with super().capture_signals():
            try:
                if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
                    yield
                    return
                previous = signal.signal(signal.SIGHUP, self._hangup)
                try:
                    yield
                finally:
                    signal.signal(signal.SIGHUP, previous)
            finally:
                flush_logging()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        gateway = getattr(self._app.state, "gateway", None)
        if gateway is not None and not self.force_exit:
            await gateway.drain()
        await super().shutdown(sockets)

    def _hangup(self, sig: int, frame: FrameType | None) -> None:
        self._loop.call_soon_threadsafe(reload_keys, self._app.state.keys)  # not inside the signal handler


def reload_keys(keys: KeyRing) -> None:
    log = get_logger("access")
    try:
        names = keys.reload()
    except KeyFileError as exc:
        log.error("API keys not reloaded; the previous keys stay in force", error=str(exc))
        return
    log.info("API keys reloaded", keys=list(names))


def check_bind(settings: Settings) -> None:
    """No keys on a non-loopback address only on purpose (ALLOW_INSECURE_BIND): anyone could use it."""
    if settings.api_keys_file is not None or settings.allow_insecure_bind or _is_loopback(settings.host):
        return
    print(f"refusing to serve on HOST={settings.host} without API keys: set API_KEYS_FILE, "
          "or ALLOW_INSECURE_BIND=true to accept anyone who reaches the port", file=sys.stderr)
    raise SystemExit(2)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_server(settings: Settings) -> GatewayServer:
    configure_logging(settings.log_level, settings.logs_dir)
    try:
        app = create_app(settings)
    except KeyFileError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return GatewayServer(uvicorn_config(app, settings), app)


def serve(_: argparse.Namespace) -> None:
    settings = load_settings()
    check_bind(settings)
    make_server(settings).run()


def _sample_png(path: Path) -> Path:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (256, 256), (40, 120, 200))
    ImageDraw.Draw(img).ellipse((64, 64, 192, 192), fill=(240, 200, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


async def _demo(args: argparse.Namespace) -> None:
    from fake_comfyui import FakeComfyUI

    fakes = [FakeComfyUI(host="127.0.0.1", port=0, service_time=args.service_time, name=f"fake-{n + 1}")
             for n in range(args.servers)]
    for fake in fakes:
        await fake.__aenter__()
    try:
        hosts = ",".join(f.host_port for f in fakes)
        settings = load_settings(comfyui_hosts=hosts, port=args.port, data_dir=Path(args.data_dir),
                                 metrics_file_path=Path(args.data_dir) / "metrics" / "metrics.json",
                                 health_check_interval=2000)
        sample = _sample_png(Path(args.data_dir) / "demo" / "sample.png")
        base = f"http://{settings.host}:{settings.port}"
        print(f"\ncomfy-gateway demo: {args.servers} fake ComfyUI servers ({hosts}), gateway on {base}\n"
              f"Try:\n"
              f"  curl -s -F imageFile=@{sample} {base}/api/upscale-image | head -c 200; echo\n"
              f"  curl -s -F imageFile=@{sample} -H 'Accept: image/png' {base}/api/remove-background -o cutout.png\n"
              f"  curl -s -F imageFile=@{sample} {base}/api/async/upscale-image\n"
              f"  curl -s {base}/api/jobs/<job_id>/status\n"
              f"  curl -s {base}/health ; curl -s {base}/api/metrics\n"
              f"  comfy-gateway submit {sample.parent} --url {base} --out-dir results   (a batch)\n"
              f"  open {base}/dashboard (try it, the pool, jobs) and {base}/docs (the API)\n", flush=True)
        await make_server(settings).serve()
    finally:
        for fake in reversed(fakes):
            await fake.__aexit__(None, None, None)


def demo(args: argparse.Namespace) -> None:
    asyncio.run(_demo(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="comfy-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gateway (configured by environment variables / .env)").set_defaults(
        func=serve)
    d = sub.add_parser("demo", help="the gateway plus built-in fake ComfyUI servers, no GPU needed")
    d.add_argument("--servers", type=int, default=2)
    d.add_argument("--service-time", type=float, default=0.5, help="seconds each fake prompt takes")
    d.add_argument("--port", type=int, default=int(os.environ.get("PORT", 3000)))
    d.add_argument("--data-dir", default="./data/demo-run")
    d.set_defaults(func=demo)
    add_commands(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: the server has shut down by now (uvicorn raises it again after)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
