"""`make bench`: start fake ComfyUI servers and a gateway per scenario, measure, write bench/RESULTS.md.

    python bench/run.py                                  # every scenario, 3 repeats (fewer for long ones)
    python bench/run.py --scenarios dispatch,throughput --repeats 5
    python bench/run.py --quick                          # a smoke run in well under a minute
    python bench/run.py --gateway-cmd 'node server.js'   # any gateway with the same API; {port},
                                                         # {comfy_hosts} and {data_dir} are filled in,
                                                         # PORT, COMFYUI_HOSTS, DATA_DIR... are set too
    python bench/run.py --profile bench/profiles         # py-spy on the gateway, one file per scenario
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report, scenarios  # noqa: E402
from bench.procs import default_gateway_cmd, floor_gateway_cmd  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-cmd", default=default_gateway_cmd(),
                        help="command that starts the gateway (default: %(default)s)")
    parser.add_argument("--reference-cmd", default=floor_gateway_cmd(),
                        help="the floor each scenario also runs on, in the same run ('' for none; "
                             "default: %(default)s)")
    parser.add_argument("--scenarios", default=",".join(scenarios.DEFAULT),
                        help=f"comma-separated subset of {', '.join(scenarios.ORDER)}")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (capacity and memory: at most 2)")
    parser.add_argument("--quick", action="store_true", help="fewer jobs and shorter runs, one repeat")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record a py-spy profile (collapsed stacks) of the gateway per scenario into DIR")
    parser.add_argument("--profile-all-threads", action="store_true",
                        help="sample every thread (wall clock), not only the one holding the GIL (CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where RESULTS.md and results.json go")
    parser.add_argument("--baseline", type=Path, default=ROOT / "bench" / "baseline.json",
                        help="earlier results.json to compare with (a 'Before and after' section)")
    parser.add_argument("--save-baseline", metavar="LABEL", default=None,
                        help="also copy this run's results.json to --baseline, labelled LABEL")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: write RESULTS.md again from the results.json in --out")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(scenarios.ORDER)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.quick:
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        import json

        run = json.loads((args.out / "results.json").read_text())
        print(f"[bench] wrote {report.write(args.out, run, ROOT / 'bench' / 'NOTES.md', args.baseline)}")
        return 0
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="comfy-bench-"))
    cfg = scenarios.Config(gateway_cmd=args.gateway_cmd, workdir=workdir, repeats=args.repeats, quick=args.quick,
                           redis_url=args.redis_url, profile_dir=args.profile,
                           profile_gil_only=not args.profile_all_threads)
    run = {"command": " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
           "gateway_cmd": args.gateway_cmd, "repeats": args.repeats, "quick": args.quick,
           "machine": report.machine_info(workdir), "scenarios": []}
    wanted = args.scenarios.split(",")
    try:
        for name in scenarios.ORDER:
            if name not in wanted:
                continue
            print(f"[bench] {name} ...", flush=True)
            result = _run_scenario(name, cfg)
            if args.reference_cmd and name in scenarios.SIDE_BY_SIDE and not result.error:
                print(f"[bench] {name} on the floor gateway ...", flush=True)
                floor_cfg = dataclasses.replace(cfg, gateway_cmd=args.reference_cmd, profile_dir=None)
                result.reference = _run_scenario(name, floor_cfg).as_dict()
            run["scenarios"].append(result.as_dict())
            _print_summary(result)
    finally:
        run["seconds"] = time.monotonic() - started
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = report.write(args.out, run, ROOT / "bench" / "NOTES.md", args.baseline)
    if args.save_baseline:
        import json

        saved = json.loads((args.out / "results.json").read_text())
        saved["label"] = args.save_baseline
        args.baseline.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"[bench] wrote {path} in {run['seconds']:.0f} s", flush=True)
    return 0


def _run_scenario(name: str, cfg: scenarios.Config) -> scenarios.Result:
    t0 = time.monotonic()
    try:
        result = scenarios.SCENARIOS[name](cfg)
    except Exception as exc:
        traceback.print_exc()
        result = scenarios.Result(name, name, {})
        result.error = f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    result.seconds = time.monotonic() - t0
    return result


def _print_summary(result: scenarios.Result) -> None:
    if result.error:
        print(f"[bench]   {result.error}", flush=True)
    floor = (result.reference or {}).get("metrics", {})
    for key, metric in result.metrics.items():
        runs = ", ".join(f"{v:.3g}" for v in metric["runs"])
        beside = floor.get(key, {}).get("runs")
        print(f"[bench]   {key}: {runs} {metric['unit']}"
              + (f"   (floor: {', '.join(f'{v:.3g}' for v in beside)})" if beside else ""), flush=True)
    print(f"[bench]   ({result.seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
