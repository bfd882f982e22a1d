"""The wizard against the real built-in lab: the Connect screen's worker starts the lab, shows its
certificate, and reads the seed host's facts through backend.clients.proxmox over HTTPS; then the sizing
screen recommends the field report's size. Skipped while the lab's Proxmox API is not there."""

from __future__ import annotations

import re

import pytest

import backend.lab  # noqa: F401  - registers the 'lab' provider, as the entry point does
from backend.errors import RunFailed
from backend.model.answers import Answers
from backend.target import TargetOptions, open_target
from tests.tui_helpers import wait_for_screen
from tui.app import WizardApp
from tui.messages import ConnectionTested
from tui.wizardstate import WizardState


@pytest.fixture
async def lab_available(tmp_path):
    try:
        target = await open_target(Answers.model_validate({"proxmox": {"url": "lab"}}), TargetOptions(speed=30, state_dir=tmp_path / "probe"))
    except RunFailed as exc:
        pytest.skip(f"the built-in lab is not available here: {exc}")
    await target.close()


async def test_connect_to_the_lab_and_size_the_seed_host(lab_available):
    app = WizardApp(WizardState(speed=30), first_step="connect", blink=False)  # the real probe opener
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, app, "FingerprintDialog", tries=2000)
        shown = str(app.screen.query_one("#fp").render()).replace("\n", ":")
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", shown)
        await pilot.press("y")
        for _ in range(2000):
            if [m for m in seen if isinstance(m, ConnectionTested)]:
                break
            await pilot.pause(0.01)
        tested = next(m for m in seen if isinstance(m, ConnectionTested))
        assert tested.fingerprint.replace(":", "") == shown.replace(":", "")
        assert tested.pve_version.startswith("9.1")
        seed = tested.inventory.nodes[0]
        assert (seed.cores, seed.threads, seed.sockets) == (12, 24, 1)
        assert app.state.answers.proxmox.fingerprint is None  # the lab pins its own certificate
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "SizingScreen"
        vcpus, memory, _ = app.screen.values()
        assert (vcpus, memory) == (12, 120)


async def test_the_wizard_shows_what_check_says_for_the_same_answers(lab_available, tmp_path, capsys):
    """The seed host's answers typed into the wizard (the real probe of the built-in lab, the
    defaults all the way to Review) show the findings `check --json` prints for those answers, the
    OVA's storage finding included: one evaluation (backend.run.service.evaluate) for both."""
    import asyncio
    import json

    from backend.model import answers as answers_mod
    from tui.cli import main
    from tui.widgets.wizard.findings import FindingsList

    app = WizardApp(WizardState(speed=30), first_step="connect", blink=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, app, "FingerprintDialog", tries=2000)
        await pilot.press("y")
        for _ in range(2000):
            if app.state.host is not None:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        for _ in ("host", "sizing", "storage_network", "guest", "review"):
            await pilot.press("ctrl+n")
            await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen", app.screen
        shown = [(f.id, f.severity, f.message) for f in app.screen.query_one(FindingsList).findings]
        saved = answers_mod.save(app.state.answers, tmp_path / "answers.yaml")
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["check", str(saved), "--json"])  # check runs its own event loop
    out = capsys.readouterr()
    assert code == 0, out.err + saved.read_text()
    checked = [(f["id"], f["severity"], f["message"]) for f in json.loads(out.out)["findings"]]
    assert shown == checked
    assert any(id_ == "host-change-storage-content" and severity == "warning" and "removes it again" in message
               for id_, severity, message in shown)
