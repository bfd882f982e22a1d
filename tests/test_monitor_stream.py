"""The jump-host monitor session: agent lines become events on the target clock, a dropped or silent
stream is restarted with the agent's resume points, and the time without samples is a
SamplingGapped (never interpolated). Streams are local processes here (the SSH path is the guest
client's `stream`; `GuestAgentSource` is exercised with a stand-in guest that runs commands locally)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from backend import events as ev
from backend.clock import Clock
from backend.monitor import AGENT_PATH, agent_source
from backend.monitor.stream import GuestAgentSource, MonitorSession, SubprocessSource
from backend.run.bus import EventBus
from tests.monitor_support import AGENT_PYTHON, fake_root

T0 = 1_767_031_933.0  # guest wall time of the scripted lines (2025-12-29 18:12:13 UTC)

SCRIPT = r"""
import json, os, sys, time
state = sys.argv[1]
run = int(open(state).read()) + 1 if os.path.exists(state) else 1
open(state, "w").write(str(run))
with open(state + ".args", "a") as handle:
    handle.write(json.dumps(sys.argv[2:]) + "\n")
T0 = float(os.environ["T0"])
def say(**line):
    sys.stdout.write(json.dumps(line) + "\n"); sys.stdout.flush()
base = T0 + (0 if run == 1 else 60)
say(type="hello", version="1", python="3.6.8", interval=1.0, tick=0.02, pid=os.getpid(), t=base,
    warnings=[{"part": "psi", "text": "no PSI"}])
for i in range(1, 4):
    say(type="sample", t=base + i, dt=1.0, cpu={"steal": 2.5}, hb={"max_ms": 1.5, "n": 50, "tick_ms": 20.0},
        gaps_hist={"50": 0}, resume={"kmsg_seq": 100 * run + i, "tail": {"/vast/log/vms.log": 1000 * run + i}})
if run == 1:
    say(type="gap", start=base + 2.5, length_ms=300.0, how="stop", err_ms=1.0)
    say(type="kmsg", t=base + 2.7, source="kmsg", text="Out of memory: Killed process 1 (vms)", match="oom",
        level="err", seq=105)
    say(type="warn", t=base + 2.8, part="load", text="cannot read /proc/loadavg")
    say(type="garbage")
    print("not json at all", flush=True)
    sys.exit(0)  # the stream drops
time.sleep(30)
"""


def scripted(tmp_path: Path, monkeypatch) -> SubprocessSource:
    script = tmp_path / "agent_stand_in.py"
    script.write_text(SCRIPT)
    monkeypatch.setenv("T0", str(T0))
    return SubprocessSource([sys.executable, str(script), str(tmp_path / "state")])


async def run_until(session: MonitorSession, predicate, timeout: float = 20.0) -> None:
    task = asyncio.create_task(session.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if task.done():
                task.result()
                raise AssertionError("the session ended")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("timed out")
            await asyncio.sleep(0.02)
    finally:
        session.stop()
        await asyncio.wait_for(task, 10)


async def test_lines_become_events_on_the_target_clock_and_a_drop_is_a_gap(tmp_path, monkeypatch):
    clock = Clock(scale=60.0, origin_wall=T0, origin_target=2_000_000_000.0)
    bus = EventBus(clock)
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    session = MonitorSession(scripted(tmp_path, monkeypatch), bus, clock, interval_s=60.0,
                             tails=["/vast/log/*.log"], backoff_s=[0.05])
    await run_until(session, lambda: session.samples >= 6)
    kinds = [type(e).__name__ for e in seen]
    assert kinds[:5] == ["MonitorStarted", "SampleTaken", "SampleTaken", "SampleTaken", "StallDetected"]
    started = seen[0]
    assert started.ts == clock.to_target(T0) and started.interval_s == 60.0 and started.tick_ms == 1200.0
    assert started.python == "3.6.8" and started.warnings == [{"part": "psi", "text": "no PSI"}]
    first = seen[1]
    assert first.sample["t"] == clock.to_target(T0 + 1) == first.ts
    assert first.sample["guest_t"] == T0 + 1 and first.sample["dt"] == 60.0
    assert first.sample["hb"] == {"max_ms": 90.0, "n": 50, "tick_ms": 1200.0} and first.sample["cpu"] == {"steal": 2.5}
    assert "resume" not in first.sample and "type" not in first.sample
    stall = seen[4]
    assert stall.start == clock.to_target(T0 + 2.5) and stall.length_ms == 18000.0
    assert (stall.how, stall.err_ms, stall.interval_ms) == ("stop", 60.0, 0.0)
    kernel = next(e for e in seen if isinstance(e, ev.KernelMessageSeen))
    assert (kernel.source, kernel.match, kernel.level) == ("kmsg", "oom", "err")
    assert kernel.ts == clock.to_target(T0 + 2.7)
    warned = next(e for e in seen if isinstance(e, ev.MonitorWarned))
    assert (warned.part, warned.text) == ("load", "cannot read /proc/loadavg")
    assert session.bad_lines == 1  # "not json at all"; the unknown type is ignored quietly
    # the stream dropped after the third sample (T0 + 3); the next agent's first sample covers
    # (T0 + 61 - 1, T0 + 61]: the gap in between is marked, nothing is interpolated
    gap = next(e for e in seen if isinstance(e, ev.SamplingGapped))
    assert (gap.start, gap.end) == (clock.to_target(T0 + 3), clock.to_target(T0 + 60))
    assert "ended" in gap.reason
    assert kinds.index("SamplingGapped") < max(i for i, k in enumerate(kinds) if k == "SampleTaken")
    # the second agent resumed where the first had reported it had read to
    args = [json.loads(line) for line in (tmp_path / "state.args").read_text().splitlines()]
    assert args[0] == ["--interval", "1", "--threshold-ms", "0.833333", "--late-threshold-ms", "50",
                       "--tail", "/vast/log/*.log"]
    assert args[1][args[1].index("--kmsg-after") + 1] == "105"
    assert args[1][args[1].index("--tail-at") + 1] == "1003:/vast/log/vms.log"


async def test_a_silent_stream_is_restarted(tmp_path):
    script = tmp_path / "silent.py"
    script.write_text("import json, sys, time\n"
                      "print(json.dumps({'type': 'hello', 'version': '1', 't': time.time()}), flush=True)\n"
                      "print(json.dumps({'type': 'sample', 't': time.time(), 'dt': 0.1}), flush=True)\n"
                      "time.sleep(60)\n")
    bus = EventBus(Clock.wall())
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    session = MonitorSession(SubprocessSource([sys.executable, str(script)]), bus, silence_s=0.5,
                             backoff_s=[0.05])
    await run_until(session, lambda: session.starts >= 2 and session.samples >= 2)
    gaps = [e for e in seen if isinstance(e, ev.SamplingGapped)]
    assert gaps and "nothing heard" in gaps[0].reason
    assert all(g.end > g.start for g in gaps)


async def test_stopping_while_the_stream_is_down_closes_the_gap(tmp_path):
    script = tmp_path / "short.py"
    script.write_text("import json, time\n"
                      "print(json.dumps({'type': 'hello', 'version': '1', 't': time.time()}), flush=True)\n"
                      "print(json.dumps({'type': 'sample', 't': time.time(), 'dt': 0.1}), flush=True)\n")
    bus = EventBus(Clock.wall())
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    session = MonitorSession(SubprocessSource([sys.executable, str(script)]), bus, backoff_s=[30.0])
    await run_until(session, lambda: session.down_since is not None)
    sample = next(e for e in seen if isinstance(e, ev.SampleTaken))
    gaps = [e for e in seen if isinstance(e, ev.SamplingGapped)]
    assert len(gaps) == 1 and gaps[0].start == sample.ts and gaps[0].end > gaps[0].start
    assert session.down_since is None


async def test_the_real_agent_killed_on_the_guest_is_started_again(tmp_path):
    root = fake_root(tmp_path)
    bus = EventBus(Clock.wall())
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    source = SubprocessSource([AGENT_PYTHON, str(AGENT_PATH), "--root", str(root)])
    session = MonitorSession(source, bus, interval_s=0.2, backoff_s=[0.1])
    task = asyncio.create_task(session.run())
    try:
        while session.samples < 3:
            await asyncio.sleep(0.02)
        for proc in Path("/proc").iterdir():  # the agent under our fake root
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if str(root).encode() in cmdline and os.getpid() != int(proc.name):
                    os.kill(int(proc.name), signal.SIGKILL)
        while session.starts < 2 or session.samples < 6:
            await asyncio.sleep(0.02)
    finally:
        session.stop()
        await asyncio.wait_for(task, 10)
    assert sum(isinstance(e, ev.MonitorStarted) for e in seen) >= 2
    gap = next(e for e in seen if isinstance(e, ev.SamplingGapped))
    samples = [e for e in seen if isinstance(e, ev.SampleTaken)]
    before = [s for s in samples if s.ts <= gap.start]
    after = [s for s in samples if s.ts > gap.start]
    assert before and after and gap.end > gap.start
    assert all(s.sample["t"] - s.sample["dt"] >= gap.end - 1e-6 for s in after)  # no sample inside the gap


class LocalGuest:
    """Stands in for backend.clients.guestssh.GuestClient (same upload/stream/home signatures), running the
    commands with the local shell: it checks the command line the session sends to the guest."""

    def __init__(self, home: Path) -> None:
        self.home_dir = home
        self.commands: list[tuple[str, bool]] = []

    async def home(self) -> str:
        return str(self.home_dir)

    async def upload(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        Path(remote_path).parent.mkdir(parents=True, exist_ok=True)
        Path(remote_path).write_bytes(data)
        os.chmod(remote_path, mode)

    async def stream(self, command: str, *, sudo: bool = False):
        self.commands.append((command, sudo))
        process = await asyncio.create_subprocess_exec("sh", "-c", command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.DEVNULL)
        try:
            async for raw in process.stdout:
                yield raw.decode().rstrip("\n")
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()


async def test_the_guest_source_uploads_the_agent_and_runs_it_with_a_python_3(tmp_path):
    root = fake_root(tmp_path / "root")
    guest = LocalGuest(tmp_path / "home with 'quotes'")
    bus = EventBus(Clock.wall())
    seen: list[ev.Event] = []
    bus.subscribe(seen.append)
    session = MonitorSession(GuestAgentSource(guest), bus, interval_s=0.2, tails=[str(tmp_path / "v $(x).log")])
    session.tail_offsets = {}
    original = session.agent_args
    session.agent_args = lambda: original() + ["--root", str(root)]  # type: ignore[method-assign]
    await run_until(session, lambda: session.samples >= 1)
    uploaded = list((tmp_path / "home with 'quotes'" / ".vast-loopback").glob("monitor-agent-*.py"))
    assert len(uploaded) == 1 and uploaded[0].read_text() == agent_source()
    command, sudo = guest.commands[0]
    assert sudo is True and "/usr/libexec/platform-python" in command and "exec python3" in command
    assert shlex.quote(str(tmp_path / "v $(x).log")) in command  # every argument quoted, never pasted
    assert isinstance(seen[0], ev.MonitorStarted) and seen[0].agent_version == "1"


@pytest.mark.parametrize("scale", [1.0, 120.0])
def test_agent_arguments_follow_the_clock(scale):
    clock = Clock(scale=scale, origin_wall=0, origin_target=0)
    session = MonitorSession(SubprocessSource(["true"]), EventBus(clock), clock, interval_s=1.0)
    args = session.agent_args()
    if scale == 1:
        assert args == ["--interval", "1"]
    else:  # 1 target s is 8 wall ms: the agent samples at its 20 Hz floor, stops count from 50 target ms
        assert args == ["--interval", "0.05", "--threshold-ms", "0.416667", "--late-threshold-ms", "50"]
