"""The lab's clock holds still while the lab does real work the real world does in a known time
(backend/lab/worldclock.py): holds cap it, compose, release without a jump, lapse on their own;
every reader (the product's clock object, a guest's tool reading the file) sees the same time; and
a new process on the same state directory continues it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.clock import Clock
from backend.lab import worldclock
from backend.lab.guest import lab as guest_lab_mod
from backend.lab.guest.lab import GuestLab
from backend.lab.probegate import ProbeGate
from backend.lab.vast import write_guest_clock
from backend.lab.world import load_clock
from backend.lab.worldclock import WorldClock
from tests.lab_fixtures import boot, hardware, open_lab, require_lab_guest

PLAYER = Path(__file__).resolve().parents[1] / "backend/lab/vast/player.py"


def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.005)


def test_a_hold_stops_lab_time_at_its_limit_and_its_release_continues_from_there():
    clock = WorldClock(1000.0, time.time(), 0.0)
    token = clock.hold(clock.now() + 50.0, "a boot")
    until(lambda: clock.held())  # 50 lab s = 50 ms: then the clock stands
    held_at = clock.now()
    assert held_at == pytest.approx(clock.snapshot()["holds"][0][0])
    time.sleep(0.2)  # 200 lab s of wall time the real work takes: not lab time
    assert clock.now() == held_at
    clock.release(token)
    assert held_at <= clock.now() < held_at + 100.0  # no jump: it runs on from where it stood
    assert clock.snapshot()["holds"] == []


def test_holds_compose_the_lowest_limit_rules_and_each_release_keeps_time_monotonic():
    clock = WorldClock(1000.0, time.time(), 0.0)
    start = clock.now()
    late = clock.hold(start + 200.0, "guest 101")
    early = clock.hold(start + 20.0, "guest 100")
    until(lambda: clock.held())
    assert clock.now() == pytest.approx(start + 20.0)
    clock.release(late)  # the other still holds
    time.sleep(0.05)
    assert clock.now() == pytest.approx(start + 20.0)
    seen = clock.now()
    clock.release(early)
    assert clock.now() >= seen
    assert not clock.held()


def test_a_hold_never_moves_time_back_and_a_forgotten_one_lapses(monkeypatch):
    clock = WorldClock(1000.0, time.time(), 0.0)
    now = clock.now()
    token = clock.hold(now - 500.0, "already past")
    assert clock.now() >= now
    clock.release(token)
    monkeypatch.setattr(worldclock, "HOLD_CAP_WALL_S", 0.1)
    clock.hold(clock.now(), "a lab bug")
    stuck = clock.now()
    time.sleep(0.15)
    assert clock.now() > stuck + 10  # no deadlock: the lab's clock runs on


def test_sleep_waits_on_the_clock_not_the_wall():
    clock = WorldClock(1000.0, time.time(), 0.0)

    async def scenario() -> float:
        start = clock.now()
        token = clock.hold(start + 10.0, "work")
        sleeper = asyncio.create_task(clock.sleep(60.0))  # 60 ms of wall at 1000x...
        await asyncio.sleep(0.2)  # ...but the world is still at its work
        assert not sleeper.done()
        clock.release(token)
        await asyncio.wait_for(sleeper, 5)
        return clock.now() - start

    assert asyncio.run(scenario()) >= 60.0


def test_samples_stamped_in_wall_time_map_to_the_lab_time_the_clock_showed_then():
    clock = WorldClock(1000.0, time.time(), 0.0)
    before = time.time()
    token = clock.hold(clock.now(), "work")
    held_at = clock.now()
    during = time.time()
    time.sleep(0.1)
    clock.release(token)
    after = time.time()
    assert clock.to_target(before) <= held_at  # before the hold: no later than where it stood
    assert clock.to_target(during) == held_at  # during it: where it stood
    # after it: running on from there, the held wall time not counted
    assert clock.to_target(after) == pytest.approx(held_at + 1000.0 * (after - clock.origin_wall))
    assert clock.origin_target == held_at


def test_the_guests_tools_read_the_same_time_from_their_clock_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    spec = importlib.util.spec_from_file_location("lab_player", PLAYER)
    player = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(player)
    clock = WorldClock(1000.0, time.time(), 1_767_033_133.0)
    clock.subscribe(lambda state: write_guest_clock(tmp_path, state))
    token = clock.hold(clock.now() + 5.0, "a boot")
    until(lambda: clock.held())
    guest_clock = player.LabClock()
    assert guest_clock.now() == clock.now()
    time.sleep(0.05)
    assert guest_clock.now() == clock.now()  # both stand
    clock.release(token)
    guest_clock.now()  # both run on from there: the same origin
    assert (guest_clock.origin_wall, guest_clock.origin_target) == (clock.origin_wall, clock.origin_target)
    assert guest_clock.holds == []


def test_a_new_process_continues_the_clock_as_its_readers_saw_it(tmp_path):
    state = tmp_path / "lab"
    first = load_clock(state, 600.0)
    first.hold(first.now() + 1.0, "a boot cut off by a SIGKILL")
    until(lambda: first.held())
    seen = first.now()
    time.sleep(0.05)
    saved = json.loads((state / "clock.json").read_text())
    assert saved["holds"]  # the file follows the clock
    second = load_clock(state, 600.0)  # the process died: its hold with it
    assert second.origin_target == seen  # it runs on from where its readers saw it stand
    assert not second.held() and json.loads((state / "clock.json").read_text())["holds"] == []
    faster = load_clock(state, 1200.0)
    assert faster.scale == 1200.0 and faster.origin_target >= second.origin_target


def test_a_plain_clock_has_nothing_to_hold():
    clock = Clock.scaled(10.0)
    assert worldclock.hold(clock, clock.now() + 1) is None
    worldclock.release(clock, None)


def test_a_pace_hold_lets_lab_time_run_at_real_time_only():
    clock = WorldClock(600.0, time.time(), 0.0)
    token = clock.hold(clock.now(), "a probe", pace=1.0)
    start, wall = clock.now(), time.time()
    time.sleep(0.3)
    later, elapsed = clock.now(), time.time() - wall
    assert later - start <= elapsed + 0.01  # the wall's pace, not 600 times it
    assert later - start >= 0.25
    clock.release(token)


PROBE = "import time; a = time.time(); time.sleep(0.5); print(a, time.time())"


@pytest.mark.parametrize("gated", [True, False])
def test_a_probe_through_the_gate_lasts_its_real_time_in_lab_time(gated):
    """While the probe runs (its own clock readings), lab time runs at the wall's pace; without the
    gate (the bad lab) at 600 times it."""
    clock = WorldClock(600.0, time.time(), 0.0)
    gate = ProbeGate(clock).start()
    try:
        prefix = gate.prefix([]) if gated else ()
        done = subprocess.run([*prefix, sys.executable, "-c", PROBE], capture_output=True, text=True,
                              timeout=60, check=True)
        until(lambda: not clock.snapshot()["holds"])
        began, ended = map(float, done.stdout.split())
        lasted = clock.to_target(ended) - clock.to_target(began)
        if gated:
            assert lasted == pytest.approx(ended - began, abs=1e-3)
        else:
            assert lasted == pytest.approx(600.0 * (ended - began))
    finally:
        gate.close()


def test_a_killed_probe_releases_the_clock():
    clock = WorldClock(600.0, time.time(), 0.0)
    gate = ProbeGate(clock).start()
    try:
        killed = subprocess.Popen([*gate.prefix([]), "sleep", "30"])
        until(lambda: bool(clock.snapshot()["holds"]))
        killed.kill()
        killed.wait()
        until(lambda: not clock.snapshot()["holds"])
    finally:
        gate.close()


@pytest.mark.lab
@pytest.mark.parametrize("holding", [True, False])
def test_a_guests_boot_takes_its_boot_delay_of_lab_time_however_slow_the_labs_work(tmp_path, monkeypatch, holding):
    """A loaded machine: the lab's work to start the guest lasts 0.5 wall s (300 lab s at x600).
    With the clock held the guest is up at its boot delay; without (the bad lab), 5 lab minutes late."""
    require_lab_guest()
    real = GuestLab._start_namespace
    spans = []

    def slow_start(self, guest):
        before = self.clock.now()
        time.sleep(0.5)
        real(self, guest)
        spans.append(self.clock.now() - before)

    monkeypatch.setattr(GuestLab, "_start_namespace", slow_start)
    if not holding:
        monkeypatch.setattr(guest_lab_mod, "hold", lambda *a, **k: None)
    lab = open_lab(tmp_path / "lab", speed=600.0)
    try:
        boot(lab, hardware(100))
        if holding:
            assert spans[0] == pytest.approx(0.0, abs=1e-6)  # the clock stood still meanwhile...
            # ...and runs on once the guest is up: its boot's hold ends as the boot's work does, just
            # after the guest is seen up (a moment that a busy machine stretches)
            until(lambda: lab.clock.snapshot()["holds"] == [])
        else:
            assert spans[0] >= 0.5 * 600.0  # the bad lab: the work cost 5 lab minutes
    finally:
        lab.shutdown()
