"""`comfy-gateway submit | status | jobs`: talk to a running gateway from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from .client.batch import BatchOptions, Outcome, run_batch
from .client.http import GatewayClient, RequestFailed
from .client.inputs import BadInputs, collect, plan
from .client.progress import BatchProgress
from .client.status import show
from .client.summary import print_summary

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _client(args: argparse.Namespace) -> GatewayClient:
    return GatewayClient(args.url, args.api_key)


def _params(args: argparse.Namespace) -> dict[str, str]:
    params = {"format": args.format}
    for item in args.param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadInputs(f"--param takes NAME=VALUE, got {item!r}")
        params[name] = value
    return params


async def _submit(args: argparse.Namespace, console: Console) -> int:
    items = plan(collect(args.inputs), Path(args.out_dir), args.task, args.format)
    options = BatchOptions(task=args.task, params=_params(args), concurrency=args.concurrency)
    todo = sum(not item.output.exists() for item in items)
    console.print(f"{len(items)} input(s), {len(items) - todo} already done, {todo} to run "
                  f"({args.task}, {args.concurrency} at a time) -> {args.out_dir}", highlight=False)
    async with _client(args) as client:
        with BatchProgress(console, todo) as progress:
            results = await run_batch(client, items, options, progress)
    print_summary(console, results)
    return EXIT_FAILED if any(r.outcome is Outcome.FAILED for r in results) else 0


def _exit_with(console: Console, main: Coroutine[Any, Any, int], interrupted: tuple[int, str]) -> NoReturn:
    """Run a command's coroutine and exit with its code; Ctrl-C exits with `interrupted`'s code and note."""
    try:
        code = asyncio.run(main)
    except BadInputs as exc:
        console.print(f"[red]error:[/] {exc}")
        code = EXIT_USAGE
    except RequestFailed as exc:
        console.print(f"[red]error:[/] {exc}")
        code = EXIT_FAILED
    except KeyboardInterrupt:
        code, note = interrupted
        if note:
            console.print(note)
    sys.exit(code)


def submit(args: argparse.Namespace) -> None:
    console = Console()
    _exit_with(console, _submit(args, console), (EXIT_INTERRUPTED, "[yellow]interrupted:[/] finished results "
                                                 "are kept; run the same command again to resume"))


async def _status(args: argparse.Namespace, console: Console) -> int:
    async with _client(args) as client:
        return await show(client, console, args.watch)


def status(args: argparse.Namespace) -> None:
    console = Console()
    _exit_with(console, _status(args, console), (0, ""))  # --watch ends with Ctrl-C


async def _jobs(args: argparse.Namespace) -> int:
    path = f"/api/jobs/{args.job_id}/status" if args.job_id else "/api/jobs/list"
    async with _client(args) as client:
        try:
            body = await client.get_json(path)
        except RequestFailed as exc:
            print(exc)
            return EXIT_FAILED
    print(json.dumps(body, indent=2))
    return 0


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("COMFY_GATEWAY_URL", "http://127.0.0.1:3000"),
                        help="the gateway (default $COMFY_GATEWAY_URL or http://127.0.0.1:3000)")
    parser.add_argument("--api-key", default=os.environ.get("COMFY_GATEWAY_API_KEY"),
                        help="sent as X-API-Key (default $COMFY_GATEWAY_API_KEY)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_commands(sub: Any) -> None:
    s = sub.add_parser("submit", help="run a workflow on images (files, folders, globs), N at a time")
    s.add_argument("inputs", nargs="+", help="image files, folders (searched recursively) or glob patterns")
    s.add_argument("--task", default="upscale-image", help="workflow name (default upscale-image)")
    s.add_argument("--out-dir", default="out", help="results go here as <stem>.<task>.<ext> (default ./out)")
    s.add_argument("--concurrency", type=_positive, default=4, help="jobs running at once (default 4)")
    s.add_argument("--format", choices=["png", "jpeg", "webp"], default="png")
    s.add_argument("--param", action="append", help="workflow parameter NAME=VALUE (repeatable)")
    _connection_options(s)
    s.set_defaults(func=submit)
    st = sub.add_parser("status", help="the pool at a glance: servers, queue, throughput")
    st.add_argument("--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
                    help="redraw every SECONDS (default 2) until Ctrl-C")
    _connection_options(st)
    st.set_defaults(func=status)
    j = sub.add_parser("jobs", help="job status (with an id) or the job list, as JSON")
    j.add_argument("job_id", nargs="?")
    _connection_options(j)
    j.set_defaults(func=lambda a: sys.exit(asyncio.run(_jobs(a))))
