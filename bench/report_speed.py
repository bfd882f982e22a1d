"""How fast `vast-loopback report` is: on the imported field traces (goal: well under 1 s) and on a
synthetic 24-hour run (86,400 samples; goal: reasonable time and memory).

    .venv/bin/python bench/report_speed.py [--json FILE] [--repeat N] [--hours H]

For each case it measures, side by side: the import (field traces only), the analysis + report in
this process (median of N), and the whole CLI (`python -m tui.cli report DIR`, a fresh process:
start-up included) with its peak resident memory. Prints a table; `--json` writes the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.analysis.deployment import analyse  # noqa: E402
from backend.analysis.importer import import_traces  # noqa: E402
from backend.analysis.report import render  # noqa: E402
from bench.synthetic_run import write_synthetic_run  # noqa: E402

FIELD = Path(os.environ.get("VLB_SHARED", REPO.parent / "shared")) / "traces" / "seed-run-2025-12-29"

CLI_PROBE = """
import resource, sys, time
started = time.perf_counter()
from tui.cli import main
code = main(["report", sys.argv[1], "--output", sys.argv[2]])
print(f"{time.perf_counter() - started} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {code}")
"""


def _in_process(run_dir: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        data = analyse(run_dir)
        (run_dir / "report.bench.md").write_text(render(data))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cli(run_dir: Path) -> tuple[float, float, float]:
    """(wall s of the whole process, s inside main, peak RSS MiB)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CLI_PROBE, str(run_dir), str(run_dir / "report.cli.md")],
                            cwd=REPO, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    inside, rss_kib, _code = result.stdout.strip().splitlines()[-1].split()
    return wall, float(inside), int(rss_kib) / 1024


def _size(run_dir: Path) -> tuple[int, int, float]:
    samples = sum(1 for _ in (run_dir / "samples.jsonl").open())
    events = sum(1 for _ in (run_dir / "events.jsonl").open())
    mib = sum(p.stat().st_size for p in run_dir.iterdir() if p.is_file()) / 2**20
    return samples, events, mib


def measure(repeat: int = 3, hours: float = 24.0) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlb-bench-report-") as tmp:
        base = Path(tmp)
        if FIELD.is_dir():
            started = time.perf_counter()
            run = import_traces(FIELD, base / "field")
            imported = time.perf_counter() - started
            samples, events, mib = _size(run.path)
            wall, inside, rss = _cli(run.path)
            rows.append({"case": "field traces (imported)", "samples": samples, "events": events, "size_mib": mib,
                         "import_s": imported, "report_s": _in_process(run.path, repeat), "cli_wall_s": wall,
                         "cli_main_s": inside, "peak_rss_mib": rss, "goal": "< 1 s"})
        else:
            rows.append({"case": "field traces (imported)", "skipped": f"{FIELD} not found"})
        started = time.perf_counter()
        run = write_synthetic_run(base / "synthetic", hours=hours)
        generated = time.perf_counter() - started
        samples, events, mib = _size(run.path)
        wall, inside, rss = _cli(run.path)
        rows.append({"case": f"synthetic {hours:g} h run", "samples": samples, "events": events, "size_mib": mib,
                     "generate_s": generated, "report_s": _in_process(run.path, max(1, repeat // 2)),
                     "cli_wall_s": wall, "cli_main_s": inside, "peak_rss_mib": rss, "goal": "reasonable"})
    return rows


def table(rows: list[dict]) -> str:
    header = ("case", "samples", "events", "MiB", "import s", "report s", "CLI wall s", "CLI main s", "peak RSS MiB",
              "goal")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['case']} | skipped: {row['skipped']}")
            continue
        lines.append(" | ".join([
            row["case"], f"{row['samples']:,}", f"{row['events']:,}", f"{row['size_mib']:.1f}",
            f"{row['import_s']:.3f}" if "import_s" in row else "-", f"{row['report_s']:.3f}",
            f"{row['cli_wall_s']:.3f}", f"{row['cli_main_s']:.3f}", f"{row['peak_rss_mib']:.0f}", row["goal"]]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--repeat", type=int, default=3, help="in-process repetitions (median)")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the synthetic run")
    args = parser.parse_args(argv)
    rows = measure(args.repeat, args.hours)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "report_speed", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
