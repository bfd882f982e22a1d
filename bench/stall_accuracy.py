"""How exactly the agent's stall detector measures stalls it did not expect.

    .venv/bin/python bench/stall_accuracy.py [--lengths 50,100,300,1000] [--repeat 1]
        [--ticks 0.02] [--modes stop,freeze-busy,freeze] [--json FILE]

Starts the agent (with the guest's Python 3.6 when this machine has it) and stalls it:
- stop:   SIGSTOP ... SIGCONT of the agent process (how the lab injects stalls; the goal: every
          one seen, its length within 10 % or 10 ms);
- freeze: the cgroup freezer (v2 cgroup.freeze, else v1 freezer.state): the process is stopped
          without any signal, like a vCPU descheduled by the host, so only the detector's tick
          lateness can see it (expected error: within the tick / 2, the err_ms of its gap line).
          The agent ticks at --tick while the guest is busy and twice as slowly once it has been
          idle for 3 samples: `freeze-busy` holds it at --tick (--idle-tick equal to it: the tick a
          busy guest gets), `freeze` runs the default as is (on a quiet machine: the idle tick).
The real length is taken between the injector's two kill()/write() calls. Prints, per stall, the
real and the seen length, how the agent measured it and the error, per tick value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agent_common import AGENT, agent_python, python_version  # noqa: E402

PHASE_S = 0.05  # the pause between stalls varies over this: more than the busy or the idle tick


class RunningAgent:
    """The agent as a child process; its JSON lines are collected by a reader thread."""

    def __init__(self, python: str, tick: float, interval: float = 0.25, busy_tick: bool = False) -> None:
        self.argv = [str(AGENT), "--tick", str(tick), "--interval", str(interval), "--kmsg", ""]
        if busy_tick:
            self.argv += ["--idle-tick", str(tick)]
        self.process = subprocess.Popen([python, *self.argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[dict] = []
        self.hello = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.hello.wait(15):
            self.stop()
            raise RuntimeError("the agent did not say hello: " + self.process.stderr.read().decode()[-500:])

    def _read(self) -> None:
        for raw in self.process.stdout:
            line = json.loads(raw)
            self.lines.append(line)
            if line.get("type") == "hello":
                self.hello.set()

    def gaps(self) -> list[dict]:
        return [line for line in self.lines if line.get("type") == "gap"]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
        self.process.wait(10)
        self.reader.join(5)


def _wait_until(deadline: float) -> None:
    """Sleep to just before `deadline`, then spin: the injector's own timing stays within ~0.1 ms."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > 0.003:
            time.sleep(left - 0.002)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def stop_for(pid: int, length_s: float) -> tuple[float, float]:
    """SIGSTOP, wait, SIGCONT; returns (start, end) on the monotonic clock."""
    a = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    start = (a + time.monotonic()) / 2
    _wait_until(start + length_s)
    c = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    return start, (c + time.monotonic()) / 2


class Freezer:
    """Freeze a process without a signal: cgroup v2 cgroup.freeze, else the v1 freezer."""

    def __init__(self, pid: int) -> None:
        self.group: Path | None = None
        self.file = ""
        self.values = ("", "")
        for root, name, values in ((Path("/sys/fs/cgroup/unified"), "cgroup.freeze", ("1", "0")),
                                   (Path("/sys/fs/cgroup"), "cgroup.freeze", ("1", "0")),
                                   (Path("/sys/fs/cgroup/freezer"), "freezer.state", ("FROZEN", "THAWED"))):
            group = root / f"vlb-bench-freeze-{os.getpid()}"
            try:
                group.mkdir()
            except OSError:
                continue
            if not (group / name).exists():
                group.rmdir()
                continue
            try:
                (group / "cgroup.procs").write_text(str(pid))
            except OSError:
                group.rmdir()
                continue
            self.group, self.file, self.values = group, name, values
            break

    @property
    def available(self) -> bool:
        return self.group is not None

    def freeze_for(self, length_s: float) -> tuple[float, float]:
        path = self.group / self.file
        a = time.monotonic()
        path.write_text(self.values[0])
        start = (a + time.monotonic()) / 2
        _wait_until(start + length_s)
        c = time.monotonic()
        path.write_text(self.values[1])
        return start, (c + time.monotonic()) / 2

    def close(self) -> None:
        if self.group is None:
            return
        parent_procs = self.group.parent / "cgroup.procs"
        try:
            for pid in (self.group / "cgroup.procs").read_text().split():
                parent_procs.write_text(pid)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.group.rmdir()


def match(gaps: list[dict], start_epoch: float, end_epoch: float) -> dict | None:
    """The gap line that overlaps the injected stall most."""
    best, best_overlap = None, 0.0
    for gap in gaps:
        g0, g1 = gap["start"], gap["start"] + gap["length_ms"] / 1000
        overlap = min(g1, end_epoch) - max(g0, start_epoch)
        if overlap > best_overlap:
            best, best_overlap = gap, overlap
    return best


def run(python: str, tick: float, mode: str, lengths_ms: list[float], repeat: int) -> list[dict]:
    agent = RunningAgent(python, tick, busy_tick=mode == "freeze-busy")
    freezer = Freezer(agent.process.pid) if mode.startswith("freeze") else None
    rows = []
    injected = []
    try:
        if freezer is not None and not freezer.available:
            return [{"mode": mode, "tick_s": tick, "skipped": "no cgroup freezer here"}]
        time.sleep(1.5)  # past the agent's first samples: it ticks as the guest's state says
        to_epoch = time.time() - time.monotonic()
        for _ in range(repeat):
            for length in lengths_ms:
                if mode == "stop":
                    start, end = stop_for(agent.process.pid, length / 1000)
                else:
                    start, end = freezer.freeze_for(length / 1000)
                injected.append((length, start, end))
                # A pause that varies over more than a tick: a fixed one would lock each stall to the
                # same phase of the detector's tick (the agent's phase restarts when a stall ends),
                # e.g. always starting just before a tick is due, where every error sits at +tick/2.
                time.sleep(0.4 + 4 * tick + random.uniform(0.0, PHASE_S))
        time.sleep(1.0)
    finally:
        if freezer is not None:
            freezer.close()
        agent.stop()
    gaps = agent.gaps()
    for length, start, end in injected:
        real_ms = (end - start) * 1000
        gap = match(gaps, start + to_epoch, end + to_epoch)
        row = {"mode": mode, "tick_s": tick, "injected_ms": length, "real_ms": round(real_ms, 2),
               "agent": "agent.py " + shlex.join(agent.argv[1:])}
        if gap is None:
            row.update(seen_ms=None, ok=False)
        else:
            error = gap["length_ms"] - real_ms
            row.update(seen_ms=gap["length_ms"], how=gap.get("how", "?"), err_bound_ms=gap.get("err_ms"),
                       error_ms=round(error, 2), error_pct=round(error / real_ms * 100, 2),
                       ok=abs(error) <= max(10.0, 0.1 * real_ms))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    header = ("mode", "tick s", "injected ms", "real ms", "seen ms", "how", "error ms", "error %", "within 10 % or 10 ms")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['mode']} | {row['tick_s']:g} | skipped: {row['skipped']}")
            continue
        if row["seen_ms"] is None:
            lines.append(f"{row['mode']} | {row['tick_s']:g} | {row['injected_ms']:g} | {row['real_ms']:.1f} | "
                         "NOT SEEN | - | - | - | no")
            continue
        lines.append(" | ".join([row["mode"], f"{row['tick_s']:g}", f"{row['injected_ms']:g}", f"{row['real_ms']:.1f}",
                                 f"{row['seen_ms']:.1f}", f"{row['how']} (+-{row['err_bound_ms']:g})",
                                 f"{row['error_ms']:+.1f}", f"{row['error_pct']:+.1f}", "yes" if row["ok"] else "no"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="50,100,300,1000", help="stall lengths in ms")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all lengths")
    parser.add_argument("--ticks", default="0.02", help="detector ticks, comma-separated")
    parser.add_argument("--modes", default="stop,freeze-busy,freeze",
                        help="stop (SIGSTOP/SIGCONT), freeze-busy (cgroup freezer, at the busy tick), freeze (as is)")
    parser.add_argument("--python", help="interpreter for the agent (default: a Python 3.6 if present)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    python = agent_python(args.python)
    lengths = [float(v) for v in args.lengths.split(",") if v.strip()]
    rows = []
    for tick in [float(t) for t in args.ticks.split(",") if t.strip()]:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            rows += run(python, tick, mode, lengths, args.repeat)
    print(f"agent on {python} ({python_version(python)})")
    print(table(rows))
    stops = [r for r in rows if r.get("mode") == "stop" and "skipped" not in r]
    if stops:
        print(f"stop: {sum(r['ok'] for r in stops)}/{len(stops)} seen within 10 % or 10 ms; worst error "
              f"{max(abs(r['error_ms']) for r in stops if r['seen_ms'] is not None):.2f} ms"
              if all(r["seen_ms"] is not None for r in stops) else "stop: some stalls were NOT seen")
    for mode in ("freeze-busy", "freeze"):
        for tick in sorted({r["tick_s"] for r in rows if r.get("mode") == mode and "skipped" not in r}):
            freezes = [r for r in rows if r.get("mode") == mode and r["tick_s"] == tick and "skipped" not in r]
            seen = [r for r in freezes if r["seen_ms"] is not None]
            bounded = [r for r in seen if abs(r["error_ms"]) <= r["err_bound_ms"] + 1.0]
            bounds = sorted({r["err_bound_ms"] for r in seen})
            print(f"{mode}, tick {tick:g} s: {len(seen)}/{len(freezes)} seen, {len(bounded)} within the reported "
                  f"+-err_ms ({'/'.join(f'{b:g}' for b in bounds)} ms)"
                  + (" (--tick 0 keeps only exact stops: other stalls are not bounded)" if tick == 0 else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "stall_accuracy", "python": python, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
