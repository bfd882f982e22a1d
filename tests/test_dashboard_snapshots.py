"""Snapshots of the dashboard mid-run (success, oom, overcommit) at 80x24 and on a big terminal,
and of the result screen, from recorded runs: fixed events, no clock of their own, no cursor blink.
Update on purpose with `pytest --snapshot-update`."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.dashboard_helpers import DashboardApp, session_at, settle, with_retry
from tests.recorded_runs import write_recorded_run

RESULT_DIR = Path("/tmp/vlb-snapshot-result")  # shown on the result screen, so it must not vary


async def _settled(pilot):
    await settle(pilot)


def test_dashboard_success_mid_activation(snap_compare):
    app = DashboardApp(session_at("success", 400), scenario="success")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def test_dashboard_oom_as_the_killer_strikes(snap_compare):
    app = DashboardApp(session_at("oom", 345), scenario="oom")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def test_dashboard_overcommit_as_the_stalls_grow(snap_compare):
    app = DashboardApp(session_at("overcommit", 338), scenario="overcommit")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def test_dashboard_success_on_a_big_terminal(snap_compare):
    app = DashboardApp(session_at("success", 400))
    assert snap_compare(app, terminal_size=(160, 48), run_before=_settled)


def test_dashboard_overcommit_on_a_big_terminal(snap_compare):
    app = DashboardApp(session_at("overcommit", 338), scenario="overcommit")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled)


def _result_app(shape: str) -> DashboardApp:
    shutil.rmtree(RESULT_DIR, ignore_errors=True)
    run = write_recorded_run(RESULT_DIR, shape)
    session = with_retry(session_at(shape, run_path=run.path), [])  # as a live run: r retries
    return DashboardApp(session, scenario=shape, result_on_end=False)


async def _to_result(pilot):
    await settle(pilot)
    await pilot.press("enter")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()  # the report's analysis (key times)
    await settle(pilot)


def test_result_after_overcommit(snap_compare):
    try:
        assert snap_compare(_result_app("overcommit"), terminal_size=(80, 24), run_before=_to_result)
    finally:
        shutil.rmtree(RESULT_DIR, ignore_errors=True)


def test_result_online(snap_compare):
    try:
        assert snap_compare(_result_app("success"), terminal_size=(100, 30), run_before=_to_result)
    finally:
        shutil.rmtree(RESULT_DIR, ignore_errors=True)
