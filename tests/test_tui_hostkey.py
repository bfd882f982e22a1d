"""The guest's SSH host key in the wizard, on the lab over real SSH: a key that is neither pinned nor
in known_hosts is shown in a dialog while the engine waits; trusting it pins it for the run (the
journal keeps it for a resume), rejecting it fails the SSH step with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.events import GuestConnected, StepFinished
from backend.model.answers import Answers
from backend.run import service
from backend.run.journal import RunDir
from backend.run.plan import build_plan
from tests.tui_helpers import posted
from tests.tui_lab_helpers import end_guests, lab_without_known_hosts, require_lab, screen_name, until
from tui.app import WizardApp
from tui.messages import HostKeyAnswered
from tui.wizardstate import WizardState

pytestmark = pytest.mark.slow

SPEED = 600.0


def up_to_ssh():
    steps = build_plan()
    ids = [s.id for s in steps]
    return steps[: ids.index("guest_connect") + 1]


async def _run_to_the_question(tmp_path: Path, seen: list):
    answers = Answers.model_validate({"proxmox": {"url": "lab"}})
    app = WizardApp(WizardState(answers=answers, speed=SPEED), first_step="start", runs_root=tmp_path / "none",
                    plan=up_to_ssh, run_target_opener=lab_without_known_hosts, blink=False)
    return app, answers


async def test_an_unknown_guest_key_is_shown_and_trusting_it_pins_it(tmp_path):
    require_lab()
    seen: list = []
    app, answers = await _run_to_the_question(tmp_path, seen)
    run_dir = tmp_path / "run"
    try:
        async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
            app.launch(service.start(answers, run_dir=run_dir, speed=SPEED))
            await until(pilot, lambda: screen_name(app) == "HostKeyDialog", 90, "the host-key question")
            shown = str(app.screen.query_one("#hostkey").render())
            assert shown.startswith("SHA256:") and "centos@192.168.30.109" in str(
                app.screen.query_one("#question").render())
            await pilot.press("y")
            await until(pilot, lambda: screen_name(app) == "ResultScreen", 60, "the run's end")
            assert app.screen.session.end.exit_code == 0
            answered = posted(seen, HostKeyAnswered)
            assert [(a.fingerprint, a.trusted) for a in answered] == [(shown, True)]
    finally:
        end_guests(tmp_path)
    events = list(RunDir.open(run_dir).events())
    connected = [e for e in events if isinstance(e, GuestConnected)]
    assert [e.host_key for e in connected] == [shown]
    pinned = [e.result for e in events if isinstance(e, StepFinished) and e.step == "guest_connect"]
    assert pinned[-1]["guest_host_key"] == shown  # a resume connects to exactly this key


async def test_rejecting_the_guest_key_fails_the_ssh_step_clearly(tmp_path):
    require_lab()
    seen: list = []
    app, answers = await _run_to_the_question(tmp_path, seen)
    run_dir = tmp_path / "run"
    try:
        async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
            app.launch(service.start(answers, run_dir=run_dir, speed=SPEED))
            await until(pilot, lambda: screen_name(app) == "HostKeyDialog", 90, "the host-key question")
            shown = str(app.screen.query_one("#hostkey").render())
            await pilot.press("n")
            await until(pilot, lambda: screen_name(app) == "ResultScreen", 60, "the run's end")
            end = app.screen.session.end
            assert end.exit_code == 1 and end.outcome == "failed"
            assert end.message == (f"the host key {shown} of the guest centos@192.168.30.109 was not accepted; "
                                   "not connecting")
            # the screen is on top before it has mounted its widgets: wait for its outcome, then read it
            await until(pilot, lambda: app.screen.query_one("#outcome"), 10, "the result's outcome")
            assert "not accepted" in str(app.screen.query_one("#outcome").render())
            assert not [e for e in RunDir.open(run_dir).events() if isinstance(e, GuestConnected)]
    finally:
        end_guests(tmp_path)
