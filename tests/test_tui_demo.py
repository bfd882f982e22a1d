"""`vast-loopback demo` end to end on the built-in lab, as a presenter drives it (time compressed):

- success: the field report's host pre-selected, its recommendation (12 vCPUs / a 120 GiB VM) taken,
  the run reaches ONLINE and the result screen with the report;
- oom (a 100 GiB VM: its guest sees 97 GB) and overcommit (24 vCPUs on 12 cores): the sizing blocker is shown and Next stays
  off until it is overridden on purpose; the run fails with the diagnosis on screen (overcommit:
  stalls, steal and the P653 PANIC; oom: memory and the OOM killer's lines); the rollback key
  appears, retries with the diagnosed remedy and reaches ONLINE in the same session.

Lab guests are ended afterwards. (`demo --web`: tests/test_tui_webdemo.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.events import KernelMessageSeen
from backend.run.journal import RunDir
from tests.tui_lab_helpers import end_guests, guests_alive, require_lab, screen_name, until
from tui.app import Demo, WizardApp, _end_demo_guests, demo_state

pytestmark = pytest.mark.slow

SPEED = 240.0
ROOT = Path(__file__).resolve().parent.parent


def demo_app(scenario: str, run_dir: Path) -> WizardApp:
    state = demo_state(scenario, SPEED)
    state.run_dir = str(run_dir)
    return WizardApp(state, first_step="connect", demo=Demo(scenario), runs_root=run_dir.parent / "none", blink=False)


async def through_the_wizard(pilot, app: WizardApp, *, blocked: bool) -> None:  # noqa: ANN001
    assert "Demo" in str(app.screen.query_one(".demo-hint").render())
    await pilot.press("ctrl+t")
    await until(pilot, lambda: screen_name(app) == "FingerprintDialog", 60, "the lab's certificate")
    await pilot.press("y")
    await until(pilot, lambda: getattr(app.screen, "tested", False), 60, "the connection test")
    for name in ("HostScreen", "SizingScreen"):
        await pilot.press("ctrl+n")
        await until(pilot, lambda name=name: screen_name(app) == name, 10, name)
    sizing = app.screen
    if blocked:
        assert not sizing.next_enabled and "blocker" in sizing.status
        await pilot.press("ctrl+n")  # refused: the blocker stands
        await pilot.pause()
        assert screen_name(app) == "SizingScreen"
        await pilot.press("ctrl+o")
        await until(pilot, lambda: screen_name(app) == "OverrideDialog", 10, "the override dialog")
        await pilot.press("o")
        await until(pilot, lambda: screen_name(app) == "SizingScreen" and sizing.next_enabled, 10, "the override")
    else:
        assert sizing.values() == (12, 120, 1000) and sizing.next_enabled
    for name in ("StorageNetworkScreen", "GuestScreen", "ReviewScreen", "DashboardScreen"):
        await pilot.press("ctrl+n")
        await until(pilot, lambda name=name: screen_name(app) == name, 10, name)


async def shown_result(pilot, app: WizardApp) -> str:  # noqa: ANN001
    """The result screen's banner, hint and diagnosis once it has painted them."""
    await until(pilot, lambda: str(app.screen.query_one("#hint").content), 10, "the result's hint")
    return result_text(app)


def result_text(app: WizardApp) -> str:
    screen = app.screen
    return "\n".join(str(screen.query_one(selector).content) for selector in ("#outcome", "#hint")) + "\n" + \
        screen.query_one("#diagnosis").plain


async def test_demo_success_reaches_online_and_the_result(tmp_path):
    require_lab()
    run_dir = tmp_path / "run"
    app = demo_app("success", run_dir)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await through_the_wizard(pilot, app, blocked=False)
            dashboard = app.screen
            await until(pilot, lambda: dashboard.has_class("-preparing"), 60, "the guest's preparation")
            await until(pilot, lambda: screen_name(app) == "ResultScreen", 240, "the run's end")
            session = app.screen.session
            assert session.end.exit_code == 0 and session.state.cluster_state == "ONLINE"
            assert len(session.state.tuning) >= 32 and session.state.preflight  # every tuning, twice
            await until(pilot, lambda: (run_dir / "report.md").exists(), 30, "the report")
            text = await shown_result(pilot, app)
            assert "✓ ONLINE" in text and "ONLINE. The report compares this run" in text
            assert not app.screen.check_action("rollback", ())
            await pilot.press("q")
        # A finished run ends its guests (only a crash leaves them, for a resume); quitting the demo
        # finds nothing left to end.
        assert guests_alive(run_dir) == 0 and (run_dir / "report.md").exists()
        _end_demo_guests(app)  # what `vast-loopback demo` does when it quits
    finally:
        end_guests(tmp_path)


SIGNS = {
    "overcommit": ("24 vCPUs on 12 cores", ("vCPU overcommit", "Give the VM 12 vCPUs")),
    "oom": ("a 100 GiB VM, its guest 97 GB", ("Out of memory", "RAM")),
}


@pytest.mark.parametrize("scenario", ["overcommit", "oom"])
async def test_demo_failure_is_diagnosed_and_the_rollback_fixes_it(tmp_path, scenario):
    require_lab()
    run_dir = tmp_path / "run"
    app = demo_app(scenario, run_dir)
    cause, words = SIGNS[scenario]
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await through_the_wizard(pilot, app, blocked=True)
            await until(pilot, lambda: screen_name(app) == "ResultScreen", 240, "the failure")
            session = app.screen.session
            assert session.end.exit_code == 1 and session.failed
            text = await shown_result(pilot, app)
            assert "✖ FAILED" in text and f"the blocker you overrode ({cause})" in text
            assert all(word in text for word in words), text
            if scenario == "overcommit":  # what the dashboard showed coming: stalls, steal, the PANIC
                assert session.stalls_seen and session.steal_max.value and session.steal_max.value > 10
                # The P653 PANIC line is seen when the monitor reads VAST's log before the failed
                # install stops it; at this speed that race is sometimes lost (reported), so it is
                # checked where it was seen, not required.
                panics = [e for e in RunDir.open(run_dir).events() if isinstance(e, KernelMessageSeen)
                          and "PANIC" in e.text]
                assert all(e.match == "panic" for e in panics), [e.text for e in panics]
                assert any(d.get("evidence") for d in session.diagnoses.values())
            else:
                assert any(entry.level == "critical" and "Out of memory" in entry.text for entry in session.log)
                assert session.used_max.value and session.mem_total
                assert session.used_max.value > 0.9 * session.mem_total
            remedy = session.remedies[0]["changes"]
            assert remedy == ({"vcpus": 12, "memory_gib": 120} if scenario == "overcommit" else {"memory_gib": 120})
            assert app.screen.check_action("rollback", ())  # the key is offered
            assert "r retries with the fix" in text
            await pilot.press("r")
            await until(pilot, lambda: screen_name(app) == "DashboardScreen", 10, "back to the dashboard")
            await until(pilot, lambda: screen_name(app) == "ResultScreen", 240, "the retry's end")
            session = app.screen.session
            assert session.end.exit_code == 0 and session.state.cluster_state == "ONLINE"
            assert session.attempt == 2 and session.earlier  # the first attempt's diagnosis is kept
            # every event on the target clock: kernel lines are not stamped in the future (nothing is
            # "stuck" for hours), and the whole run spans what the lab simulated (about 2.5 h)
            assert not [d for d in session.diagnoses if d.startswith("stuck:")], list(session.diagnoses)
            assert session.state.now - session.state.started < 5 * 3600
            await until(pilot, lambda: "ONLINE on attempt 2" in result_text(app), 10, "the second attempt's hint")
    finally:
        end_guests(tmp_path)
