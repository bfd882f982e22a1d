"""Helpers for the dashboard's and the result screen's tests: sessions fed with a recorded run up
to a moment, an app that shows the dashboard on a session, and the screen as plain text."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.app import App

from backend.events import Event
from screens.dashboard import DashboardScreen
from screens.sessionbase import SessionScreen
from tests.recorded_runs import T0, recorded_events
from tui.session import RunEnd, RunSession


def session_at(shape: str, seconds: float | None = None, *, run_path: Path | None = None,
               events: list[Event] | None = None) -> RunSession:
    """A replay-like session (no clock of its own) holding the recorded run up to T0 + `seconds`
    (all of it when None; then it has ended as the recording did)."""
    session = RunSession(title="VM vast-lb", run_path=run_path, live=False)
    recorded = events if events is not None else recorded_events(shape)
    for event in recorded:
        if seconds is not None and event.ts > T0 + seconds:
            break
        session.apply(event)
    if seconds is None:
        state = session.state
        session.finish(RunEnd(state.exit_code or 0, state.outcome or "done", state.message))
    return session


def with_retry(session: RunSession, asked: list[dict], *, succeed: bool = True) -> RunSession:
    """Give a recorded session the rollback-and-retry a live one has: the retry records the changes
    it was asked for and plays a second attempt (rollback, remedy, install, ONLINE or failed)."""
    from backend import events as ev

    def retrier(changes: dict):  # noqa: ANN202
        async def retry(subscriber) -> int:  # noqa: ANN001
            asked.append(changes)
            t = (session.state.now or T0) + 10
            for event in [
                ev.StepStarted(ts=t, step="rollback@2", title="Roll back to pre-install (attempt 2)", group="recover"),
                ev.SnapshotRolledBack(ts=t + 5, vmid=100, name="pre-install"),
                ev.StepFinished(ts=t + 5, step="rollback@2", ok=True),
                ev.VmConfigured(ts=t + 6, vmid=100, changes={"sockets": 1, "cores": changes.get("vcpus", 12)}),
                ev.RemedyApplied(ts=t + 6, id="attempt-2", changes=changes, attempt=2),
                ev.StepStarted(ts=t + 7, step="cluster_create@2", title="Create the loopback cluster (attempt 2)",
                               group="install"),
                ev.ClusterStateChanged(ts=t + 20, state="INIT"),
                ev.ClusterStateChanged(ts=t + 29, state="ACTIVATING", previous="INIT"),
                ev.ClusterStateChanged(ts=t + 670, state="ONLINE" if succeed else "UNKNOWN", previous="ACTIVATING"),
                ev.StepFinished(ts=t + 680, step="cluster_create@2", ok=succeed, error="" if succeed else "failed again"),
                ev.RunFinished(ts=t + 680, outcome="online" if succeed else "failed", exit_code=0 if succeed else 1),
            ]:
                subscriber(event)
                await asyncio.sleep(0)
            return 0 if succeed else 1

        return retry

    session.retrier = retrier
    return session


class DashboardApp(App[int]):
    """The dashboard alone, on a given session (the wizard's app is not needed for its tests)."""

    ENABLE_COMMAND_PALETTE = False

    def __init__(self, session: RunSession, *, scenario: str | None = None, result_on_end: bool = True) -> None:
        super().__init__()
        self.session = session
        self.scenario = scenario
        self.result_on_end = result_on_end

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen(self.session, scenario=self.scenario, result_on_end=self.result_on_end))

    def finish(self, exit_code: int) -> None:
        self.exit(result=exit_code, return_code=exit_code)


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def pane_text(app: App, selector: str) -> str:
    return app.screen.query_one(selector).plain


async def settle(pilot) -> None:  # noqa: ANN001 - Pilot
    """Repaint now instead of waiting for the coalescing timer (a quarter of a second away)."""
    await pilot.pause()
    screen = pilot.app.screen
    if isinstance(screen, SessionScreen):
        screen.flush()
    await pilot.pause()
