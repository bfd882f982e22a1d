"""The lab's Proxmox host killed at any instant keeps its record and its guests consistent, as the
resume tests need (tests/test_resume_sigkill.py found each of these by SIGKILL):

- a finished task is seen only once the guest did its part (a guest booted by a task the ticker
  finished was reached before it knew its VM ran: an unknown host key);
- a snapshot is recorded only once the guest's disk state is taken;
- a request is in `pve-requests.jsonl` before the change it made is saved;
- a guest still up although its VM was stopped (the lab died before telling it) is powered off
  when the lab starts again.
"""

from __future__ import annotations

import json
import threading

import pytest
from proxmoxer import ResourceException

from backend.clock import Clock
from backend.lab.profiles import PROFILES
from backend.lab.pve.pvestate import PveState
from backend.lab.pve.standin import StandInGuests
from tests.lab_pve_support import allow_images_on_local, client, create_args, start_world, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def _state(tmp_path) -> PveState:
    clock = Clock.scaled(600)
    return PveState(tmp_path / "lab", PROFILES["seed"], clock, StandInGuests(clock))


def test_a_transaction_waits_for_the_guest_hooks_of_the_one_before(tmp_path):
    state = _state(tmp_path)
    in_hook, release, order = threading.Event(), threading.Event(), []

    def slow_hook() -> None:
        in_hook.set()
        release.wait(10)
        order.append("hook")

    def first() -> None:
        with state.transaction():
            state.defer(slow_hook)

    def second() -> None:
        with state.transaction():
            order.append("second")

    one = threading.Thread(target=first)
    one.start()
    assert in_hook.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)
    assert two.is_alive(), "the next transaction ran while the guest hook of the last one was running"
    release.set()
    one.join(10)
    two.join(10)
    assert order == ["hook", "second"]


def test_the_guest_hooks_run_even_when_the_request_failed(tmp_path):
    state = _state(tmp_path)
    ran = []
    with pytest.raises(RuntimeError), state.transaction():
        state.defer(lambda: ran.append("power_on"))
        raise RuntimeError("the handler failed after a task ended")
    assert ran == ["power_on"]


class _BrokenDisk(StandInGuests):
    def snapshot(self, vmid: int, name: str) -> None:
        raise OSError("no space left on device")


def _vm(world):
    api = client(world)
    allow_images_on_local(api)
    wait_task(api, "pve", api.nodes("pve").qemu.post(**create_args(100, scsi0="local-lvm:32",
                                                                    **{"import-working-storage": None})))
    return api, api.nodes("pve").qemu(100)


def test_a_snapshot_is_recorded_only_once_the_guests_disk_is_taken(tmp_path):
    world = start_world(tmp_path / "lab", guest_factory=lambda state_dir, clock, power: _BrokenDisk(clock))
    try:
        _, vm = _vm(world)
        with pytest.raises(ResourceException) as info:
            vm.snapshot.post(snapname="pre-install")
        assert "no space left on device" in str(info.value)
        assert [s["name"] for s in vm.snapshot.get()] == ["current"]
        assert "lock" not in vm.config.get()
    finally:
        world.stop()


def test_a_request_is_logged_before_its_change_is_saved(tmp_path, monkeypatch):
    world = start_world(tmp_path / "lab")
    try:
        api, vm = _vm(world)
        state, seen = world.pve.state, []
        real_save = state._save

        def save() -> None:
            log = (tmp_path / "lab" / "pve-requests.jsonl").read_text()
            seen.append(any('"snapname": "pre-install"' in line for line in log.splitlines()))
            real_save()

        monkeypatch.setattr(state, "_save", save)
        wait_task(api, "pve", vm.snapshot.post(snapname="pre-install"))
        assert seen and all(seen)
        posts = [json.loads(line) for line in (tmp_path / "lab" / "pve-requests.jsonl").read_text().splitlines()
                 if '"snapname"' in line]
        assert [(p["method"], p["status"]) for p in posts] == [("POST", 200)]  # once, with its status
    finally:
        world.stop()


def test_a_guest_left_up_by_a_stop_the_lab_never_told_it_is_powered_off_at_restart(tmp_path):
    guests: list[StandInGuests] = []

    def factory(state_dir, clock, power):
        if not guests:
            guests.append(StandInGuests(clock, boot_s=1))
        return guests[0]  # the same guests across both lab processes, as real ones outlive them

    world = start_world(tmp_path / "lab", guest_factory=factory)
    try:
        api, vm = _vm(world)
        wait_task(api, "pve", vm.status.start.post())
    finally:
        world.stop()
    assert guests[0].boot_state(100) != "off"
    path = tmp_path / "lab" / "pve" / "state.json"
    data = json.loads(path.read_text())
    data["vms"]["100"]["status"] = "stopped"  # saved by a stop whose guest hook never ran
    path.write_text(json.dumps(data))

    world = start_world(tmp_path / "lab", guest_factory=factory)
    try:
        assert ("power_off", 100, False) in guests[0].calls
        assert guests[0].boot_state(100) == "off"
    finally:
        world.stop()
