"""Shared by the agent benches: which Python runs the agent (the guest's 3.6 when this machine has
it), the field run's monitor set, and CPU accounting that includes every forked child (a cgroup per
measured group of processes: cgroup v2 `cpu.stat` or v1 `cpuacct.usage`, else a process-tree walk of
/proc/<pid>/stat that adds the reaped children's time)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "backend" / "monitor" / "agent.py"
PY36_CANDIDATES = ("/root/.pyenv/versions/3.6.15/bin/python3.6", "/usr/libexec/platform-python")


# The field run's monitor set, reconstructed from its logs (../shared/traces/seed-run-2025-12-29/
# monitoring/ and research/ground-truth.md: `iostat -xzt 1`, vmstat with its UTC timestamp column,
# `dmesg -T -w` for dmesg_live.log) and the list (mpstat -P ALL 1, pidstat -urd 1): the tools,
# and bash loops that fork `date` + `cat /proc/loadavg` and `date` + `ss` every second, `date` for the
# heartbeat every second, `free -h` + `grep /proc/meminfo` and the docker check every 5 s (no docker
# here: the cheap "Docker not running" branch runs, which favours the field set; no tcpdump either).
FIELD_TOOLS = (
    ("vmstat", ["vmstat", "-t", "1"]),
    ("iostat", ["iostat", "-xzt", "1"]),
    ("mpstat", ["mpstat", "-P", "ALL", "1"]),
    ("pidstat", ["pidstat", "-urd", "1"]),
    ("dmesg", ["dmesg", "-wT"]),
)
FIELD_LOOPS = r"""
D=$1
ts() { date '+%Y-%m-%d %H:%M:%S.%3N'; }
while :; do date '+%Y-%m-%d %H:%M:%S.%3N' >> "$D/heartbeat.log"; sleep 1; done &
while :; do echo "$(ts) $(cat /proc/loadavg)" >> "$D/loadavg.log"; sleep 1; done &
while :; do { echo "=== $(ts) ==="; ss -tan 'sport = :6001 or dport = :6001'; echo; } >> "$D/ss_6001.log"; sleep 1; done &
while :; do { echo "=== $(ts) ==="; free -h
  grep -E '^(MemTotal|MemFree|MemAvailable|Buffers|Cached|SwapCached|SwapTotal|SwapFree|Dirty|Writeback|AnonPages|WritebackTmp):' /proc/meminfo
  echo; } >> "$D/memory.log"; sleep 5; done &
while :; do { echo "=== $(ts) ==="
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then docker stats --no-stream; else echo "Docker not running"; fi
  echo; } >> "$D/docker_stats.log"; sleep 5; done &
wait
"""


def agent_python(choice: str | None = None) -> str:
    """The interpreter that runs the agent: --python, else a Python 3.6 (as on the guest), else ours."""
    if choice:
        return choice
    for path in PY36_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("python3.6")
    return found or sys.executable


def python_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def spawn_field_set(acct: Accounting, out: Path, notes: list[str]) -> list[str]:
    """Starts the field set, each tool in an accounting group of its own (`field-<part>`), its output
    in `out`; returns the group names (a tool that is not installed is left out, with a note)."""
    names = []
    for name, argv in FIELD_TOOLS:
        if shutil.which(argv[0]) is None:
            note = f"{argv[0]} is not installed: left out of the field set (apt-get install sysstat)"
            if note not in notes:
                notes.append(note)
            continue
        log = (out / f"{name}.log").open("w")
        acct.spawn(f"field-{name}", argv, stdout=log, stderr=log)
        log.close()
        names.append(f"field-{name}")
    acct.spawn("field-loops", ["bash", "-c", FIELD_LOOPS, "loops", str(out)])
    names.append("field-loops")
    return names


def _mounts() -> list[tuple[str, str, str]]:
    rows = []
    with open("/proc/mounts") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 4:
                rows.append((parts[1], parts[2], parts[3]))
    return rows


class Accounting:
    """Creates one accounting group per name; `spawn` starts a command inside it; `cpu_s` reads the
    group's CPU seconds (user + system, children included)."""

    def __init__(self, prefix: str = "vlb-bench", prefer_v1: bool = False) -> None:
        self.prefix = f"{prefix}-{os.getpid()}"
        self.method = "proc-tree"
        self.base: Path | None = None
        self.groups: dict[str, Path] = {}
        self.roots: dict[str, list[int]] = {}
        self.processes: list[subprocess.Popen] = []
        v2 = [Path(target) for target, fstype, _options in _mounts() if fstype == "cgroup2"]
        v1 = [Path(target) for target, fstype, options in _mounts()
              if fstype == "cgroup" and "cpuacct" in options.split(",")]
        tries = [(m, "cgroup2 cpu.stat") for m in v2] + [(m, "cgroup1 cpuacct.usage") for m in v1]
        if prefer_v1:  # the method: cgroup v1 cpuacct where it is mounted
            tries.reverse()
        for mount, method in tries:
            if self._try(mount):
                self.method = method
                break

    def _try(self, mount: Path) -> bool:
        base = mount / self.prefix
        try:
            base.mkdir()
        except OSError:
            return False
        self.base = base
        return True

    def spawn(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        procs_file = None
        if self.base is not None:
            group = self.base / name
            group.mkdir(exist_ok=True)
            self.groups[name] = group
            procs_file = str(group / "cgroup.procs")

        def enter() -> None:
            if procs_file:
                with open(procs_file, "w") as handle:
                    handle.write(str(os.getpid()))

        process = subprocess.Popen(argv, preexec_fn=enter, start_new_session=True, **kwargs)
        self.roots.setdefault(name, []).append(process.pid)
        self.processes.append(process)
        return process

    def cpu_s(self, name: str) -> float:
        group = self.groups.get(name)
        if group is not None and self.method.startswith("cgroup2"):
            for line in (group / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        if group is not None:
            return int((group / "cpuacct.usage").read_text()) / 1e9
        return sum(_tree_cpu_s(pid) for pid in self.roots.get(name, []))

    def stop_all(self, processes: list[subprocess.Popen] | None = None) -> None:
        """Ends the processes (default: every one spawned), then the groups' leftovers."""
        processes = self.processes if processes is None else processes
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for group in self.groups.values():  # leftovers (e.g. a `sleep` of a loop) before rmdir
            for _ in range(50):
                pids = (group / "cgroup.procs").read_text().split()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.05)
            with contextlib.suppress(OSError):
                group.rmdir()
        if self.base is not None:
            with contextlib.suppress(OSError):
                self.base.rmdir()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _tree_cpu_s(root: int) -> float:
    """utime + stime + cutime + cstime of `root` and its live descendants (reaped children count
    in their parent's cutime/cstime)."""
    hz = os.sysconf("SC_CLK_TCK")
    tree = _children()
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])
        todo.extend(tree.get(pid, []))
    return total / hz
