"""Three members on the lab's big cluster vs one, side by side: wall time, ratio, our own CPU per member.

    .venv/bin/python -m bench.fleet_scale [--speed 120] [--count 3]

Runs `vast-loopback --auto` (one member's run) and `vast-loopback fleet up --count N` in turn, each
as a child process, and prints wall seconds, the ratio (goal: well under N), and our own overhead
per extra member: the CPU seconds (user + sys) of our process beyond the single run's, per member
added. The lab runs in the same process, so its cost is counted too (it is the guests' cost here).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANSWERS = ("proxmox: {url: lab}\nvm: {name: class, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"
           "lab: {host_profile: big}\n")


def _timed(args: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    code = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", default="120")
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "tui.cli"]
    with tempfile.TemporaryDirectory(prefix="vlb-bench-fleet-") as tmp:
        answers = Path(tmp) / "answers.yaml"
        answers.write_text(ANSWERS)
        one = _timed([*cli, "--auto", str(answers), "--run-dir", os.path.join(tmp, "one"), "--speed", args.speed])
        many = _timed([*cli, "fleet", "up", str(answers), "--count", str(args.count),
                       "--run-dir", os.path.join(tmp, "class"), "--speed", args.speed])
    extra = max(1, args.count - 1)
    print(f"{'':<22}{'wall s':>9}{'CPU s':>9}{'exit':>6}")
    print(f"{'1 member (--auto)':<22}{one[0]:>9.1f}{one[1]:>9.1f}{one[2]:>6}")
    print(f"{f'{args.count} members (fleet up)':<22}{many[0]:>9.1f}{many[1]:>9.1f}{many[2]:>6}")
    print(f"wall ratio {many[0] / one[0]:.2f} (goal: well under {args.count}); "
          f"CPU per extra member {(many[1] - one[1]) / extra:.1f} s "
          f"(one member's whole run: {one[1]:.1f} s)")
    return 0 if one[2] == 0 and many[2] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
