"""Cold start to the first frame of the wizard, measured in a real pseudo-terminal.

Each case spawns a fresh interpreter on an 80x24 pty and times from the spawn until the first
frame's text appears on the terminal, then quits it (Ctrl+Q). Side by side: a bare interpreter,
importing Textual, and a one-line Textual app, so the wizard's own share is visible.

    .venv/bin/python bench/tui_startup.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_MS = 1000.0
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")

HELLO_APP = (
    "from textual.app import App\nfrom textual.widgets import Static\n"
    "class Hello(App):\n    def compose(self):\n        yield Static('hello textual')\n"
    "Hello().run()\n"
)

CASES = [
    # (name, argv after the interpreter, text that marks the first frame, goal in ms or None)
    ("python -c pass (interpreter only)", ["-c", "print('ready')"], b"ready", None),
    ("python -c 'import textual.app'", ["-c", "import textual.app; print('ready')"], b"ready", None),
    ("minimal Textual app, first frame", ["-c", HELLO_APP], b"hello textual", None),
    ("vast-loopback (start screen)", ["-m", "tui.cli"], b"New run on a Proxmox VE host", GOAL_MS),
    ("vast-loopback demo (connect screen)", ["-m", "tui.cli", "demo"], b"Connect to Proxmox VE", GOAL_MS),
]


def first_frame_ms(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 20.0) -> float:
    """Spawn on an 80x24 pty; milliseconds until `marker` shows in the output (ANSI stripped)."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the program
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, *argv], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    elapsed = None
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if marker in ANSI.sub(b"", seen):
                elapsed = (time.perf_counter() - started) * 1000
                break
    finally:
        _quit(pid, fd)
    if elapsed is None:
        raise RuntimeError(f"no first frame within {timeout} s for {argv}: {ANSI.sub(b'', seen)[-300:]!r}")
    return elapsed


def _quit(pid: int, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, b"\x11")  # Ctrl+Q
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        try:
            select.select([fd], [], [], 0.05)
            os.read(fd, 65536)
        except OSError:
            time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vlb-bench-") as home:
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24",
               "XDG_DATA_HOME": home, "PYTHONPATH": str(REPO), "TEXTUAL_ANIMATIONS": "none"}
        env.pop("TEXTUAL", None)
        rows = []
        for name, case_argv, marker, goal in CASES:
            first_frame_ms(case_argv, marker, env)  # warm the page cache: "cold" means a new process
            times = [first_frame_ms(case_argv, marker, env) for _ in range(args.runs)]
            rows.append({"case": name, "median_ms": statistics.median(times), "min_ms": min(times),
                         "max_ms": max(times), "goal_ms": goal, "runs": args.runs})
    base = rows[2]["median_ms"]
    print(f"{'case':<40} {'median':>8} {'min':>8} {'max':>8} {'goal':>7} {'vs minimal app':>15}")
    for row in rows:
        goal = f"{row['goal_ms']:.0f}" if row["goal_ms"] else "-"
        ok = "" if not row["goal_ms"] else (" ok" if row["median_ms"] < row["goal_ms"] else " SLOW")
        print(f"{row['case']:<40} {row['median_ms']:>6.0f}ms {row['min_ms']:>6.0f}ms {row['max_ms']:>6.0f}ms "
              f"{goal:>7} {row['median_ms'] / base:>14.2f}x{ok}")
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "tui_startup", "unit": "ms", "rows": rows}, indent=2))
    return 0 if all(r["median_ms"] < r["goal_ms"] for r in rows if r["goal_ms"]) else 1


if __name__ == "__main__":
    sys.exit(main())
