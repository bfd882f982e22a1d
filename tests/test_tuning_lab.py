"""The tuning catalog against the lab guest over real SSH: each step's check, apply and verify on
the OVA's Rocky 8.10, idempotence, persistence across a reboot, and a run-time-only setting that a
reboot loses and the check reports as not persisted."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import pytest

from backend.clients.commands import sh
from backend.events import TuningApplied, TuningChecked
from backend.steps import tuning
from tests.guest_lab_support import client, reboot, recording_bus
from tests.lab_fixtures import fresh_guest, guest_lab, running_guest  # noqa: F401

STEPS = {step.id: step for step in tuning.catalog()}
NEEDS = {"docker-group": ["docker"], "limits:nofile": ["docker"]}  # steps that build on another
SHARED = {"thp-defrag": ["thp-enabled"]}  # one tuned profile persists both


@pytest.mark.parametrize("step_id", list(STEPS))
async def test_each_step_checks_applies_and_verifies(running_guest, step_id):
    step = STEPS[step_id]
    bus = recording_bus(running_guest)
    guest = await client(running_guest, bus)
    env = tuning.TuningEnv(guest=guest, user="centos")
    try:
        for needed in NEEDS.get(step_id, []):
            await STEPS[needed].apply(env)
        before = await step.check(env)
        if step_id in SHARED and before.good:
            pass  # the tuned profile written for its sibling already covers it (same guest)
        else:
            assert not before.good, f"the OVA should need {step_id}: {before}"
            assert await step.apply(env) is True
        after = await step.verify(env, bus)
        assert after.ok and after.persisted, after
        if not step.expected.startswith(">="):
            assert after.observed == step.expected
        assert await step.apply(env) is False  # idempotent: nothing left to change
        checked = [e for e in bus.seen if isinstance(e, TuningChecked)]
        assert [(e.id, e.ok, e.persisted, e.observed) for e in checked] == [(step_id, True, True, after.observed)]
    finally:
        await guest.close()


async def test_ensure_emits_applied_then_checked(running_guest):
    bus = recording_bus(running_guest)
    guest = await client(running_guest, bus)
    try:
        env = tuning.TuningEnv(guest=guest, user="centos")
        step = STEPS["sysctl:kernel.sched_autogroup_enabled"]
        reading = await tuning.ensure(step, env, bus)
        assert reading.good
        kinds = [type(e) for e in bus.seen if isinstance(e, TuningApplied | TuningChecked)]
        assert kinds == [TuningApplied, TuningChecked]
    finally:
        await guest.close()


async def test_a_runtime_only_setting_is_reported_not_persisted_and_lost_at_reboot(fresh_guest):
    guest = await client(fresh_guest)
    env = tuning.TuningEnv(guest=guest, user="centos")
    swappiness, thp = STEPS["sysctl:vm.swappiness"], STEPS["thp-enabled"]
    await guest.run(sh("sysctl", "-w", "vm.swappiness=1"), sudo=True, check=True)
    await guest.run(tuning.write_sysfs(f"{tuning.THP_DIR}/enabled", "never"), sudo=True, check=True)
    for step in (swappiness, thp):
        reading = await step.check(env)
        assert reading.ok and reading.persisted is False and not reading.good, reading
        assert reading.detail
    await guest.close()

    rebooted = reboot(fresh_guest)
    bus = recording_bus(rebooted)
    guest = await client(rebooted, bus)
    env = tuning.TuningEnv(guest=guest, user="centos")
    try:
        with pytest.raises(Exception, match="not in place after the reboot"):
            await tuning.verify_all([swappiness, thp], env, bus, after_reboot=True)
        checked = {e.id: e for e in bus.seen if isinstance(e, TuningChecked)}
        assert checked["sysctl:vm.swappiness"].after_reboot and not checked["sysctl:vm.swappiness"].ok
        assert checked["sysctl:vm.swappiness"].observed != "1"
        assert checked["thp-enabled"].observed == "always" and checked["thp-enabled"].persisted is False
    finally:
        await guest.close()


async def _ensure_all(steps, env):  # noqa: ANN001 - every step ensured, as the prepare steps do
    readings = {step.id: await tuning.ensure(step, env, None) for step in steps}
    tuning.failing(readings, after_reboot=False)


async def test_every_tuning_survives_the_switch_to_virtio_and_a_reboot(fresh_guest):
    steps = tuning.catalog()
    guest = await client(fresh_guest)
    env = tuning.TuningEnv(guest=guest, user="centos")
    await _ensure_all(tuning.stage(steps, 1), env)
    await guest.close()

    switched = reboot(fresh_guest, scsihw="virtio-scsi-single", disk_iothread=True)
    guest = await client(switched)
    env = tuning.TuningEnv(guest=guest, user="centos")
    assert (await STEPS["io_scheduler"].check(env)).observed == "none"  # VirtIO SCSI's default
    await _ensure_all(tuning.stage(steps, 2), env)
    await guest.close()

    rebooted = reboot(switched)
    bus = recording_bus(rebooted)
    guest = await client(rebooted, bus)
    try:
        readings = await tuning.verify_all(steps, tuning.TuningEnv(guest=guest, user="centos"), bus,
                                           after_reboot=True)
        assert all(r.good for r in readings.values())
        checked = [e for e in bus.seen if isinstance(e, TuningChecked)]
        assert {e.id for e in checked} == {s.id for s in steps}
        assert all(e.after_reboot and e.ok and e.persisted for e in checked)
        observed = {e.id: e.observed for e in checked}
        assert observed["thp-enabled"] == observed["thp-defrag"] == "never"
        assert observed["io_scheduler"] == "mq-deadline"
        assert observed["sysctl:vm.swappiness"] == "1" and observed["qemu-guest-agent"] == "active"
    finally:
        await guest.close()
