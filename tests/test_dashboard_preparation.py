"""The guest's preparation on the dashboard, fed by recorded events: while the guest is tuned,
rebooted and checked (no samples yet), the tuning read back and the preflight's verdict take the
place of the empty memory and CPU panes; the first sample gives them back. The details screen (d)
shows both as full tables: id, expected, observed, ok, after reboot; the preflight's failures first."""

from __future__ import annotations

from backend import events as ev
from tests.dashboard_helpers import DashboardApp, pane_text, settle
from tests.recorded_prep import TUNINGS, plan, preparation_events
from tests.recorded_runs import T0
from tui.session import RunSession


def prep_session(**kwargs) -> RunSession:
    session = RunSession(title="VM vast-lb", live=False, planned=plan)
    for event in preparation_events(**kwargs):
        session.apply(event)
    return session


def visible(app, selector: str) -> bool:
    return app.screen.query_one(selector).display


async def test_tuning_shows_in_place_of_memory_and_cpu_while_the_guest_is_prepared():
    session = prep_session(until="tune_stage2")
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert visible(app, "#prep") and not visible(app, "#memory") and not visible(app, "#cpu")
        text = pane_text(app, "#prep")
        assert "tuning 16/16 ok · reboot pending" in text
        assert "… " in text and "more (d shows every one)" in text  # 16 rows do not fit at 80x24
        assert "nofile" in text  # the latest checked stays in view
        session.apply(ev.SampleTaken(ts=T0 + 600, sample={"t": T0 + 600, "mem": {"total": 120 * 2**30,
                                                                                  "available": 110 * 2**30}}))
        await settle(pilot)
        assert not visible(app, "#prep") and visible(app, "#memory") and visible(app, "#cpu")


async def test_a_tuning_lost_across_the_reboot_and_a_failed_preflight_come_first():
    session = prep_session(lost=("io_scheduler",), failing={"cpus_guest": "24", "bundle_tarball": "missing"})
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        lines = pane_text(app, "#prep").splitlines()
        assert lines[0] == "preflight 13/15 · 1 blocker failed"
        assert lines[1] == "✖ VAST release tarball" and lines[2].startswith("  missing (want /vast/bundles/")
        assert lines[3] == "! CPUs the guest sees  24 (want 12)"
        assert lines[4] == "tuning 16/16 ok · after reboot 15/16"
        assert lines[5].startswith("… ")  # the rest does not fit; the lost one comes first
        assert lines[6].split() == ["✖", "io_scheduler", "none", "↻✖"]


async def test_details_show_the_tuning_and_preflight_tables_in_full():
    session = prep_session(lost=("io_scheduler",), failing={"bundle_tarball": "missing"})
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        tuning = pane_text(app, "#d-tuning").splitlines()
        assert tuning[0] == "16/16 ok · after reboot 15/16"
        assert tuning[1].split() == ["id", "expected", "observed", "after", "reboot"]
        rows = {line.split()[1]: line for line in tuning[2:]}
        assert set(rows) == {tuning_id for tuning_id, _, _ in TUNINGS}
        assert rows["thp-enabled"].split() == ["✓", "thp-enabled", "never", "never", "✓", "never"]
        assert rows["io_scheduler"].split() == ["✓", "io_scheduler", "mq-deadline", "mq-deadline", "✖", "none"]
        preflight = pane_text(app, "#d-preflight").splitlines()
        assert preflight[0] == "14/15 passed · 1 blocker failed"
        assert preflight[1].split() == ["check", "observed"]
        assert preflight[2].startswith("✖ VAST release tarball")
        assert "blocker: missing (want" in preflight[2]
        assert preflight[3].strip() == "/vast/bundles/vastdata_release_2043819.vast.tar.gz)"
        assert all(line.startswith("✓") for line in preflight[4:])


async def test_before_any_tuning_the_pane_says_what_comes():
    session = prep_session(until="guest_connect")
    session.apply(ev.StepStarted(ts=T0 + 30, step="tune_stage1", title="Guest agent", group="prepare"))
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert visible(app, "#prep")
        assert pane_text(app, "#prep").splitlines() == ["no tuning yet", "(each is read back from the guest)"]


# --- snapshots (update on purpose with `pytest --snapshot-update`) -----------------------------------


async def _settled(pilot):
    await settle(pilot)


def test_snapshot_preparation_with_a_lost_tuning_and_a_failed_check(snap_compare):
    session = prep_session(lost=("io_scheduler",), failing={"bundle_tarball": "missing"})
    assert snap_compare(DashboardApp(session, result_on_end=False), terminal_size=(80, 24), run_before=_settled)


def test_snapshot_preparation_on_a_big_terminal(snap_compare):
    session = prep_session(until="verify_after_reboot")
    assert snap_compare(DashboardApp(session, result_on_end=False), terminal_size=(130, 36), run_before=_settled)


def test_snapshot_details_tuning_and_preflight_tables(snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        pilot.app.screen.query_one("#d-tuning").scroll_visible(top=True, animate=False)
        await pilot.pause()

    session = prep_session(lost=("io_scheduler",), failing={"bundle_tarball": "missing"})
    assert snap_compare(DashboardApp(session, result_on_end=False), terminal_size=(120, 48), run_before=run_before)


async def test_the_result_lists_the_preflight_checks_that_stopped_the_run():
    from tui.session import RunEnd

    message = "preflight: 1 blocker failed: VAST release tarball (missing)"
    events = preparation_events(failing={"bundle_tarball": "missing", "cpus_guest": "24"}, until="preflight")
    last = events.pop()  # the preflight step: it failed
    events += [ev.StepFinished(ts=last.ts, step="preflight", ok=False, error=message),
               ev.RunFinished(ts=last.ts, outcome="failed", exit_code=1, message=message)]
    session = RunSession(title="VM vast-lb", live=False, planned=plan)
    for event in events:
        session.apply(event)
    session.finish(RunEnd(1, "failed", message))
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "ResultScreen"
        pane = app.screen.query_one("#preflight")
        assert pane.display
        lines = pane.plain.splitlines()
        assert lines[0] == "13/15 passed · 1 blocker failed"
        assert lines[1] == "✖ VAST release tarball" and "missing (want /vast/bundles/" in lines[2]
        assert lines[3].startswith("! CPUs the guest sees")
        assert "the preflight stopped the run before the install" in pane_text(app, "#diagnosis")


async def test_the_result_of_a_run_past_its_preflight_shows_no_checks():
    from tests.dashboard_helpers import session_at

    app = DashboardApp(session_at("success"), result_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert not app.screen.query_one("#preflight").display
