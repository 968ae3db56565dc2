"""Instructions each gateway executes per sync job, counted by valgrind's callgrind, in one run.

    .venv/bin/python bench/instructions.py [--jobs 40,240] [--clients 8] [--no-write]

CPU time per job moves by 5-10 % from one run to the next on a shared virtual machine, more than
most single changes to the gateway are worth. An instruction count does not: the same code and load
give the same count within about 0.5 %, whatever else the machine is doing. Each gateway (ours and
the floor) runs under callgrind in front of two pass-through fakes, which run normally; the load is
the capacity scenario's (64x64 PNG, sync JSON answers). A process is counted from start to exit,
so each gateway runs twice, with two numbers of jobs: the difference over the extra jobs is the
count per job, start-up and shutdown cancelled out. Under callgrind a process runs some 50 times
slower; what a gateway does per second rather than per job (health probes, sweeps) is counted
too, and weighs more than it would at full speed. The figures go into their own section of
bench/RESULTS.md (or of the file `--out` names).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import images, load, procs, report  # noqa: E402
from bench.scenarios import CAPACITY_SETTINGS  # noqa: E402

SECTION = "instructions"
WARM_UP_JOBS = 20
# Start-up under callgrind takes tens of seconds (every import is counted).
procs.READY_TIMEOUT = 300


async def _run_jobs(url: str, jobs: int, clients: int, image: bytes) -> None:
    left = jobs
    async with load.session(limit=clients + 4) as http:
        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                status, _ = await load.run_sync(http, url, "upscale-image", image)
                if status != 200:
                    raise RuntimeError(f"a sync job answered {status}")

        await asyncio.gather(*(client() for _ in range(clients)))


def _counted_run(command: str, jobs: int, clients: int, workdir: Path) -> int:
    """Instructions the gateway process executed, start to exit, serving WARM_UP_JOBS + `jobs`."""
    out = Path(tempfile.mkdtemp(prefix="callgrind-", dir=workdir))
    template = f"valgrind --tool=callgrind --callgrind-out-file={out}/cg.%p {command}"
    cluster = procs.Cluster.start(template, servers=2, service_time=0.0, settings=dict(CAPACITY_SETTINGS),
                                  workdir=workdir)
    try:
        asyncio.run(_run_jobs(cluster.gw.url, WARM_UP_JOBS + jobs, clients, images.picture(64)))
        procs.stop_process(cluster.gw.proc, timeout=120)  # an exit, not a kill: callgrind writes its file then
    finally:
        cluster.close()
    totals = [re.search(r"^summary: (\d+)", f.read_text(), re.M) for f in out.glob("cg.*")]
    found = [int(m.group(1)) for m in totals if m]
    if len(found) != 1:
        raise RuntimeError(f"expected one callgrind file of the gateway in {out}, found {len(found)}")
    return found[0]


def per_job(command: str, counts: tuple[int, int], clients: int, workdir: Path) -> dict[str, float]:
    few, many = (_counted_run(command, n, clients, workdir) for n in counts)
    return {"per_job": (many - few) / (counts[1] - counts[0]), "few": few, "many": many}


def section(results: dict[str, dict[str, float]], counts: tuple[int, int], clients: int) -> str:
    ours, floor = results["ours"], results["floor"]
    first, last = report.markers(SECTION)
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [first, "## instructions: per sync job, counted by callgrind", "",
             f"`python bench/instructions.py` ({version}): each gateway under callgrind in front of two "
             f"pass-through fakes, {clients} clients sending 64x64 PNGs for sync JSON answers (the capacity "
             f"load). Each gateway ran {counts[0]} and {counts[1]} jobs (after {WARM_UP_JOBS} to warm up), in "
             f"two processes; the count per job is the difference over the extra jobs. User-space "
             f"instructions only: the kernel's work for system calls is not in them.",
             "", "| figure | ours | floor |", "|---|---|---|",
             f"| instructions per job | {ours['per_job'] / 1e6:.2f} M | {floor['per_job'] / 1e6:.2f} M |",
             f"| process total, {counts[0]} jobs | {ours['few'] / 1e6:.0f} M | {floor['few'] / 1e6:.0f} M |",
             f"| process total, {counts[1]} jobs | {ours['many'] / 1e6:.0f} M | {floor['many'] / 1e6:.0f} M |",
             "", f"Ours ÷ floor: {ours['per_job'] / floor['per_job']:.2f}.", last]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="40,240", help="the two numbers of jobs, fewer first")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--gateway-cmd", default=procs.default_gateway_cmd())
    parser.add_argument("--reference-cmd", default=procs.floor_gateway_cmd())
    report.add_section_options(parser)
    args = parser.parse_args()
    few, many = (int(n) for n in args.jobs.split(","))
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    try:
        results = {name: per_job(cmd, (few, many), args.clients, workdir)
                   for name, cmd in (("ours", args.gateway_cmd), ("floor", args.reference_cmd))}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.publish_section(args, SECTION, section(results, (few, many), args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
