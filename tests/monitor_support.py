"""Helpers for the monitoring agent's tests: a fake root (/proc, /sys, cgroups, /dev/kmsg, docker's
container configs) written in a tmp dir, and the agent run as a child process with its JSON lines
read by a thread. The agent runs under Python 3.6 (the guest's version) when this machine has it."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from backend.monitor import AGENT_PATH
from tests import monitor_snapshots as snap

PY36 = next((p for p in ("/root/.pyenv/versions/3.6.15/bin/python3.6", shutil.which("python3.6") or "")
             if p and os.access(p, os.X_OK)), None)
AGENT_PYTHON = PY36 or sys.executable


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rewrite(path: Path, text: str) -> None:
    """In place (same inode), as a bind-mounted fake /proc file is rewritten."""
    with open(path, "r+") as handle:
        handle.truncate(0)
        handle.write(text)


def fake_root(root: Path, *, stat: str = snap.STAT_A, diskstats: str | None = None, uptime: str = snap.UPTIME_A,
              kmsg: str | None = "", psi: bool = False) -> Path:
    proc = root / "proc"
    write(proc / "stat", stat)
    write(proc / "uptime", uptime)
    write(proc / "diskstats", diskstats if diskstats is not None else snap.diskstats(snap.DISK_A))
    write(proc / "meminfo", snap.MEMINFO)
    write(proc / "loadavg", snap.LOADAVG)
    write(proc / "vmstat", snap.VMSTAT)
    if psi:
        for name in ("cpu", "memory", "io"):
            write(proc / "pressure" / name, "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
                  + ("" if name == "cpu" else "full avg10=0.00 avg60=0.00 avg300=0.00 total=500\n"))
    for name in snap.SYS_BLOCK:
        (root / "sys" / "block" / name).mkdir(parents=True, exist_ok=True)
    if kmsg is not None:
        write(root / "dev" / "kmsg", kmsg)
    return root


class AgentProcess:
    """The agent as a child process; `line(kind)` waits for the next line of that type."""

    def __init__(self, *args: str, python: str = AGENT_PYTHON, stdout=subprocess.PIPE) -> None:
        self.argv = [python, str(AGENT_PATH), *args]
        self.process = subprocess.Popen(self.argv, stdout=stdout, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        if stdout is subprocess.PIPE:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            self.lines.put(json.loads(raw))
        self.lines.put(None)

    def line(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} line from the agent within {timeout} s; "
                                     f"seen {[x.get('type') for x in self.seen]}; stderr: {self.stderr()}")
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise AssertionError(f"the agent ended before a {kind} line; stderr: {self.stderr()}")
            self.seen.append(item)
            if item.get("type") == kind:
                return item

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            return self.process.wait(10)
        finally:
            for stream in (self.process.stdout, self.process.stderr):
                if stream:
                    stream.close()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until(deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > 0.003:
            time.sleep(left - 0.002)


def stop_for(pid: int, seconds: float) -> tuple[float, float]:
    """SIGSTOP the process, SIGCONT it `seconds` later; (start, end) as epoch seconds, each the
    midpoint of the clock reads around its kill()."""
    offset = time.time() - time.monotonic()
    a = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    start = (a + time.monotonic()) / 2
    _wait_until(start + seconds)
    c = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    return start + offset, (c + time.monotonic()) / 2 + offset


def overlapping_gap(gaps: list[dict], start: float, end: float) -> dict | None:
    """The gap line that overlaps [start, end] (epoch seconds) most."""
    best, best_overlap = None, 0.0
    for gap in gaps:
        overlap = min(gap["start"] + gap["length_ms"] / 1000, end) - max(gap["start"], start)
        if overlap > best_overlap:
            best, best_overlap = gap, overlap
    return best
