"""The dashboard driven with Pilot, fed by recorded runs: the panes show the right numbers at
80x24 and on a big terminal, a sampling gap shows as a gap, leaving and coming back keeps the
history, a burst of events costs a few repaints, and the keys do what they say (abort asks first)."""

from __future__ import annotations

import asyncio
import math

from backend import events as ev
from screens.dashboard import DashboardScreen
from tests.dashboard_helpers import DashboardApp, pane_text, screen_text, session_at, settle, with_retry
from tests.recorded_runs import T0, write_recorded_run
from tests.recorded_runs import recorded_events as generated
from tests.tui_helpers import posted
from tui.messages import AbortConfirmed, RollbackRequested, RunEnded
from tui.replay_app import ReplayApp
from tui.session import RunSession, replay_session

MID_ACTIVATION = 400  # seconds into the recorded success run: ACTIVATING, after the memory low and the 1.2 s stall


async def test_the_compact_dashboard_shows_the_essentials_with_the_right_numbers():
    app = DashboardApp(session_at("success", MID_ACTIVATION))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        memory = pane_text(app, "#memory")
        assert "113.0/117.5 GiB" in memory and "avail 4.5" in memory and "min 1.2" in memory
        assert "OOM" in memory
        assert "steal 1" in pane_text(app, "#cpu") and "max 26.7 %" in pane_text(app, "#cpu")
        gaps = pane_text(app, "#gaps")
        assert "max 1.21 s" in gaps and ">1 s 1" in gaps and ">2 s 0" in gaps and "5 gaps" in gaps
        cluster = pane_text(app, "#cluster")
        assert cluster.startswith("ACTIVATING  for 1:29")
        assert "18:15:08 INIT       0:02" in cluster and "18:15:10 ACTIVATING 1:29" in cluster
        assert "cluster_deploy RUNNING" in cluster
        timeline = pane_text(app, "#timeline")
        assert "✓ Bootstrap" in timeline and "3:41" in timeline
        assert "▶ Create the loopback cluster   1:54" in timeline
        assert "↳ 18:15:10 Cluster state:\n    ACTIVATING" in timeline
        for hidden in ("#load", "#containers", "#alerts"):
            assert not app.screen.query_one(hidden).display
        assert "MemAvailable is down to 1.5 GiB" in pane_text(app, "#alert-line")
        assert "Create the loopback cluster" in screen_text(app).splitlines()[0]


async def test_a_big_terminal_shows_every_pane():
    app = DashboardApp(session_at("success", MID_ACTIVATION))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert all(pane.display for pane in app.screen.query("#panes > *") if pane.id != "prep")
        assert not app.screen.query_one("#prep").display  # the guest's preparation is over: samples came
        assert not app.screen.query_one("#alert-line").display
        containers = pane_text(app, "#containers")
        assert "vast_platform_4200  46.9  48.3    40%" in containers and "all" in containers
        load = pane_text(app, "#load")
        assert "on 12 vCPUs" in load and "max 40.0" in load
        alerts = pane_text(app, "#alerts")
        assert "MemAvailable is down to 1.5 GiB" in alerts and "recovered: GET /api/latest/clusters/" in alerts
        gaps = pane_text(app, "#gaps")
        assert "   1s █" in gaps  # the histogram's bars, one row per bucket


async def test_the_overcommit_run_shows_its_growing_stalls_and_the_collapse():
    app = DashboardApp(session_at("overcommit"), result_on_end=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        gaps = pane_text(app, "#gaps")
        assert "max 5.00 s" in gaps and ">1 s 5" in gaps and ">2 s 3" in gaps
        assert "5.00 s" in gaps.splitlines()[1]  # the latest gaps, newest first
        cluster = pane_text(app, "#cluster")
        assert [line.split()[1] for line in cluster.splitlines()[1:4]] == ["INIT", "ACTIVATING", "UNKNOWN"]
        assert cluster.splitlines()[0].startswith("INIT") and "cluster_deploy FAILED" in cluster
        assert "on 24 vCPUs" in pane_text(app, "#load")
        assert "✖ Create the loopback cluster" in pane_text(app, "#timeline")


async def test_a_sampling_gap_is_drawn_as_a_gap():
    session = session_at("success", 140)  # 20 s without samples from T0 + 114 s
    app = DashboardApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        chart_bottom = pane_text(app, "#memory").splitlines()
        window_row = next(line for line in chart_bottom if "·" in line)
        assert "·" * 6 in window_row  # 3 s per column: the 20 s without samples stay empty, none filled in
        assert "no samples for 20 s (SSH connection lost)" in "\n".join(e.text for e in session.log)


async def test_leaving_and_coming_back_keeps_the_history():
    session = session_at("success", MID_ACTIVATION)
    app = DashboardApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        before = {pane: pane_text(app, pane) for pane in ("#memory", "#cpu", "#gaps", "#cluster")}
        await pilot.press("d")
        await settle(pilot)
        assert type(app.screen).__name__ == "DetailsScreen"
        assert "max 26.7 %" in pane_text(app, "#d-cpu")
        await pilot.press("escape")
        await settle(pilot)
        assert {pane: pane_text(app, pane) for pane in before} == before
        # a new dashboard on the same session (the app re-entering the run) shows the same history
        await app.switch_screen(DashboardScreen(session))
        await settle(pilot)
        assert {pane: pane_text(app, pane) for pane in before} == before


async def test_a_resumed_run_reads_its_journal_before_the_engine_goes_on(tmp_path):
    run = write_recorded_run(tmp_path / "run", "success")
    earlier = [e for e in generated("success") if e.ts <= T0 + MID_ACTIVATION]
    (run.path / "events.jsonl").write_text("")  # the journal of a run that stopped mid-activation
    (run.path / "samples.jsonl").write_text("")
    from backend.run.journal import Journal

    journal = Journal(run)
    for event in earlier:
        journal(event)
    journal.close()
    go_on = asyncio.Event()

    async def engine(subscriber) -> int:  # noqa: ANN001 - the resumed engine, one more sample then done
        await go_on.wait()
        subscriber(ev.RunStarted(ts=T0 + 500, run_id="r", target="lab", vm_name="vast-lb", resumed=True))
        subscriber(ev.RunFinished(ts=T0 + 501, outcome="online", exit_code=0))
        return 0

    session = RunSession(title="VM vast-lb", run_path=run.path, source=engine, history=True, live=False)
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(50):
            await pilot.pause(0.02)
            if session.history_events:
                break
        await settle(pilot)
        assert session.history_events == len(earlier)
        assert "max 26.7 %" in pane_text(app, "#cpu") and "min 1.2" in pane_text(app, "#memory")
        go_on.set()
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert session.end is not None and session.end.exit_code == 0
        assert "max 26.7 %" in pane_text(app, "#cpu")


async def test_a_burst_of_events_costs_a_few_repaints_not_one_per_event():
    session = session_at("success", 100)
    app = DashboardApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        before = screen.flushes
        for event in generated("success"):
            if T0 + 100 < event.ts <= T0 + 400:
                session.apply(event)
        await pilot.pause(0.6)
        assert 1 <= screen.flushes - before <= 3
        assert "min 1.2" in pane_text(app, "#memory")


async def test_abort_asks_first_and_only_yes_stops_the_run():
    started = asyncio.Event()

    async def forever(subscriber) -> int:  # noqa: ANN001
        subscriber(ev.RunStarted(ts=T0, run_id="r", target="lab", vm_name="vast-lb"))
        started.set()
        await asyncio.sleep(3600)
        return 0

    session = RunSession(title="VM vast-lb", source=forever, live=True)
    seen: list = []
    app = DashboardApp(session)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await asyncio.wait_for(started.wait(), 5)
        await settle(pilot)
        assert app.screen.check_action("rollback", ()) is False  # no rollback while running
        await pilot.press("a")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("n")
        await pilot.pause()
        assert session.running and not posted(seen, AbortConfirmed)
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert posted(seen, AbortConfirmed)
        assert posted(seen, RunEnded)[0].exit_code == 130
        assert type(app.screen).__name__ == "ResultScreen"
        assert "ABORTED" in str(app.screen.query_one("#outcome").render())
        assert app.screen.check_action("rollback", ()) is False
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 130


async def test_the_keys_details_log_and_rollback_after_a_diagnosed_failure():
    seen: list = []
    asked: list[dict] = []
    session = with_retry(session_at("overcommit"), asked)
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert type(app.screen).__name__ == "RunLogScreen"
        log = "\n".join(str(line.text) for line in app.screen.query_one("RichLog").lines)
        assert "PANIC[P653] vmsg_keepalive_fiber" in log and "cluster ACTIVATING -> UNKNOWN" in log
        await pilot.press("escape", "d")
        await settle(pilot)
        assert "vCPU overcommit" in pane_text(app, "#d-diagnosis")
        await pilot.press("escape", "r")
        await pilot.pause()
        requested = posted(seen, RollbackRequested)
        assert requested and requested[0].diagnosis == "overcommit" and requested[0].changes == {"vcpus": 12}
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert asked == [{"vcpus": 12}]  # the retry ran with the diagnosed remedy, in the same session
        assert session.end.exit_code == 0 and session.attempt == 2
        cluster = pane_text(app, "#cluster")
        assert cluster.startswith("ONLINE") and "FAILED" not in cluster  # attempt 1's task is gone with it
        assert session.vcpus == 12 and not session.diagnoses
        assert "no alerts" in pane_text(app, "#alert-line")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "ResultScreen"
        assert "attempt 2" in str(app.screen.query_one("#outcome").render())
        assert "attempt 1: vCPU overcommit" in pane_text(app, "#diagnosis")
        assert app.screen.check_action("rollback", ()) is False  # it worked: nothing to roll back


async def test_a_replay_cannot_roll_back():
    app = DashboardApp(session_at("overcommit"), result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.check_action("rollback", ()) is False


async def test_replay_plays_a_run_directory_into_the_dashboard_and_quits_with_its_code(tmp_path):
    run = write_recorded_run(tmp_path / "run", "overcommit")
    app = ReplayApp(replay_session(run.path, speed=math.inf))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert type(app.screen).__name__ == "ResultScreen"
        assert "vCPU overcommit" in pane_text(app, "#diagnosis")
        assert screen_text(app).splitlines()[0].startswith(" [replay] VM vast-lb")
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 1


async def test_help_explains_the_panes_and_keys():
    app = ReplayApp(session_at("success", MID_ACTIVATION))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        topic = str(app.screen.query_one("#topic").render())
        assert "OOM killer bites" in topic and "a abort" in topic
