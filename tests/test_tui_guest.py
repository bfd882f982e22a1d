"""The Guest & VAST step: the guest's login (user, password or key reference, the host key to pin),
the VMS admin's password reference and the limits toggle. References only: a value typed where a
reference belongs is hidden and refused. Saved answers load back equal and replay: `vast-loopback
check` on them passes against the built-in lab."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from textual.widgets import Checkbox, Input

from backend.model import answers as answers_mod
from tests.tui_helpers import make_app, posted, to_step
from tui.messages import AnswersSaved, GuestChosen

PIN = "SHA256:" + "Mkq2l/F71ofgIefIwt/YZGoNv5yEtEOfce05zXNPZbE"
RAW_SECRET = "hunter2-not-a-reference"
ROOT = Path(__file__).resolve().parent.parent


def fill(screen, **values: str) -> None:
    for field_id, value in values.items():
        screen.query_one(f"#{field_id}", Input).value = value


async def test_guest_answers_are_written_as_references(tmp_path):
    app = make_app()
    seen: list = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "guest")
        fill(app.screen, user="vastdata", password="env:VLB_GUEST_PW", **{"host-key": PIN,
                                                                       "vms-password": "file:~/vms.pw"})
        app.screen.query_one("#limits", Checkbox).value = False
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"
        chosen = posted(seen, GuestChosen)[-1]
        assert (chosen.user, chosen.password_ref, chosen.host_key, chosen.limits) == (
            "vastdata", "env:VLB_GUEST_PW", PIN, False)
        answers = app.state.answers
        assert str(answers.guest.password) == "env:VLB_GUEST_PW" and answers.guest.key is None
        home_pw = os.path.expanduser("~/vms.pw")  # a file: reference is stored absolute
        assert str(answers.vast.admin_password) == f"file:{home_pw}" and answers.tuning.limits is False
        summary = " ".join(value for _, value in app.screen.query_one("#summary").rows)
        assert "password env:VLB_GUEST_PW" in summary and f"pinned {PIN}" in summary
        assert "limits as they are" in summary


async def test_a_value_typed_where_a_reference_belongs_is_hidden_and_refused():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "guest")
        field = app.screen.query_one("#password", Input)
        field.value = RAW_SECRET
        await pilot.pause()
        assert field.password  # shown as dots, not as the secret
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen"
        assert app.screen.status == ("guest.password: a secret must be a reference, 'env:NAME' or 'file:PATH', "
                                     "never the value itself")
        assert RAW_SECRET not in app.screen.status and app.state.answers.guest.password is None
        field.value = "env:VLB_GUEST_PW"
        await pilot.pause()
        assert not field.password


async def test_a_malformed_host_key_pin_names_the_field():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "guest")
        fill(app.screen, **{"host-key": "SHA256:short"})
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen"
        assert app.screen.status.startswith("guest.host_key: must be an OpenSSH SHA256 fingerprint")


async def test_an_unset_reference_is_noted_without_blocking(monkeypatch):
    monkeypatch.delenv("VLB_NOT_SET_ANYWHERE", raising=False)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "guest")
        fill(app.screen, password="env:VLB_NOT_SET_ANYWHERE")
        await pilot.pause()
        assert "env:VLB_NOT_SET_ANYWHERE is not set in this environment" in str(
            app.screen.query_one("#refs-note").render())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"


async def test_saved_guest_answers_load_back_equal_and_check_passes_on_the_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("VLB_GUEST_PW", "guest-password-for-the-lab")
    vms_pw = tmp_path / "vms.pw"
    vms_pw.write_text("vms-password-for-the-lab\n")
    app = make_app()
    seen: list = []
    path = tmp_path / "answers.yaml"
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "guest")
        fill(app.screen, password="env:VLB_GUEST_PW", **{"host-key": PIN, "vms-password": f"file:{vms_pw}"})
        await pilot.press("ctrl+n")
        await pilot.pause()
        app.screen.query_one("#save-path", Input).value = str(path)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert posted(seen, AnswersSaved)[-1].path == str(path)
        wizard_answers = app.state.answers
    loaded = answers_mod.load(path)
    assert loaded == wizard_answers
    text = path.read_text()
    assert "guest-password-for-the-lab" not in text and "vms-password-for-the-lab" not in text
    check = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "tui.cli", "check", str(path), "--json"],
                                    capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert check.returncode == 0, check.stderr[-2000:]
    report = json.loads(check.stdout)
    assert report["ok"] and report["recommendation"]["vcpus"] == 12


async def test_start_refuses_a_reference_that_cannot_be_read_before_a_run_directory_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("VLB_NOT_SET_ANYWHERE", raising=False)
    from tui.wizardstate import WizardState

    app = make_app(WizardState(run_dir=str(tmp_path / "run")))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "guest")
        fill(app.screen, password="env:VLB_NOT_SET_ANYWHERE")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+n")  # Start
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"
        assert app.screen.status == "guest.password: environment variable VLB_NOT_SET_ANYWHERE is not set"
    assert not (tmp_path / "run").exists()
