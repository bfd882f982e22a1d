"""Keys on the run's screens, consistent with the footer and the help: ^q quits like q (asking first
while the run goes on, since a quit mid-run leaves it to be resumed), and F1 shows the run's keys
rather than the wizard's."""

from __future__ import annotations

import asyncio

from backend.model.answers import Answers
from backend.run import service
from backend.run.engine import RunContext, Step
from tests.tui_helpers import make_app
from tests.tui_lab_helpers import screen_name, until
from tui.wizardstate import WizardState


async def test_ctrl_q_asks_while_the_run_goes_on_and_help_shows_the_run_keys(tmp_path):
    gate = asyncio.Event()

    async def wait(ctx: RunContext) -> dict:
        ctx.progress("waiting for the test")
        await gate.wait()
        return {}

    app = make_app(WizardState(), first_step="start", runs_root=tmp_path / "none",
                   plan=lambda: [Step("wait", "Wait for the test", "provision", wait)])
    async with app.run_test(size=(80, 24)) as pilot:
        app.launch(service.start(Answers.model_validate({"proxmox": {"url": "lab"}}), run_dir=tmp_path / "run"))
        await until(pilot, lambda: screen_name(app) == "DashboardScreen" and app.screen.session.running, 10,
                    "the running dashboard")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: screen_name(app) == "ConfirmDialog", 5, "the abort question")
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", 5, "back to the dashboard")
        assert app.is_running
        await pilot.press("f1")
        await until(pilot, lambda: screen_name(app) == "HelpScreen", 5, "the help")
        general = str(app.screen.query_one("#general").render())
        assert "Keys while a run is shown" in general and "roll back to pre-install" in general
        assert "Dashboard" in str(app.screen.query_one("#topic").render())
        await pilot.press("escape")
        gate.set()
        await until(pilot, lambda: screen_name(app) == "ResultScreen", 10, "the result")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0
