"""Attempts in a run session: a rollback to pre-install starts the next attempt once, even when the
same rollback is reported twice in its step (by the Proxmox client and by the recovery step)."""

from __future__ import annotations

from backend import events as ev
from tests.recorded_runs import T0
from tui.session import RunSession


def test_one_rollback_reported_twice_is_one_new_attempt():
    session = RunSession(live=False)
    session.apply(ev.StepStarted(ts=T0, step="rollback@2", title="Roll back", group="recover"))
    session.apply(ev.SnapshotRolledBack(ts=T0 + 1, vmid=100, name="pre-install"))
    session.apply(ev.SnapshotRolledBack(ts=T0 + 1, vmid=100, name="pre-install"))
    session.apply(ev.StepFinished(ts=T0 + 2, step="rollback@2", ok=True))
    assert session.attempt == 2
    assert [e.text for e in session.log].count("rolled back to snapshot 'pre-install'") == 1
    session.apply(ev.StepStarted(ts=T0 + 10, step="rollback@3", title="Roll back", group="recover"))
    session.apply(ev.SnapshotRolledBack(ts=T0 + 11, vmid=100, name="pre-install"))
    assert session.attempt == 3
