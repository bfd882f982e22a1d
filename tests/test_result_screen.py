"""The result screen: the outcome, key times counted as the report counts them, the diagnosis with
evidence and remedy, where the run directory and the report are, and its keys (rollback only
after a failure with a remedy the engine can apply, open report, back, quit with the run's code)."""

from __future__ import annotations

import dataclasses
import shutil

from backend import events as ev
from backend.analysis.deployment import analyse
from tests.dashboard_helpers import DashboardApp, pane_text, session_at, settle, with_retry
from tests.recorded_runs import recorded_events, write_recorded_run
from tests.tui_helpers import make_app, posted, small_plan, to_step
from tui.messages import ReportOpened, RollbackRequested
from tui.widgets.dashboard.pane import span
from tui.wizardstate import WizardState


async def _result(pilot) -> None:
    await settle(pilot)
    await pilot.press("enter")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await settle(pilot)


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def test_an_online_run_shows_the_key_times_the_report_counts(tmp_path):
    run = write_recorded_run(tmp_path / "run", "success")
    app = DashboardApp(session_at("success", run_path=run.path), result_on_end=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await _result(pilot)
        assert type(app.screen).__name__ == "ResultScreen"
        assert "ONLINE" in _text(app, "#outcome") and "exit 0" in _text(app, "#outcome")
        timeline = analyse(run.path)["timeline"]
        times = _text(app, "#times")
        assert f"install    {span(timeline['total_s']):>8}" in times
        assert f"activation {span(timeline['activation_s']):>8}" in times
        assert span(timeline["total_s"]) == "8:08" and span(timeline["activation_s"]) == "2:40"
        where = _text(app, "#where")
        assert str(run.path) in where and f"vast-loopback report {run.path}" in where
        assert not (run.path / "report.md").exists()  # a replay writes its report only when asked
        assert app.screen.check_action("rollback", ()) is False
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_a_failed_run_shows_the_diagnosis_with_evidence_and_its_remedy_retries(tmp_path):
    run = write_recorded_run(tmp_path / "run", "overcommit")
    seen: list = []
    asked: list[dict] = []
    session = with_retry(session_at("overcommit", run_path=run.path), asked, succeed=False)
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
        await _result(pilot)
        assert "FAILED" in _text(app, "#outcome") and "fell back to INIT" in _text(app, "#outcome")
        diagnosis = pane_text(app, "#diagnosis")
        assert diagnosis.startswith("✖ vCPU overcommit")
        assert "evidence 18:15:29 heartbeat: stall 1206 ms" in diagnosis
        assert "PANIC[P653]" in diagnosis or "config: 24 vCPUs on 12 physical cores" in diagnosis
        assert "remedy   Give the VM 12 vCPUs" in diagnosis
        assert "r rolls back to pre-install and retries with vcpus=12" in diagnosis
        assert "Activation collapsed" in diagnosis
        assert app.screen.check_action("rollback", ()) is True
        await pilot.press("r")
        await pilot.pause()
        requested = posted(seen, RollbackRequested)
        assert requested == [RollbackRequested(str(run.path), "overcommit", {"vcpus": 12})]
        await app.workers.wait_for_complete()  # the retry runs from the dashboard, in the same session
        await settle(pilot)
        assert asked == [{"vcpus": 12}] and session.attempt == 2 and session.failed
        assert type(app.screen).__name__ == "DashboardScreen"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 1


async def test_the_oom_run_names_the_ram_the_retry_gives():
    app = DashboardApp(with_retry(session_at("oom"), []), result_on_end=False)
    seen: list = []
    async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
        await _result(pilot)
        assert pane_text(app, "#diagnosis").startswith("✖ RAM too small: the OOM killer ran during ACTIVATING")
        await pilot.press("r")
        await pilot.pause()
        changes = posted(seen, RollbackRequested)[0].changes
        assert list(changes) == ["memory_gib"] and changes["memory_gib"] > 97


async def test_open_report_writes_report_md_and_shows_it(tmp_path):
    run = write_recorded_run(tmp_path / "run", "success")
    seen: list = []
    app = DashboardApp(session_at("success", run_path=run.path), result_on_end=False)
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await _result(pilot)
        await pilot.press("o")
        for _ in range(50):
            await pilot.pause(0.05)
            if type(app.screen).__name__ == "ReportScreen":
                break
        assert type(app.screen).__name__ == "ReportScreen"
        assert (run.path / "report.md").exists()
        assert posted(seen, ReportOpened)[0].path == str(run.path / "report.md")
        await pilot.press("escape")
        await pilot.pause()
        assert str(run.path / "report.md") in _text(app, "#where")


async def test_a_live_run_writes_its_report_when_it_ends(tmp_path):
    run_dir = tmp_path / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    app = make_app(WizardState(run_dir=str(run_dir)), plan=small_plan(fail_at="first_boot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "review")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert type(app.screen).__name__ == "ResultScreen"
        assert (run_dir / "report.md").exists()
        assert str(run_dir / "report.md") in _text(app, "#where")
        assert "no known failure signature matched" in pane_text(app, "#diagnosis")
        assert app.screen.check_action("rollback", ()) is False  # failed, but nothing the retry could change


def _with_reboot_test(restarted: ev.VastRestarted | None) -> list[ev.Event]:
    """The recorded success run, its last snapshot named vast-online, after a reboot test that went
    as `restarted` says (None: turned off)."""
    events: list[ev.Event] = []
    for event in recorded_events("success"):
        if isinstance(event, ev.SnapshotCreated):
            if restarted is not None:
                events.append(dataclasses.replace(restarted, ts=event.ts - 1))
            event = dataclasses.replace(event, name="vast-online")
        events.append(event)
    return events


async def test_an_online_run_says_what_restoring_vast_online_needs(tmp_path):
    passed = ev.VastRestarted(how="start_vms.sh", ok=True, cluster_state="ONLINE", online_after_s=306.0)
    for restarted, said in ((passed, "this run's reboot test took that path: ONLINE again 5:06 after the reboot"),
                            (None, "this run did not test that path (vast.reboot_test: false)")):
        app = DashboardApp(session_at("success", events=_with_reboot_test(restarted)), result_on_end=False)
        async with app.run_test(size=(110, 40)) as pilot:
            await _result(pilot)
            restore = _text(app, "#restore")
            assert app.screen.query_one("#restore").display
            assert "vast-online   taken without RAM state" in restore
            assert "roll back to vast-online, start the VM, run ./start_vms.sh on the guest" in restore
            assert said in restore


async def test_a_run_without_vast_online_says_nothing_of_restoring_it(tmp_path):
    app = DashboardApp(session_at("overcommit"), result_on_end=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await _result(pilot)
        assert not app.screen.query_one("#restore").display
