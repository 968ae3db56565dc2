"""`python -m fake_comfyui --port N ...`: run one fake server until SIGINT/SIGTERM or an `exit` action."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .lies import DEFAULT_SIZE
from .server import FakeComfyUI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fake_comfyui", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--service-time", type=float, default=0.0, help="extra seconds per prompt")
    parser.add_argument("--paused", action="store_true", help="start with execution paused")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N", help="fail the next N prompts")
    parser.add_argument("--hang-next", type=int, default=0, metavar="N", help="hang the next N prompts")
    parser.add_argument("--view-delay", type=float, default=0.0, help="seconds each GET /view waits")
    parser.add_argument("--lie", default=None, metavar="HOW", help="lie about the next prompts (lies.py)")
    parser.add_argument("--lie-count", type=int, default=1, metavar="N", help="how many prompts --lie is about")
    parser.add_argument("--lie-bytes", type=int, default=DEFAULT_SIZE, help="size of the huge answers and frames")
    parser.add_argument("--name", default=None, help="a label reported in stats and /system_stats")
    parser.add_argument("--without-nodes", default="", metavar="A,B",
                        help="comma-separated node classes this server lacks (e.g. InspyrenetRembg)")
    parser.add_argument("--models", default=None, metavar="A,B",
                        help="comma-separated upscale model files it offers (default: the usual three)")
    parser.add_argument("--model-load-time", type=float, default=0.0,
                        help="seconds a prompt waits first when it uses other models than the previous one")
    return parser.parse_args(argv)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


async def serve(args: argparse.Namespace) -> None:
    fake = FakeComfyUI(args.host, args.port, args.service_time, args.name, view_delay=args.view_delay,
                       without_nodes=_names(args.without_nodes),
                       models=None if args.models is None else _names(args.models),
                       model_load_time=args.model_load_time)
    async with fake:
        if args.paused:
            fake.pause()
        if args.fail_next:
            fake.fail_next(args.fail_next)
        if args.hang_next:
            fake.hang_next(args.hang_next)
        if args.lie:
            fake.lie_next(args.lie, args.lie_count, args.lie_bytes)
        print(f"fake_comfyui listening on {fake.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(fake.wait_exit())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"fake_comfyui: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
