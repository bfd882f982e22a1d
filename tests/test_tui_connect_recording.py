"""The Connect screen takes a host recording for the built-in lab (`lab.host_profile: file:/PATH`):
"recording" in the lab host list asks for the file's path, checked as the answers check it (an
existing file, file:/ABSOLUTE/PATH through LabAnswers' own validator) with one clear line when it is
not; against the real lab, a recording of the lab's `big` cluster (anonymised by the product's own
probe, so its nodes have the recording's names) is what the Host step then shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Select

from backend.model import recording
from backend.run import probe
from screens.connect import FILE
from tests.proxmox_lab_support import lab_answers, open_lab
from tests.test_tui_reopen import loaded_problems, reopen, reopened
from tests.tui_helpers import Opener, make_app, wait_for_screen
from tests.tui_lab_helpers import require_lab, until
from tui.app import WizardApp
from tui.messages import ConnectionFailed, ConnectionTested
from tui.widgets.wizard.hosttable import HostTable
from tui.wizardstate import WizardState


async def _choose_recording(pilot, path: str) -> None:  # noqa: ANN001
    screen = pilot.app.screen
    screen.query_one("#profile", Select).value = FILE
    await pilot.pause()
    screen.query_one("#recording", Input).value = path
    await pilot.pause()


async def test_the_recording_field_shows_for_a_recording_and_a_bad_path_is_one_clear_line(tmp_path):
    opener = Opener()
    app = make_app(opener=opener)
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.screen.query_one("#recording", Input)
        assert not field.parent.display  # a built-in host: no path to give
        await _choose_recording(pilot, "")
        assert field.parent.display
        for typed, said in (("", "lab.host_profile: give the path of the recording"),
                            (str(tmp_path / "nowhere.json"), f"{tmp_path / 'nowhere.json'}: no such file"),
                            (str(tmp_path), "not a file")):
            field.value = typed
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert said in app.screen.status, app.screen.status
        (tmp_path / "sub").mkdir()
        (tmp_path / "host.json").write_text("{}")
        field.value = f"file:{tmp_path}/sub/../host.json"  # the answers' validator refuses '..'
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "file:/ABSOLUTE/PATH of a host recording" in app.screen.status
        assert opener.asked == []  # nothing was opened with a bad reference
        await pilot.click("#scheme-https")
        assert not field.parent.display


async def test_answers_naming_a_recording_open_with_it_chosen(tmp_path):
    recorded = tmp_path / "host.json"
    recorded.write_text("{}")
    answers = lab_answers("seed", lab={"host_profile": f"file:{recorded}"})
    opener = Opener()
    app = make_app(WizardState(answers=answers), opener=opener)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.screen.query_one("#profile", Select).value == FILE
        assert app.screen.query_one("#recording", Input).value == str(recorded)
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, app, "FingerprintDialog")
        assert opener.asked[0].section("lab").host_profile == f"file:{recorded}"


async def test_reopened_answers_with_a_bad_recording_path_show_it_as_written(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab}\nlab: {host_profile: 'file:host.json'}\n", Opener())
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert type(app.screen).__name__ == "ConnectScreen"
        assert app.screen.query_one("#profile", Select).value == FILE
        assert app.screen.query_one("#recording", Input).value == "host.json"
        assert "lab.host_profile" in loaded_problems(app) and "ABSOLUTE/PATH" in loaded_problems(app)


async def test_an_invalid_recording_is_the_labs_one_clear_line(tmp_path):
    require_lab()
    bad = tmp_path / "host.json"
    bad.write_text('{"format": "something else"}')
    app = WizardApp(WizardState(speed=30), first_step="connect", blink=False)  # the real probe opener
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await _choose_recording(pilot, str(bad))
        await pilot.press("ctrl+t")
        await until(pilot, lambda: any(isinstance(m, ConnectionFailed) for m in seen), 60, "the failed test")
        await pilot.pause()
        assert f"{bad}: not a vast-loopback recording" in app.screen.status
        assert app.screen.next_enabled is False


@pytest.mark.slow
async def test_a_recorded_host_is_the_labs_host_through_the_wizard(tmp_path):
    require_lab()
    answers = lab_answers("big")
    target = await open_lab(tmp_path / "recorded", "big")
    try:
        host = await probe.record_host(answers, target, anonymise=True)
    finally:
        await target.close()
    recorded = tmp_path / "big.json"
    recording.write(recorded, host)

    app = WizardApp(WizardState(speed=30), first_step="connect", blink=False)  # the real probe opener
    seen = []
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await _choose_recording(pilot, str(recorded))
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, app, "FingerprintDialog", tries=3000)
        await pilot.press("y")
        await until(pilot, lambda: any(isinstance(m, ConnectionTested) for m in seen), 120, "the connection test")
        assert app.state.answers.section("lab").host_profile == f"file:{Path(recorded)}"
        await pilot.press("ctrl+n")
        await until(pilot, lambda: type(app.screen).__name__ == "HostScreen", 30, "the Host step")
        table = app.screen.query_one(HostTable)
        assert [str(table.get_row(n)[0]) for n in ("node1", "node2", "node3")] == ["node1", "node2", "node3"]
        assert table.row_count == 3
        assert [str(c) for c in table.get_row("node1")[1:3]] == ["32", "64"]  # big's 2 x 16 cores, 64 threads
