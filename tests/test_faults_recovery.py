"""What the engine does when the lab's faults strike, part by part (regressions found by running
the success scenario under faults): the monitoring agent comes back after target seconds, a
detached job's launch survives a drop, and a VMS restart right after bootstrap is ridden through."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import json

import pytest

from backend.bus import EventBus
from backend.clock import Clock
from backend.events import GuestReconnected
from backend.lab.faults import FaultPlan, ScheduledFault
from backend.lab.guest import lab as guest_lab_mod
from backend.monitor.stream import MonitorSession, SubprocessSource
from tests.guest_lab_support import client, recording_bus
from tests.lab_fixtures import boot, hardware, open_lab


def _recorded(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_dropped_monitor_stream_comes_back_after_target_seconds_not_wall_seconds():
    """At --speed 120 a 1 s backoff in wall time was 2 lab minutes without samples after every drop."""
    source = SubprocessSource(["true"])
    lab = MonitorSession(source, EventBus(Clock.scaled(120.0)))
    assert lab.backoff_wall(0) == pytest.approx(max(0.02, 1.0 / 120))  # the stream ran, then dropped
    assert lab.backoff_wall(9) == pytest.approx(30.0 / 120)  # starts that keep failing back off further
    real = MonitorSession(source, EventBus(Clock.wall()))
    assert (real.backoff_wall(0), real.backoff_wall(2)) == (1.0, 5.0)
    assert MonitorSession(source, EventBus(Clock.scaled(10_000.0))).backoff_wall(0) == 0.02  # never a busy loop


async def test_a_detached_launch_cut_by_a_drop_is_sent_again_and_the_job_runs_once(tmp_path, monkeypatch):
    """The launch of a detached job (bootstrap, cluster create) was never re-sent after a drop: one
    dropped connection at that moment failed the whole install step."""
    monkeypatch.setattr(guest_lab_mod, "DROP_WITHIN_LAB_S", 0.0)  # cut under the launch itself
    plan = FaultPlan(schedule=[ScheduledFault("ssh_drop", path="setsid", nth=1)], record=tmp_path / "faults.jsonl")
    lab = open_lab(tmp_path / "lab", faults=plan)
    try:
        guest = boot(lab, hardware(100))
        bus = recording_bus(guest)
        ssh = await client(guest, bus)
        try:
            job = await ssh.run_detached("launch-cut", "echo ran >> /tmp/launch-cut.count; echo one; echo two")
            lines = [line async for batch, _ in ssh.follow(job, poll_s=5) for line in batch]
            assert lines == ["one", "two"]
            assert (await ssh.run("cat /tmp/launch-cut.count")).stdout == "ran\n"
            assert await ssh.job_exit_status(job) == 0
        finally:
            await ssh.close()
        assert [f["kind"] for f in _recorded(tmp_path / "faults.jsonl")] == ["ssh_drop"]
        assert any(isinstance(e, GuestReconnected) for e in bus.seen)
    finally:
        lab.shutdown()
