"""Crafted files against `report` and `import-traces` (issue 12, item 7): peak memory, time and
outcome, side by side for the code at a git ref (default: the last commit before the fix) and for
this checkout.

    .venv/bin/python bench/crafted_files.py [--before REF] [--size-gib N] [--json FILE]

Cases: a run directory whose samples.jsonl starts with a 1 GiB sparse line (zeros, no newline);
a traces folder whose install log starts with the same; a journal line nested 100,000 deep; a FIFO
in place of samples.jsonl (a hang shows as "timeout"). Each command runs in a fresh process under
an address-space cap (RLIMIT_AS, default 4 GiB, so the old code cannot take the machine down); the
peak RSS is the child's own (wait4). The code at REF is `git archive`d into a temp folder and run
with this checkout's Python.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.recorded_runs import write_recorded_run  # noqa: E402
from tests.test_import_traces import write_folder  # noqa: E402

BEFORE = "5c15736"  # main before the fix of issue 12's item 7
GIB = 1024**3
TIMEOUT_S = 60.0


def _checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def _prefix_sparse(path: Path, size: int) -> None:
    """`path` again, after `size` bytes of zeros with no newline (a sparse hole: no disk used)."""
    data = path.read_bytes()
    path.unlink()
    with path.open("wb") as handle:
        handle.truncate(size)
        handle.seek(size)
        handle.write(b"\n" + data)


def _cases(base: Path, size: int) -> list[tuple[str, list[str]]]:
    huge = write_recorded_run(base / "huge-samples", "success").path
    _prefix_sparse(huge / "samples.jsonl", size)
    traces = write_folder(base / "huge-install-log")
    _prefix_sparse(traces / "install" / "vast_install_test.log", size)
    nested = write_recorded_run(base / "nested", "success").path
    with (nested / "events.jsonl").open("a") as handle:
        handle.write('{"type": "StepProgressed", "ts": 1, "step": "x", "message": ' + "[" * 100_000
                     + "]" * 100_000 + "}\n")
    fifo = write_recorded_run(base / "fifo", "success").path
    (fifo / "samples.jsonl").unlink()
    os.mkfifo(fifo / "samples.jsonl")
    gib = f"{size / GIB:g} GiB"
    return [
        (f"report: samples.jsonl with a {gib} line", ["report", str(huge), "--output", str(base / "r1.md")]),
        (f"import-traces: install log with a {gib} line",
         ["import-traces", str(traces), "--run-dir", str(base / "out-{side}")]),
        ("report: a line nested 100,000 deep", ["report", str(nested), "--output", str(base / "r2.md")]),
        ("report: a FIFO as samples.jsonl", ["report", str(fifo), "--output", str(base / "r3.md")]),
    ]


def _run(code: Path, args: list[str], cap: int) -> dict:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "tui.cli", *args], cwd=code,
                               env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=limit)
    outcome = ""
    deadline = started + TIMEOUT_S
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            outcome = "timeout"
            break
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if not outcome:
        outcome = f"exit {process.returncode}"
        if "MemoryError" in err:
            outcome += " (MemoryError)"
        elif "RecursionError" in err:
            outcome += " (RecursionError)"
        elif "internal error" in err:
            outcome += " (internal error)"
    return {"outcome": outcome, "wall_s": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def measure(before: str, size: int, cap: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlb-bench-crafted-") as tmp:
        base = Path(tmp)
        old = _checkout(before, base / "before")
        for name, args in _cases(base, size):
            row = {"case": name}
            for side, code in (("before", old), ("after", REPO)):
                row[side] = _run(code, [a.replace("{side}", side) for a in args], cap)
            rows.append(row)
    return rows


def table(rows: list[dict], before: str) -> str:
    lines = [f"case | before ({before}): outcome, wall s, peak RSS MiB | after (this checkout)", "--- | --- | ---"]
    for row in rows:
        cells = [f"{r['outcome']}, {r['wall_s']:.2f} s, {r['peak_rss_mib']:,.0f} MiB"
                 for r in (row["before"], row["after"])]
        lines.append(" | ".join([row["case"], *cells]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, metavar="REF", help=f"git ref of the old code (default {BEFORE})")
    parser.add_argument("--size-gib", type=float, default=1.0, help="size of the crafted sparse lines")
    parser.add_argument("--cap-gib", type=float, default=4.0, help="address-space cap of each command")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = measure(args.before, int(args.size_gib * GIB), int(args.cap_gib * GIB))
    print(table(rows, args.before))
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "crafted_files", "before": args.before, "rows": rows},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
