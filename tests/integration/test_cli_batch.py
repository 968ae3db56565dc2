"""`comfy-gateway submit` on a batch of 20 (2 of them not images), read through a pseudo-terminal:
the progress display, an interrupt half way, and a second run that resumes where the first stopped."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from support.browser import artifacts_dir, chromium, chromium_missing, svg_to_png
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import scene
from support.terminal import COLUMNS, LINES, Screen, read_until_eof
from support.waiting import eventually

CLI = str(Path(sys.executable).parent / "comfy-gateway")
GOOD, BAD = 18, 2


def make_inputs(folder: Path) -> None:
    folder.mkdir()
    for n in range(GOOD):
        (folder / f"photo-{n:02d}.png").write_bytes(scene(96, 64))
    for n in range(BAD):
        (folder / f"broken-{n}.png").write_bytes(b"these bytes are no image")


def spawn(url: str, inputs: Path, out: Path) -> Any:
    env = {**os.environ, "COMFY_GATEWAY_URL": url, "TERM": "xterm-256color",
           "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.pop("NO_COLOR", None)
    # run beside its folders, as a person would: the screen shows short relative paths
    return pexpect.spawn(CLI, ["submit", inputs.name, "--out-dir", out.name, "--concurrency", "3"],
                         cwd=str(inputs.parent), env=env, encoding="utf-8", dimensions=(LINES, COLUMNS), timeout=60)


def results_in(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.png") if not p.name.startswith("."))


JOB_BAR = re.compile(r"\s+photo-\d\d\.png .* (\d+)%")


def job_bars(lines: list[str]) -> list[int]:
    """The percentages of the per-job bars on the screen."""
    return [int(m.group(1)) for m in map(JOB_BAR.match, lines) if m]


def interrupted_run(url: str, inputs: Path, out: Path, artifacts: Path) -> dict[str, Any]:
    """Run until a few results are written and a job's bar has moved, look at the screen, press Ctrl-C."""
    child = spawn(url, inputs, out)
    screen = Screen()
    while len(results_in(out)) < 4 or not any(0 < p < 100 for p in job_bars(screen.lines())):
        try:
            screen.feed(child.read_nonblocking(65536, timeout=30))
        except pexpect.TIMEOUT:
            break
    in_progress = screen.lines()
    svg = screen.save_svg(artifacts / "cli-batch.svg", "comfy-gateway submit")
    child.sendintr()
    read_until_eof(child, screen, timeout=30)
    child.close()
    return {"screen": in_progress, "after": screen.lines(), "code": child.exitstatus, "svg": svg}


def resumed_run(url: str, inputs: Path, out: Path) -> dict[str, Any]:
    child = spawn(url, inputs, out)
    screen = Screen(lines=200)  # tall enough to keep the whole summary table
    read_until_eof(child, screen, timeout=60)
    child.close()
    return {"lines": screen.lines(), "code": child.exitstatus}


@pytest.mark.slow
async def test_a_batch_shows_progress_resumes_after_an_interrupt_and_reports_failures(
        fake_servers, tmp_path, tmp_path_factory):
    fakes = await fake_servers(2, service_time=1.5)
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    make_inputs(inputs)
    artifacts = artifacts_dir(tmp_path_factory.getbasetemp() / "artifacts")
    async with running_gateway(gateway_settings(tmp_path / "gw", hosts_of(fakes))) as gw:
        first = await asyncio.to_thread(interrupted_run, gw.url, inputs, out, artifacts)
        done_first = len(results_in(out))
        # the jobs the interrupted run had in flight were cancelled, not left running
        await eventually(lambda: _unfinished(gw), timeout=15, what="no job left pending or running")
        second = await asyncio.to_thread(resumed_run, gw.url, inputs, out)

    screen = "\n".join(first["screen"])
    assert re.search(r"overall .*\d+% +\d+/20 .*eta \d:\d\d:\d\d", screen), screen  # the overall bar, its ETA
    bars = job_bars(first["screen"])
    assert 1 <= len(bars) <= 3, screen  # one bar per running job, never more than --concurrency
    assert any(0 < p < 100 for p in bars), screen  # fed by the job's event stream
    assert first["code"] == 130
    assert 4 <= done_first < GOOD

    text = "\n".join(second["lines"])
    assert second["code"] == 1, text  # two inputs failed
    assert f"20 input(s), {done_first} already done, {20 - done_first} to run" in text
    assert f"{GOOD - done_first} done, {BAD} failed, {done_first} skipped" in text
    assert sum("broken-" in line and "failed" in line for line in second["lines"]) == BAD
    assert "not an image" in text
    assert [p.name for p in results_in(out)] == [f"photo-{n:02d}.upscale-image.png" for n in range(GOOD)]
    if not chromium_missing():  # the picture of the batch in progress, for the README
        with chromium() as driver:
            assert svg_to_png(driver, first["svg"], artifacts / "cli-batch.png").stat().st_size > 5_000


async def _unfinished(gw: Any) -> bool:
    stats = (await gw.client.get("/api/jobs/stats")).json()["by_status"]
    return stats["pending"] + stats["processing"] == 0
