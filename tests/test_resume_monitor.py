"""A resumed run's monitoring agent goes on where the journal stopped: after the last kernel message
and log line it reported (none lost while the process was dead, none twice), and the time since its
last sample is a SamplingGapped, never an unannounced hole. After a rollback it starts afresh."""

from __future__ import annotations

import asyncio
import json
import shlex
import time

from backend import events as ev
from backend.clock import Clock
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import RunContext
from backend.run.journal import Journal, RunDir
from backend.secrets import Secret
from backend.steps.install import MONITOR, VAST_LOGS, run_monitor
from backend.steps.prepare import GUEST
from backend.target import Target

WORKERS = VAST_LOGS[0]


class _Guest:
    """The part of GuestClient the monitor uses; its agent says hello and takes one sample. The
    guest's record (read when a resumed run had a gap) is `record`."""

    def __init__(self, record: bytes = b"") -> None:
        self.commands: list[str] = []
        self.record = record

    async def run_bytes(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> bytes:
        return self.record

    async def home(self) -> str:
        return "/home/centos"

    async def upload(self, data: bytes, path: str, mode: int = 0o644) -> None:
        return None

    async def stream(self, command: str, *, sudo: bool = False):
        self.commands.append(command)
        now = time.time()
        yield json.dumps({"type": "hello", "version": "1", "t": now, "interval": 1.0})
        yield json.dumps({"type": "sample", "t": now + 1, "dt": 1.0})
        await asyncio.sleep(60)


async def _monitor(run: RunDir, guest: _Guest | None = None) -> tuple[_Guest, list[ev.Event]]:
    bus = EventBus(Clock.wall())
    journal = Journal(run)
    seen: list[ev.Event] = []
    bus.subscribe(journal)
    bus.subscribe(seen.append)
    ctx = RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), bus=bus, run=run,
                     target=Target(label="t", proxmox_url="https://x", token_id="a@b!c",
                                   token_secret=Secret("tok-en-1"), clock=Clock.wall()))
    guest = guest or _Guest()
    ctx.services[GUEST] = guest
    try:
        await run_monitor(ctx)
        for _ in range(500):
            if any(isinstance(e, ev.SampleTaken) for e in seen):
                break
            await asyncio.sleep(0.01)
    finally:
        await ctx.services[MONITOR].close()
        journal.close()
    return guest, seen


def _earlier_run(tmp_path, *extra: ev.Event) -> tuple[RunDir, float]:
    run = RunDir.create(tmp_path / "run")
    journal = Journal(run)
    last = time.time() - 300
    for event in (ev.SampleTaken(ts=last - 6, sample={"t": last - 6}), ev.SampleTaken(ts=last, sample={"t": last}),
                  ev.KernelMessageSeen(ts=last - 3, source="kmsg", text="Out of memory: Killed process 7", seq=41),
                  ev.KernelMessageSeen(ts=last - 2, source=WORKERS, text="PANIC[P653:...]", offset=5120),
                  ev.KernelMessageSeen(ts=last - 1, source="install:cluster_create", text="PANIC[P653:...]"),
                  *extra):
        journal(event)
    journal.close()
    return run, last


def _args(command: str) -> list[str]:
    return shlex.split(command.split("; then exec ", 1)[1].split("; else", 1)[0])


async def test_a_resumed_monitor_goes_on_after_what_the_journal_has(tmp_path):
    run, last = _earlier_run(tmp_path)
    guest, seen = await _monitor(run)
    args = _args(guest.commands[0])
    assert args[args.index("--kmsg-after") + 1] == "41"
    assert args[args.index("--tail-at") + 1] == f"5120:{WORKERS}"
    gap = next(e for e in seen if isinstance(e, ev.SamplingGapped))
    assert gap.start == last and gap.end > last and "not running" in gap.reason


async def test_after_a_rollback_the_monitor_starts_afresh(tmp_path):
    run, _ = _earlier_run(tmp_path, ev.SnapshotRolledBack(ts=time.time() - 100, vmid=100, name="pre-install"))
    guest, seen = await _monitor(run)
    args = _args(guest.commands[0])
    assert "--kmsg-after" not in args and "--tail-at" not in args
    assert not any(isinstance(e, ev.SamplingGapped) for e in seen)


async def test_a_resumed_monitor_goes_on_after_the_guests_record_read_at_the_resume(tmp_path):
    """What happened while the process was dead is read from the guest's record (the OOM of the gap,
    reported once, as a record line); the agent goes on after the record, not after the journal."""
    run, last = _earlier_run(tmp_path)
    record = (f"@@vlb-record boot b00d 100.0 {time.time():.3f}\n@@vlb-record vmstat\noom_kill 1\n"
              "@@vlb-record kmsg\n3,41,90000000,-;Out of memory: Killed process 7\n"
              "3,56,95000000,-;Out of memory: Killed process 8\n6,57,96000000,-;dummy0: speed is unknown\n"
              f"@@vlb-record log 9000 {WORKERS}\n").encode()
    guest, seen = await _monitor(run, _Guest(record))
    args = _args(guest.commands[0])
    assert args[args.index("--kmsg-after") + 1] == "57"
    assert args[args.index("--tail-at") + 1] == f"9000:{WORKERS}"
    lines = [(e.source, e.seq) for e in seen if isinstance(e, ev.KernelMessageSeen)]
    assert lines == [("record:kmsg", 56)]  # seq 41 was journaled before the crash
    read = next(e for e in seen if isinstance(e, ev.GuestRecordRead))
    assert read.reason == "resume" and read.oom_kills == 1 and read.new_lines == 1
