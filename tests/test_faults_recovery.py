"""What the engine does when the lab's faults strike, part by part (regressions found by running
the success scenario under faults): the monitoring agent comes back after target seconds, a
detached job's launch survives a drop, and a VMS restart right after bootstrap is ridden through."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import asyncio
import json

import pytest

from backend.clients.proxmox import ProxmoxClient
from backend.clock import Clock
from backend.events import GuestReconnected
from backend.lab.faults import FaultPlan, ScheduledFault
from backend.lab.guest import lab as guest_lab_mod
from backend.model import vmconfig
from backend.monitor.stream import MonitorSession, SubprocessSource
from backend.run.bus import EventBus
from tests.guest_lab_support import client, recording_bus
from tests.lab_fixtures import boot, hardware, open_lab
from tests.proxmox_lab_support import Recorder, start_world, world_target

OVA = "local:import/vast-5.4.0-loopback.ova"


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


async def test_a_real_answer_after_a_fault_is_a_recovery_even_when_it_says_not_yet(tmp_path):
    """A guest-agent ping whose retry gets the expected "not running" answer: the fault is over (the
    report listed a retry that never recovered)."""
    state = tmp_path / "lab"
    plan = FaultPlan(schedule=[ScheduledFault("pve_503", method="POST", path=r"/agent/ping$")])
    world = start_world(state, faults=plan)
    try:
        target = world_target(world)
        recorder = Recorder(target.clock)
        client = await ProxmoxClient.connect(target, recorder.bus)
        try:
            await client.add_storage_content("local", "images")
            disk = (await client.ova_metadata("pve", OVA))["disks"]["scsi0"]["volid"]
            spec = vmconfig.VmSpec(name="vast-lb", vcpus=12, memory_gib=120, storage="local-lvm", bridge="vmbr0")
            vm = await client.create_vm("pve", vmconfig.first_boot_config(spec, [disk]))
            assert await client.agent_ping(vm) is False  # stopped: the agent does not answer yet
        finally:
            await client.close()
    finally:
        world.stop()
    assert [(e.operation, e.attempt) for e in recorder.of("RetryScheduled")] == [("ping VM 100's guest agent", 1)]
    assert [(e.operation, e.attempts) for e in recorder.of("RecoveredFromFault")] == [("ping VM 100's guest agent", 2)]


async def test_ssh_retries_end_with_a_recovery_when_the_guest_is_back(tmp_path):
    """The guest's sshd refuses connections for a while (its VM restarts): the reconnection's
    RetryScheduled events are closed by a RecoveredFromFault, so the report does not list them as
    operations that never recovered."""
    lab = open_lab(tmp_path / "lab")
    try:
        guest = boot(lab, hardware(100))
        bus = recording_bus(guest)
        ssh = await client(guest, bus)
        try:
            await asyncio.to_thread(lab.power_off, guest.vmid, False)
            command = asyncio.create_task(ssh.run("echo back"))
            await asyncio.sleep(0.1)  # the command's reconnection is refused meanwhile
            await asyncio.to_thread(lab.power_on, guest.hw)
            assert (await command).stdout == "back\n"
        finally:
            await ssh.close()
        ssh_events = [e for e in bus.seen if type(e).__name__ in ("RetryScheduled", "RecoveredFromFault")]
        assert ssh_events and all(e.operation == "SSH to centos@192.168.30.109" for e in ssh_events)
        assert [type(e).__name__ for e in ssh_events][-1] == "RecoveredFromFault"
        assert ssh_events[-1].attempts == len(ssh_events)  # every refused attempt, then the one that worked
        assert any(isinstance(e, GuestReconnected) for e in bus.seen)
    finally:
        lab.shutdown()


async def test_an_upload_whose_rename_lost_its_answer_is_not_an_error(tmp_path, monkeypatch):
    """The rename of an upload ran, the connection dropped before its answer: sent again, it found
    no staged file and failed the install step (chmod: cannot access ...)."""
    monkeypatch.setattr(guest_lab_mod, "DROP_WITHIN_LAB_S", 0.0)
    plan = FaultPlan(schedule=[ScheduledFault("ssh_drop", path="mv -f", nth=1)], record=tmp_path / "faults.jsonl")
    lab = open_lab(tmp_path / "lab", faults=plan)
    try:
        guest = boot(lab, hardware(100))
        ssh = await client(guest)
        try:
            await ssh.upload(b"name: lb-vast54\n", "/tmp/loopback_conf.yml")
            assert (await ssh.run("cat /tmp/loopback_conf.yml")).stdout == "name: lb-vast54\n"
            assert (await ssh.run("ls ~/.vast-loopback | grep -c upload- || true")).stdout.strip() == "0"
        finally:
            await ssh.close()
        assert [f["kind"] for f in _recorded(tmp_path / "faults.jsonl")] == ["ssh_drop"]
    finally:
        lab.shutdown()
