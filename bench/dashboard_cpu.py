"""The dashboard's CPU while a run streams at 1 Hz, with every pane on screen (goal: under 3 % of
one core), side by side with what it costs to do nothing.

A recorded run on the field report's timeline (tests/recorded_runs.py, success shape, 1 sample a
second) is folded up to 20 s before activation, then replayed from there into the dashboard at
the pace it was recorded (speed 1: one sample a second, plus the run's other events), for N
seconds. CPU is the process's own (user + system, all threads) over the measured window, after a
warm-up; "loop lag" is the worst lateness of a 50 ms timer on the UI's event loop (stutter).

Cases, each in a fresh app: an idle Textual app (the floor), the dashboard with nothing arriving,
the dashboard at 1 Hz on 200x60 (the goal) and on 80x24, at 10 Hz (a stress: ten samples a
second, still at most four repaints), all with Textual's headless driver; and the same 1 Hz
dashboard in a real pseudo-terminal (a child process with Textual's Linux driver writing every
frame, measured from the outside), unless --no-pty.

    .venv/bin/python bench/dashboard_cpu.py [--seconds N] [--json FILE] [--no-pty]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from textual.app import App  # noqa: E402
from textual.widgets import Static  # noqa: E402

from backend.analysis.replay import recorded_events, replay  # noqa: E402
from screens.dashboard import DashboardScreen  # noqa: E402
from tests.recorded_runs import timeline, write_recorded_run  # noqa: E402
from tui.session import RunSession  # noqa: E402

GOAL_PCT = 3.0
WARMUP_S = 3.0
BIG, SMALL = (200, 60), (80, 24)


class Idle(App):
    def compose(self):  # noqa: ANN201
        yield Static("nothing happens here")


class Dashboard(App):
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.session = session

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen(self.session, result_on_end=False))


def prepared(run_dir: Path, speed: float | None) -> tuple[RunSession, int]:
    """A session holding the run up to 20 s before activation; the rest replayed at `speed`
    (None: no source, nothing arrives). Returns it and how many events wait to be replayed."""
    events = recorded_events(run_dir)
    cut = timeline("success", 1.0).activating - 20
    past = [e for e in events if e.ts <= cut]
    rest = [e for e in events if e.ts > cut]
    counted = {"n": 0}

    async def source(subscriber) -> int:  # noqa: ANN001
        def count(event) -> None:  # noqa: ANN001
            counted["n"] += 1
            subscriber(event)

        return await replay(rest, count, speed=speed or 1.0)

    session = RunSession(title="VM vast-lb", run_path=run_dir, source=source if speed else None, live=False,
                         speed=speed or 1.0)
    for event in past:
        session.apply(event, notify=False)
    session.fed = counted  # type: ignore[attr-defined]
    return session, len(rest)


async def measure(app: App, size: tuple[int, int], seconds: float, session: RunSession | None) -> dict:
    lag = {"max": 0.0}

    async def watch_loop() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.05)
            lag["max"] = max(lag["max"], time.perf_counter() - start - 0.05)

    async with app.run_test(size=size):
        await asyncio.sleep(WARMUP_S)
        watcher = asyncio.ensure_future(watch_loop())
        screen = app.screen
        flushes0 = getattr(screen, "flushes", 0)
        fed0 = session.fed["n"] if session is not None else 0  # type: ignore[attr-defined]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        watcher.cancel()
        flushes = getattr(screen, "flushes", 0) - flushes0
        fed = (session.fed["n"] if session is not None else 0) - fed0  # type: ignore[attr-defined]
    return {"cpu_pct": round(100.0 * cpu / wall, 2), "cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
            "events_per_s": round(fed / wall, 2), "repaints_per_s": round(flushes / wall, 2),
            "loop_lag_ms": round(lag["max"] * 1000, 1)}


def in_process(run_dir: Path, seconds: float) -> list[dict]:
    rows = []
    cases = [
        ("Textual idle app (the floor)", BIG, None, "idle"),
        ("dashboard, nothing arriving", BIG, None, "dashboard"),
        ("dashboard at 1 Hz, all panes (goal)", BIG, 1.0, "dashboard"),
        ("dashboard at 1 Hz, compact", SMALL, 1.0, "dashboard"),
        ("dashboard at 10 Hz (stress)", BIG, 10.0, "dashboard"),
    ]
    for name, size, speed, kind in cases:
        session = None
        if kind == "idle":
            app: App = Idle()
        else:
            session, _ = prepared(run_dir, speed)
            app = Dashboard(session)
        row = asyncio.run(measure(app, size, seconds, session))
        rows.append({"case": name, "size": f"{size[0]}x{size[1]}", "driver": "headless",
                     "goal_pct": GOAL_PCT if "goal" in name else None, **row})
        print(f"  {name}: {row['cpu_pct']} %", file=sys.stderr)
    return rows


# --- the same dashboard in a real terminal (a child process on a pty) ------------------------------


class TimedDashboard(Dashboard):
    """The child's app: quits by itself once the parent has measured."""

    def __init__(self, session: RunSession, stop_after: float) -> None:
        super().__init__(session)
        self.stop_after = stop_after

    def on_mount(self) -> None:
        super().on_mount()
        self.set_timer(self.stop_after, self.exit)


def child(run_dir: Path, seconds: float) -> int:
    """The child side: the 1 Hz dashboard with Textual's real driver, for the warm-up + `seconds`."""
    session, _ = prepared(run_dir, 1.0)
    TimedDashboard(session, WARMUP_S + seconds + 1.0).run()
    return 0


def in_pty(run_dir: Path, seconds: float, size: tuple[int, int]) -> dict:
    import psutil

    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(size[0]), "LINES": str(size[1]),
           "PYTHONPATH": str(REPO), "TEXTUAL_ANIMATIONS": "none"}
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), "--child", str(run_dir),
                                   "--seconds", str(seconds)], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    process = psutil.Process(pid)
    written = 0

    def drain(until: float) -> None:
        nonlocal written
        while time.perf_counter() < until:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    written += len(os.read(fd, 1 << 16))
                except OSError:
                    return

    start = time.perf_counter()
    drain(start + WARMUP_S)
    times0, bytes0, wall0 = process.cpu_times(), written, time.perf_counter()
    drain(wall0 + seconds)
    times, wall = process.cpu_times(), time.perf_counter() - wall0
    cpu = (times.user + times.system) - (times0.user + times0.system)
    out_bytes = written - bytes0
    drain(time.perf_counter() + 2.0)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    os.close(fd)
    return {"case": "dashboard at 1 Hz, real terminal (pty)", "size": f"{size[0]}x{size[1]}", "driver": "linux",
            "goal_pct": GOAL_PCT, "cpu_pct": round(100.0 * cpu / wall, 2), "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 2), "events_per_s": None, "repaints_per_s": None, "loop_lag_ms": None,
            "terminal_kb_per_s": round(out_bytes / wall / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per case (default 30)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--no-pty", action="store_true", help="skip the real-terminal case")
    parser.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(Path(args.child), args.seconds)
    with tempfile.TemporaryDirectory(prefix="vlb-bench-dash-") as tmp:
        run = write_recorded_run(Path(tmp) / "run", "success", k=1.0)
        rows = in_process(run.path, args.seconds)
        if not args.no_pty:
            rows.append(in_pty(run.path, args.seconds, BIG))
    floor = rows[0]["cpu_pct"] or 0.01
    print(f"{'case':<40} {'size':>7} {'events/s':>9} {'repaints/s':>11} {'CPU % core':>11} {'loop lag':>9} "
          f"{'vs idle':>8}")
    for row in rows:
        events = "-" if row["events_per_s"] is None else f"{row['events_per_s']:.1f}"
        repaints = "-" if row["repaints_per_s"] is None else f"{row['repaints_per_s']:.2f}"
        lag = "-" if row["loop_lag_ms"] is None else f"{row['loop_lag_ms']:.0f} ms"
        verdict = "" if row["goal_pct"] is None else (" ok" if row["cpu_pct"] < row["goal_pct"] else " OVER")
        print(f"{row['case']:<40} {row['size']:>7} {events:>9} {repaints:>11} {row['cpu_pct']:>10.2f}% {lag:>9} "
              f"{row['cpu_pct'] / floor:>7.1f}x{verdict}")
    print(f"goal: under {GOAL_PCT:g} % of one core at 1 Hz with all panes; {args.seconds:g} s measured per case "
          f"after {WARMUP_S:g} s of warm-up")
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "dashboard_cpu", "unit": "percent of one core",
                                               "goal_pct": GOAL_PCT, "seconds": args.seconds, "rows": rows},
                                              indent=2))
    return 0 if all(r["cpu_pct"] < r["goal_pct"] for r in rows if r["goal_pct"]) else 1


if __name__ == "__main__":
    sys.exit(main())
