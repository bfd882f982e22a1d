"""Kill `vast-loopback` with SIGKILL at chosen points of a lab run, resume it, and read the end state.

A run is a chain of processes on one run directory: the first is `--auto ANSWERS`, every later one
`--resume RUN_DIR`. Each process is watched through the journal it writes (`events.jsonl`, and
`samples.jsonl` for the monitor's samples): when the event a kill point waits for appears, the
process gets SIGKILL at once (no sleeps guessing when a phase is reached). The lab's world lives in
`RUN_DIR/lab` and outlives every killed process, as a real Proxmox host would.

`end_state(run_dir)` reads what a test compares with an uninterrupted run: the lab's VMs and
snapshots, the requests the lab received, the VAST world inside the guest, the journal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.model.vmconfig import claimed_by

REPO = Path(__file__).resolve().parent.parent
ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"
LAB_VMS_PASSWORD = "123456"  # the OVA's documented VMS password, the lab's default (a known secret)
SEGMENT_TIMEOUT_S = 180.0  # wall seconds one process may take before the harness gives up on it
POLL_S = 0.005

Match = Callable[[dict, "Segment"], bool]


@dataclass
class KillPoint:
    """Kill the process when `match(event, segment)` is true for an event of its segment."""

    name: str
    match: Match
    step: str = ""  # the step it belongs to: passed once that step has finished


def step_started(step: str) -> KillPoint:
    return KillPoint(f"start:{step}", lambda e, s: e["type"] == "StepStarted" and e["step"] == step, step)


def step_finished(step: str) -> KillPoint:
    return KillPoint(f"finish:{step}",
                     lambda e, s: e["type"] == "StepFinished" and e["step"] == step and e.get("ok"), step)


def in_step(step: str, name: str, match: Match) -> KillPoint:
    """While `step` runs in this segment (its StepStarted seen, no StepFinished yet), the event that
    matches."""
    return KillPoint(f"mid:{step}:{name}", lambda e, s: s.running == step and match(e, s), step)


def lab_minutes_into(step: str, minutes: float) -> KillPoint:
    """`minutes` of lab time after this segment's StepStarted of `step`, while it still runs (the
    monitor's samples arrive every few lab seconds, so some event always comes)."""
    return in_step(step, f"{minutes:g}min", lambda e, s: e["ts"] >= s.step_ts + minutes * 60)


class _Tail:
    """Complete lines appended to a file since an offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def read(self) -> list[dict]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


@dataclass
class Segment:
    """One process of a chain and what the harness saw it write."""

    args: list[str]
    log: Path
    events: list[dict] = field(default_factory=list)
    running: str = ""  # the step started in this segment and not finished yet
    step_ts: float = 0.0
    killed_at: str = ""  # the kill point that ended it, or "" when it exited by itself
    exit_code: int | None = None
    wall_s: float = 0.0

    def note(self, event: dict) -> None:
        self.events.append(event)
        if event["type"] == "StepStarted":
            self.running, self.step_ts = event["step"], float(event["ts"])
        elif event["type"] == "StepFinished" and event["step"] == self.running:
            self.running = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Chain:
    """A run killed and resumed, process after process, on one run directory."""

    def __init__(self, run_dir: Path, speed: float, answers: str = ANSWERS) -> None:
        self.run_dir = Path(run_dir)
        self.speed = speed
        self.answers_path = self.run_dir.parent / f"{self.run_dir.name}-answers.yaml"
        self.answers_path.write_text(answers)
        self.segments: list[Segment] = []

    def _args(self, extra: list[str]) -> list[str]:
        if not self.segments:
            return ["--auto", str(self.answers_path), "--run-dir", str(self.run_dir), "--speed", f"{self.speed:g}",
                    *extra]
        return ["--resume", str(self.run_dir), *extra]

    def run(self, kill: KillPoint | None = None, extra: list[str] | None = None,
            env: dict[str, str] | None = None) -> Segment:
        """Start the next process and run it until `kill` matches (then SIGKILL) or it exits."""
        segment, _ = self._segment([kill] if kill else [], extra, env)
        return segment

    def run_points(self, points: list[KillPoint], extra: list[str] | None = None) -> tuple[list[str], list[str]]:
        """Kill at each point in turn, one process per kill. A point whose step ended before it could
        match (a kill meant for the start of a step of a few milliseconds, a progress line a resumed
        step does not print again) is passed, and the next point is watched in the same process.
        Returns the points killed at and the points passed."""
        killed: list[str] = []
        passed: list[str] = []
        pending = list(points)
        while pending:
            done = self.finished_steps()
            while pending and pending[0].step in done:
                passed.append(pending.pop(0).name)
            if not pending:
                break
            segment, skipped = self._segment(pending, extra)
            passed += [p.name for p in pending[:skipped]]
            if not segment.killed_at:
                raise AssertionError(f"{pending[skipped].name}: the process exited ({segment.exit_code}) before "
                                     f"this kill point:\n{self.describe()}\n{segment.output()[-3000:]}")
            killed.append(segment.killed_at)
            pending = pending[skipped + 1:]
            # The killed process's monitoring agent ends with its connection: none is orphaned.
            orphans = wait_for_no_leftovers(self.run_dir, 10.0, marks=("monitor-agent",))
            if orphans:
                raise AssertionError(f"after {segment.killed_at}, still running: {orphans}\n{self.describe()}")
        return killed, passed

    def _segment(self, points: list[KillPoint], extra: list[str] | None,
                 env: dict[str, str] | None = None) -> tuple[Segment, int]:
        args = self._args(list(extra or []))
        segment = Segment(args, self.run_dir.parent / f"{self.run_dir.name}-{len(self.segments):02d}.log")
        self.segments.append(segment)
        tails = [_Tail(self.run_dir / "events.jsonl"), _Tail(self.run_dir / "samples.jsonl")]
        started = time.monotonic()
        with segment.log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
            try:
                skipped = self._watch(proc, segment, tails, points, started)
            finally:
                if proc.poll() is None:
                    proc.kill()
                segment.exit_code = proc.wait()
        segment.wall_s = time.monotonic() - started
        return segment, skipped

    @staticmethod
    def _ended(point: KillPoint, event: dict) -> bool:
        """The event says the point's step is over (so the point can no longer match)."""
        return bool(point.step) and event.get("step") == point.step and (
            event["type"] == "StepSkipped" or (event["type"] == "StepFinished" and event.get("ok")))

    def _watch(self, proc: subprocess.Popen, segment: Segment, tails: list[_Tail], points: list[KillPoint],
               started: float) -> int:
        """Returns how many points were passed before the one killed at (or before the process ended)."""
        index = 0
        while True:
            exited = proc.poll() is not None
            for tail in tails:
                for event in tail.read():
                    segment.note(event)
                    while index < len(points):
                        point = points[index]
                        if point.match(event, segment):
                            os.kill(proc.pid, signal.SIGKILL)
                            segment.killed_at = point.name
                            return index
                        if not self._ended(point, event):
                            break
                        index += 1
            if exited:
                return index
            if time.monotonic() - started > SEGMENT_TIMEOUT_S:
                proc.kill()
                what = points[index].name if index < len(points) else "its end"
                raise AssertionError(f"{segment.args} ran for {SEGMENT_TIMEOUT_S:.0f} s without reaching "
                                     f"{what}:\n{segment.output()[-3000:]}")
            time.sleep(POLL_S)

    def finished_steps(self) -> set[str]:
        return {e["step"] for e in read_jsonl(self.run_dir / "events.jsonl")
                if e["type"] == "StepFinished" and e.get("ok")}

    def describe(self) -> str:
        return "\n".join(f"{i:02d} {s.killed_at or f'exit {s.exit_code}'} ({s.wall_s:.1f} s)"
                         for i, s in enumerate(self.segments))


# --- the end state ------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


@dataclass
class EndState:
    vms: dict  # vmid -> {"name", "config" (identity fields removed), "snapshots", "status"}
    vm_creates: int  # POST requests the lab handled (a refused one changed nothing)
    snapshot_creates: dict[str, int]  # snapshot name -> POST requests handled
    tool_starts: dict[str, int]  # VAST tool (bootstrap, cluster_create) -> runs started in the guest
    cluster_state: str
    deploy_state: str
    completed_twice: list[str]  # steps the journal finished more than once
    finished: list[str]  # steps finished, in order of their first StepFinished
    outcome: str
    report: bool


IDENTITY = ("smbios1", "vmgenid", "meta", "net0", "parent", "description")  # description: the run's claim


def end_state(run_dir: Path) -> EndState:
    run_dir = Path(run_dir)
    lab = run_dir / "lab"
    pve = json.loads((lab / "pve" / "state.json").read_text())
    run_id = json.loads((run_dir / "run.json").read_text()).get("id")
    vms = {}
    for vmid, vm in pve["vms"].items():
        config = {k: v for k, v in vm["config"].items() if k not in IDENTITY}
        vms[vmid] = {"name": vm["config"].get("name"), "config": config, "status": vm.get("status"),
                     "snapshots": sorted(vm.get("snapshots") or {}),
                     "claimed_by_the_run": claimed_by(vm["config"].get("description")) == run_id}
    requests = read_jsonl(lab / "pve-requests.jsonl")
    posts = [r for r in requests if r.get("method") == "POST" and r.get("status") == 200]  # handled ones
    creates = [r for r in posts if r["path"].rstrip("/").endswith("/qemu")]
    snapshots: dict[str, int] = {}
    for r in posts:
        if r["path"].rstrip("/").endswith("/snapshot"):
            name = str((r.get("params") or {}).get("snapname"))
            snapshots[name] = snapshots.get(name, 0) + 1
    tools: dict[str, int] = {}
    cluster_state = deploy_state = ""
    for guest in sorted((lab / "guests").glob("*/disk/var/lib/lab/vast/events.jsonl")):
        for row in read_jsonl(guest):
            if row.get("kind") == "tool" and row.get("phase") == "started":
                tools[row["tool"]] = tools.get(row["tool"], 0) + 1
            elif row.get("kind") == "cluster" and row.get("state"):
                cluster_state = row["state"]
            elif row.get("kind") == "vtask" and row.get("name") == "cluster_deploy":
                deploy_state = row.get("state", "")
    events = read_jsonl(run_dir / "events.jsonl")
    finished: list[str] = []
    twice: list[str] = []
    for e in events:
        if e["type"] == "StepFinished" and e.get("ok"):
            (twice if e["step"] in finished else finished).append(e["step"])
    meta = json.loads((run_dir / "run.json").read_text())
    return EndState(vms=vms, vm_creates=len(creates), snapshot_creates=snapshots, tool_starts=tools,
                    cluster_state=cluster_state, deploy_state=deploy_state, completed_twice=twice,
                    finished=finished, outcome=str(meta.get("outcome")), report=(run_dir / "report.md").exists())


def stop_guests(run_dir: Path) -> None:
    """End the run's lab guests (a killed run leaves them running, as a crash would)."""
    from backend.lab.shutdown import end_guests

    end_guests(Path(run_dir) / "lab")


# --- what a run left in the guest ------------------------------------------------------------------


def journaled_log(run_dir: Path, source: str) -> list[str]:
    """The install log lines of one detached job (bootstrap, cluster_create) as the journal has them."""
    return [line for e in read_jsonl(Path(run_dir) / "events.jsonl")
            if e["type"] == "InstallLogAppended" and e.get("source") == source for line in e["lines"]]


def job_log(run_dir: Path, source: str, secrets: tuple[str, ...] = (LAB_VMS_PASSWORD,)) -> list[str]:
    """The same job's log as the guest wrote it, cleaned as a person would read it, with the secrets
    a run knows redacted as the journal redacts them."""
    from backend.clients.installlog import clean_lines

    logs = sorted((Path(run_dir) / "lab" / "guests").glob(f"*/disk/home/*/.vast-loopback/jobs/{source}/log"))
    lines = [line for path in logs for line in clean_lines(path.read_bytes().decode("utf-8", "replace"))]
    for secret in secrets:
        lines = [line.replace(secret, "***") for line in lines]
    return lines


RUN_PROCESSES = ("monitor-agent", "player.py", "lab-session", "vast_bootstrap", "vman.sh")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def leftover_processes(run_dir: Path, marks: tuple[str, ...] = RUN_PROCESSES) -> list[str]:
    """Processes a finished run should not have left behind: in its guests, the monitoring agent, the
    VAST tools and SSH sessions (`marks`); on this machine, anything still entering a guest (nsenter)."""
    from backend.lab.guest.machine import LabGuest

    found = []
    for path in sorted((Path(run_dir) / "lab" / "guests").glob("*/guest.json")):
        holder = LabGuest.load_from(path.parent).holder
        if holder is None or not holder.alive():
            continue
        for pid in holder.processes():
            line = _cmdline(pid)
            if any(mark in line for mark in marks):
                found.append(f"guest {path.parent.name}: {line[:160]}")
        target = f"--target {holder.pid} "
        for name in os.listdir("/proc"):
            if name.isdigit() and target in _cmdline(int(name)):
                found.append(f"host: {_cmdline(int(name))[:160]}")
    return found


def wait_for_no_leftovers(run_dir: Path, timeout_s: float = 15.0, marks: tuple[str, ...] = RUN_PROCESSES) -> list[str]:
    """Leftover processes once the ones ending have had `timeout_s` to go (an agent ends when its
    connection closes, not at the same instant)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = leftover_processes(run_dir, marks)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
