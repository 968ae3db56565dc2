"""Summarize a py-spy collapsed-stack file (`--format raw`): the functions with the most samples.

    python bench/profile_top.py bench/profiles/capacity.txt [--top 30] [--thread MainThread] [--grep sqlite]

`self` counts samples where the function was on top of the stack, `total` where it was anywhere
on it (once per sample). Idle samples (the event loop waiting in select/epoll) are reported apart.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"(^|[ .])(select|poll|epoll|Queue\.get|Condition\.wait|Event\.wait|Thread\.join"
                  r"|_wait_for_tstate_lock) \(")


def load(path: Path, thread: str | None) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if thread and not any(thread in f for f in frames[:1]):
            continue
        stacks.append((frames, int(count)))
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--thread", default=None, help="only stacks whose first frame mentions this")
    parser.add_argument("--grep", default=None, help="only functions whose name or file matches")
    args = parser.parse_args()
    stacks = load(args.file, args.thread)
    total = sum(c for _, c in stacks)
    idle = sum(c for frames, c in stacks if IDLE.search(frames[-1]))
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    busy = max(total - idle, 1)
    print(f"{total} samples, {idle} idle (waiting), {total - idle} busy; shares below are of busy samples")
    for title, counter in (("self", own), ("total", incl)):
        print(f"\n--- by {title} ---")
        shown = 0
        for frame, count in counter.most_common():
            if IDLE.search(frame) or frame.startswith(("process ", "thread ")):
                continue
            if args.grep and args.grep not in frame:
                continue
            print(f"{100 * count / busy:6.1f}%  {frame}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
