"""On resume, exactly one step checks that the VM runs, and only when no other step decides its power:
a VM stopped on purpose (controller switch, rollback) or by a power step the crash interrupted is
never started only to be stopped again (seen by killing runs at every boundary)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from backend import events as ev
from backend.run.journal import Journal, RunDir
from backend.steps.provision import power_recheck_applies

PROVISION = ["connect", "size", "ova", "create_vm", "first_boot"]


def _journal(tmp_path: Path, finished: list[str], interrupted: str | None = None) -> RunDir:
    run = RunDir.create(tmp_path / "run")
    journal = Journal(run)
    for step in finished:
        journal(ev.StepStarted(step=step, title=step, group="g"))
        journal(ev.StepFinished(step=step, ok=True))
    if interrupted:
        journal(ev.StepStarted(step=interrupted, title=interrupted, group="g"))
    journal.close()
    return run


def _applies(run: RunDir, step: str) -> bool:
    return power_recheck_applies(SimpleNamespace(run=run, current_step=step))


@pytest.mark.parametrize(("finished", "interrupted", "checking"), [
    (PROVISION, "guest_connect", ["first_boot"]),
    (PROVISION + ["guest_connect", "grow_root", "tune_stage1"], "tune_stage2", ["first_boot"]),
    (PROVISION + ["guest_connect", "grow_root", "tune_stage1", "tune_stage2"], "shutdown_for_switch", []),
    (PROVISION + ["guest_connect", "tune_stage1", "tune_stage2", "shutdown_for_switch"], "switch_controller", []),
    (PROVISION + ["guest_connect", "tune_stage1", "tune_stage2", "shutdown_for_switch", "switch_controller"],
     "second_boot", []),
    (PROVISION + ["guest_connect", "tune_stage1", "tune_stage2", "shutdown_for_switch", "switch_controller",
                  "second_boot"], "verify_after_reboot", ["second_boot"]),
    (PROVISION + ["shutdown_for_switch", "switch_controller", "second_boot", "verify_after_reboot", "wait_online"],
     "rollback@2", []),
    (PROVISION + ["shutdown_for_switch", "switch_controller", "second_boot", "rollback@2"],
     "remedy@2", []),
    (PROVISION + ["shutdown_for_switch", "switch_controller", "second_boot", "rollback@2",
                  "remedy@2", "second_boot@2"], "bootstrap@2", ["second_boot@2"]),
])
def test_one_boot_step_checks_the_vm_runs_and_only_when_it_is_meant_to(tmp_path, finished, interrupted, checking):
    run = _journal(tmp_path, finished, interrupted)
    boot_steps = [step for step in finished if step.split("@")[0] in ("first_boot", "second_boot")]
    assert [step for step in boot_steps if _applies(run, step)] == checking
