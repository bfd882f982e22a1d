"""The start screen (new run, the lab, unfinished runs to resume) and the help screen."""

from __future__ import annotations

from textual.widgets import OptionList

from backend.model.answers import Answers
from backend.run import service
from tests.tui_helpers import make_app, posted, small_plan
from tui.messages import RunLaunched


def _unfinished(root, name="lb-one"):
    answers = Answers.model_validate({"proxmox": {"url": "lab"}})
    answers.vm.name = name
    return service.start(answers, run_dir=root / f"20260101-000000-{name}").run


async def test_start_offers_new_lab_and_unfinished_runs(tmp_path):
    _unfinished(tmp_path)
    app = make_app(first_step="start", runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert "built-in lab" in labels[0] and labels[1].startswith("New run")  # Enter tries the lab
        assert labels[2].startswith("Resume 20260101-000000-lb-one")
        assert "1 unfinished run can be resumed" in str(app.screen.query_one("#runs-hint").render())


async def test_new_run_asks_for_a_proxmox_host(tmp_path):
    app = make_app(first_step="start", runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConnectScreen" and app.screen.scheme == "https"
        assert app.screen.query_one("#url").display


async def test_lab_choice_preselects_the_field_report_host(tmp_path):
    app = make_app(first_step="start", runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")  # the lab is the default choice
        await pilot.pause()
        assert app.screen.scheme == "lab" and app.state.answers.section("lab").host_profile == "seed"
        await pilot.press("escape")  # back to the start screen
        await pilot.pause()
        assert type(app.screen).__name__ == "StartScreen"


async def test_resume_continues_an_unfinished_run(tmp_path):
    run = _unfinished(tmp_path)
    app = make_app(first_step="start", runs_root=tmp_path, plan=small_plan())
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        dashboard = next(s for s in app.screen_stack if type(s).__name__ == "DashboardScreen")
        assert dashboard.session.history  # a resumed run's dashboard reads the journal first
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert posted(seen, RunLaunched)[0].resumed
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and run.read_meta().get("status") == "finished"


async def test_help_shows_the_current_step_and_closes():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        assert "Connect to Proxmox VE" in str(app.screen.query_one("#topic").render())
        await pilot.press("f1")  # F1 again does not stack a second help
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConnectScreen"


async def test_question_mark_opens_help_outside_text_fields(tmp_path):
    app = make_app(first_step="start", runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        assert "Resume" in str(app.screen.query_one("#topic").render())


async def test_a_failed_run_is_offered_and_resumes_into_its_history(tmp_path):
    from backend.model import answers as answers_mod
    from backend.run.journal import ANSWERS
    from tests.dashboard_helpers import pane_text, settle
    from tests.recorded_runs import write_recorded_run

    run = write_recorded_run(tmp_path / "20251229-181000-vast-lb", "oom")
    answers_mod.save(Answers.model_validate({"proxmox": {"url": "lab"}}), run.path / ANSWERS)
    app = make_app(first_step="start", runs_root=tmp_path, plan=small_plan())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        label = str(options.get_option_at_index(2).prompt)
        assert label.splitlines()[0] == "Resume 20251229-181000-vast-lb"
        assert "VM vast-lb on lab (seed host, speed 30) · failed at cluster_create" in label
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        dashboard = next(s for s in app.screen_stack if type(s).__name__ == "DashboardScreen")
        session = dashboard.session
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.history_events > 300 and session.samples_seen > 300  # the journal, read first
        assert session.state.steps["cluster_create"].status == "failed"  # the history's phases
        assert "connect" in session.state.steps and session.end is not None
        if type(app.screen).__name__ != "DashboardScreen":
            await pilot.press("escape")
        await settle(pilot)
        memory = pane_text(app, "#memory")
        assert "OOM" in memory and "avail" in memory, memory  # the chart from before the restart
