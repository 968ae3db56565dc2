"""`comfy-gateway submit` and `comfy-gateway jobs`: talk to a running gateway from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp


async def _submit(args: argparse.Namespace, image: bytes) -> tuple[int, bytes | None]:
    """Exit code, and the result bytes when an output file was asked for."""
    form = aiohttp.FormData()
    form.add_field("imageFile", image, filename=Path(args.image).name)
    route = f"/api/async/{args.task}" if args.no_wait else f"/api/run/{args.task}"
    params = {"format": args.format} if args.format else {}
    for item in args.param or []:
        name, _, value = item.partition("=")
        params[name] = value
    headers = {"Accept": "image/*"} if args.output else {}
    async with aiohttp.ClientSession() as session, session.post(
            args.url.rstrip("/") + route, data=form, params=params, headers=headers) as resp:
        if args.output and resp.status == 200 and resp.content_type.startswith("image/"):
            print(f"wrote {args.output} ({resp.content_type}, job {resp.headers.get('X-Job-ID')})")
            return 0, await resp.read()
        body: Any = await resp.json(content_type=None)
        if "imageBase64" in body:  # keep the terminal readable
            body["imageBase64"] = body["imageBase64"][:60] + "..."
        print(json.dumps(body, indent=2))
        return (0 if resp.status < 400 else 1), None


def submit(args: argparse.Namespace) -> None:
    code, result = asyncio.run(_submit(args, Path(args.image).read_bytes()))
    if result is not None:
        Path(args.output).write_bytes(result)
    sys.exit(code)


async def _get(args: argparse.Namespace, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(args.url.rstrip("/") + path) as resp:
        print(json.dumps(await resp.json(content_type=None), indent=2))
        return 0 if resp.status < 400 else 1


def add_commands(sub: Any) -> None:
    s = sub.add_parser("submit", help="send an image to a running gateway")
    s.add_argument("image")
    s.add_argument("--task", default="upscale-image", help="workflow name (default upscale-image)")
    s.add_argument("--url", default="http://127.0.0.1:3000")
    s.add_argument("-o", "--output", help="write the result image here")
    s.add_argument("--format", choices=["png", "jpeg", "webp"])
    s.add_argument("--param", action="append", help="workflow parameter NAME=VALUE (repeatable)")
    s.add_argument("--no-wait", action="store_true", help="submit as an async job and print its id")
    s.set_defaults(func=submit)
    j = sub.add_parser("jobs", help="job status (with an id) or the job list")
    j.add_argument("job_id", nargs="?")
    j.add_argument("--url", default="http://127.0.0.1:3000")
    j.set_defaults(func=lambda a: sys.exit(asyncio.run(
        _get(a, f"/api/jobs/{a.job_id}/status" if a.job_id else "/api/jobs/list"))))
