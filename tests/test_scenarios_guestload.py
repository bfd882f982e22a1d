"""The guest's load and stalls as the lab applies them while the VAST stand-ins run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from backend.clock import Clock
from backend.lab.vast.curves import GIB
from backend.lab.vast.guestload import StallDriver, VastGuestLoad
from tests.vast_lab_helpers import FIELD_START, hardware, make_guest


def test_stalls_pause_the_running_tool_which_keeps_the_field_schedule(tmp_path):
    """The overcommit's stalls are applied to the real player process (SIGSTOP for the stall's wall
    length); the tool catches up and its log still has the field's times."""
    speed = 2000.0
    guest = make_guest(tmp_path, hardware(vcpus=24), speed=speed)
    assert guest.bootstrap().returncode == 0
    clock = Clock(speed, time.time(), FIELD_START)  # the same clock the guest reads
    guest.write_clock(speed)
    stopped = []

    def pause(lab_ms: float) -> None:
        pid = next(e["pid"] for e in reversed(guest.events()) if e.get("tool") == "cluster_create")
        os.kill(pid, signal.SIGSTOP)
        time.sleep(clock.wall_seconds(lab_ms / 1000))
        os.kill(pid, signal.SIGCONT)
        stopped.append(lab_ms)

    driver = StallDriver(guest.root, clock, pause, poll_s=0.005).start()
    try:
        result = guest.create()
    finally:
        driver.stop()
    assert result.returncode == 1  # the overcommit scenario fails as in the field
    lengths = [ms for _, ms in driver.applied]
    assert len(lengths) >= 20 and lengths[0] == 100.0 and max(lengths) >= 2000
    assert lengths == sorted(lengths) and stopped == lengths
    world = guest.world()
    activating = next(t for t, s in world.state_changes if s == "ACTIVATING")
    unknown = next(t for t, s in world.state_changes if s == "UNKNOWN")
    assert unknown - activating == pytest.approx(117, abs=0.01)  # stalls never shift the schedule


def test_no_stalls_in_the_success_scenario(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    driver = StallDriver(guest.root, Clock(1.0, time.time(), FIELD_START + 5000), lambda ms: None)
    assert driver.due(FIELD_START + 5000) == []


def test_the_guests_proc_load_follows_the_install(tmp_path):
    pytest.importorskip("backend.lab.guest.load", reason="the lab guest's load model is not in this checkout")
    from backend.lab.guest.load import LoadPoint

    def at(guest, offset: float) -> LoadPoint:
        return VastGuestLoad(guest.root).at(guest.world().tools["cluster_create"].started + offset)

    guest = make_guest(tmp_path / "success")
    assert VastGuestLoad(guest.root).at(FIELD_START) == LoadPoint()  # before bootstrap: idle
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    activation = at(guest, 250)
    assert activation.load[0] > 50 and activation.user > 40
    assert activation.mem_available < 8 * GIB
    assert set(activation.containers) >= {"vast_vms", "mcvms", "registry", "vast_platform_11.0.0.1-4100"}
    assert activation.oom_kill == 0 and activation.disks["sda"].w_s > 10000

    guest = make_guest(tmp_path / "oom", hardware(memory_gib=97))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 1
    oom = guest.scenario["times"]["oom"]
    pinned = at(guest, oom + 10)
    assert pinned.mem_available < 0.1 * GIB and pinned.oom_kill == 1
    assert at(guest, oom + 200).oom_kill == 2
