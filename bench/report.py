"""bench/RESULTS.md and bench/results.json: the machine, the settings, every figure, targets met or not."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from .load import percentile

OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def machine_info(workdir: Path) -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = "unknown"
    for part in sorted(psutil.disk_partitions(all=True), key=lambda p: len(p.mountpoint), reverse=True):
        if str(workdir).startswith(part.mountpoint):
            fs = f"{part.fstype} ({part.mountpoint})"
            break
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "scratch_filesystem": fs,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def summarize(runs: list[float]) -> dict[str, float]:
    return {"median": percentile(runs, 50), "min": min(runs), "max": max(runs)}


def _fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "–"
    magnitude = abs(value)
    if unit == "" and value == int(value) and magnitude < 1e6:  # counts
        return str(int(value))
    text = f"{value:.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10 else f"{value:.2f}"
    if magnitude < 0.1 and value != 0:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip() if unit not in ("", "jobs/s") else text


def _floor_runs(scenario: dict[str, Any], key: str) -> list[float]:
    floor = (scenario.get("reference") or {}).get("metrics", {}).get(key) or {}
    return list(floor.get("runs") or [])


def evaluate(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against the median of its runs; a target `of_reference` against ours ÷ the floor's."""
    rows = []
    for target in scenario["targets"]:
        metric = scenario["metrics"].get(target["metric"])
        floor = _floor_runs(scenario, target["metric"])
        if metric is None or not metric["runs"] or (target.get("of_reference") and not floor):
            rows.append({**target, "met": None})
            continue
        s = summarize(metric["runs"])
        unit = metric["unit"]
        if target.get("of_reference"):
            s = {k: v / percentile(floor, 50) for k, v in s.items()}
            unit = "× floor"
        row = {**target, **s, "unit": unit, "met": OPS[target["op"]](s["median"], target["value"])}
        row["floor"] = percentile(floor, 50) if floor else float("nan")
        rows.append(row)
    return rows


def write(out_dir: Path, run: dict[str, Any], notes_file: Path | None, baseline_file: Path | None) -> Path:
    for scenario in run["scenarios"]:
        scenario["evaluation"] = evaluate(scenario)
        for metric in scenario["metrics"].values():
            metric.update(summarize(metric["runs"]) if metric["runs"] else {})
    (out_dir / "results.json").write_text(json.dumps(run, indent=2) + "\n")
    baseline = None
    if baseline_file is not None and baseline_file.exists():
        baseline = json.loads(baseline_file.read_text())
    lines = _markdown(run, baseline)
    if notes_file is not None and notes_file.exists():
        lines += ["", notes_file.read_text().rstrip()]
    path = out_dir / "RESULTS.md"
    kept = marked_sections(path.read_text()) if path.exists() else []
    path.write_text("\n".join(lines + [s for section in kept for s in ("", section)]) + "\n")
    return path


# Sections other bench scripts (outputs_stream.py, v2_peer.py) write between markers: a run of
# run.py keeps them, and each script replaces only its own.
_MARKED = re.compile(r"<!-- ([a-z0-9:_-]+) -->.*?<!-- /\1 -->", re.S)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def marked_sections(text: str) -> list[str]:
    return [m.group(0) for m in _MARKED.finditer(text)]


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def add_section_options(parser: argparse.ArgumentParser) -> None:
    """`--no-write` and `--out`, for a script that puts its own section into the results file."""
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="the results file its section goes into (default bench/RESULTS.md)")


def publish_section(args: argparse.Namespace, name: str, text: str) -> None:
    """Print the section, then put it into `args.out` unless `args.no_write`."""
    print(text)
    if not args.no_write:
        write_section(args.out, name, text)


def write_section(path: Path, name: str, text: str) -> None:
    """Put `text` (which starts and ends with the markers of `name`) into `path`, replacing its old one."""
    first, last = markers(name)
    current = path.read_text() if path.exists() else ""
    start, end = current.find(first), current.find(last)
    if start >= 0 and end > start:
        current = current[:start].rstrip("\n") + "\n\n" + text + current[end + len(last):]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


def _markdown(run: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    m = run["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`{run['command']}`) on {m['date_utc']} UTC in {run['seconds']:.0f} s. "
        f"Every figure is the median of the runs, with their min and max; latency percentiles are taken "
        f"within each run first.",
        "",
        "## Machine and settings",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable) |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| Python | {m['python']} |",
        f"| OS | {m['os']} |",
        f"| load average at start | {', '.join(map(str, m['load_average_at_start']))} |",
        f"| data directory on | {m['scratch_filesystem']} |",
        f"| gateway command | `{run['gateway_cmd']}` |",
        f"| code | {m['git_commit']}{' (with local changes)' if m['git_dirty'] else ''} |",
        f"| repeats | {run['repeats']}{' (quick mode)' if run['quick'] else ''} |",
        "",
        "The machine is shared: other processes may run during a measurement, hence medians of repeats.",
        "",
        "## Targets",
        "",
        "| scenario | target | median | min | max | floor | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for sc in run["scenarios"]:
        if sc.get("error") and not sc["evaluation"]:
            lines.append(f"| {sc['name']} | – | {sc['error']} | | | | not run |")
        for ev in sc["evaluation"]:
            if ev["met"] is None:
                lines.append(f"| {sc['name']} | {ev['text']} | {sc.get('error') or 'no data'} | | | | not run |")
                continue
            unit = ev["unit"]
            floor_unit = sc["metrics"][ev["metric"]]["unit"]
            lines.append(f"| {sc['name']} | {ev['text']} | {_fmt(ev['median'], unit)} | {_fmt(ev['min'], unit)} "
                         f"| {_fmt(ev['max'], unit)} | {_fmt(ev['floor'], floor_unit)} "
                         f"| {'met' if ev['met'] else '**not met**'} |")
    if baseline is not None:
        lines += _comparison(run, baseline)
    for sc in run["scenarios"]:
        lines += ["", f"## {sc['name']}: {sc['title']}", ""]
        settings = ", ".join(f"{k}={v}" for k, v in sc["settings"].items())
        lines += [f"Settings: {settings}. Took {sc['seconds']:.0f} s.", ""]
        if sc.get("error"):
            lines += [f"**{sc['error']}**", ""]
        if sc["metrics"]:
            lines += _figures(sc)
        for note in sc["notes"]:
            lines += ["", note]
    return lines


def _figures(sc: dict[str, Any]) -> list[str]:
    """A scenario's figures, with the floor gateway's median beside each when it ran too."""
    reference = sc.get("reference")
    if reference and reference.get("error"):
        lines = [f"The floor gateway did not complete this scenario: {reference['error']}", ""]
    else:
        lines = []
    lines += ["| figure | median | min | max | runs | floor (median) |", "|---|---|---|---|---|---|"]
    for key, metric in sc["metrics"].items():
        if not metric["runs"]:
            continue
        unit = metric["unit"]
        runs = ", ".join(_fmt(v) for v in metric["runs"])
        suffix = f" ({unit})" if unit and not metric["label"].endswith(unit) else ""
        floor = _floor_runs(sc, key)
        beside = _fmt(percentile(floor, 50)) if floor else "–"
        lines.append(f"| {metric['label']}{suffix} | {_fmt(metric['median'])} | "
                     f"{_fmt(metric['min'])} | {_fmt(metric['max'])} | {runs} | {beside} |")
    return lines


def _comparison(run: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    before = {sc["name"]: sc for sc in baseline.get("scenarios", [])}
    lines = ["", "## Before and after", "",
             f"Before: {baseline.get('label') or 'baseline'} ({baseline['machine']['date_utc']} UTC, code "
             f"{baseline['machine']['git_commit']}); after: this run. Medians.", "",
             "| scenario | figure | before | after |", "|---|---|---|---|"]
    for sc in run["scenarios"]:
        old = before.get(sc["name"])
        if old is None:
            continue
        for key, metric in sc["metrics"].items():
            old_metric = old["metrics"].get(key)
            if not metric["runs"] or old_metric is None or not old_metric.get("runs"):
                continue
            unit = metric["unit"]
            lines.append(f"| {sc['name']} | {metric['label']} | {_fmt(percentile(old_metric['runs'], 50), unit)} "
                         f"| {_fmt(metric['median'], unit)} |")
    return lines
