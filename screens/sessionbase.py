"""What every screen that shows a run session shares: it listens to the session and repaints its
panes at most a few times a second, however fast events come (coalesced with a one-shot timer that
is re-armed only when something changed), and not at all while another screen covers it.

While a live run is going, a one-second tick keeps durations moving between events (the target's
clock goes on); a replay and a finished run only move with their events.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer

from tui.messages import AbortConfirmed, RollbackRequested, RunEnded
from tui.session import RunSession
from tui.widgets.dashboard.confirm import ConfirmDialog
from tui.widgets.dashboard.pane import Pane

REFRESH_S = 0.25  # at most four repaints a second
TICK_S = 1.0  # a live clock moves between events


class SessionScreen(Screen):
    BINDINGS = [Binding("ctrl+q", "quit_run", "Quit", show=False, id="quit")]  # as q: asks first while the run goes on

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.session = session
        self._stop_listening = None
        self._timer: Timer | None = None
        self._timer_is_tick = False
        self.flushes = 0  # how often the panes were synced (the bench reads it)
        self._bindings_key: tuple | None = None

    def on_mount(self) -> None:
        self._stop_listening = self.session.listen(self._session_changed)
        self.call_after_refresh(self.flush)

    def on_unmount(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        self._cancel_timer()

    def on_screen_resume(self) -> None:
        self.flush()

    def _session_changed(self, what: str) -> None:
        if what == "ended":
            self.session_ended()
        self._schedule(REFRESH_S)

    def session_ended(self) -> None:
        """Called once when the session's source ended (after its last events)."""

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _schedule(self, delay: float, tick: bool = False) -> None:
        if not self.is_current:
            return  # on_screen_resume repaints when it shows again
        if self._timer is not None:
            if not (self._timer_is_tick and not tick):
                return
            self._cancel_timer()  # a change arrived while only the clock tick was waiting: sooner
        self._timer_is_tick = tick
        self._timer = self.set_timer(delay, self.flush)

    def flush(self) -> None:
        """Sync every pane with the session; each repaints only if what it shows changed."""
        self._cancel_timer()  # called directly (mount, resume), a pending timer would flush twice
        if not self.is_mounted:
            return
        self.flushes += 1
        for pane in self.query(Pane):
            pane.sync()
        self.after_flush()
        session = self.session
        if session.running and session.end is None and session.clock is not None and session.clock.scale > 0:
            self._schedule(TICK_S, tick=True)

    def after_flush(self) -> None:
        """Screens update what is not a pane here (hint lines, bindings)."""

    def refresh_bindings_if_changed(self) -> None:
        """The footer's keys depend on whether the run goes on, ended, or failed with a remedy;
        refreshing them rebuilds the footer, so only when one of those changed."""
        key = (self.session.running, self.session.end, self.can_rollback())
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    # --- what the user can do with the run, from any of its screens ----------------------------------

    @property
    def run_dir(self) -> str:
        return str(self.session.run_path or "")

    def can_rollback(self) -> bool:
        """After a failure whose diagnosis carries a remedy, in a session that can retry (not a replay)."""
        session = self.session
        return session.failed and bool(session.remedies) and session.retrier is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rollback":
            return self.can_rollback()
        if action == "abort":
            return self.session.running
        return True

    def action_abort(self) -> None:
        if not self.session.running:
            self.app.bell()
            return
        replay = not self.session.live
        question = "Stop the replay?" if replay else "Abort the run?"
        detail = ("The recording is left as it is." if replay else
                  "The engine stops where it is and leaves the VM as it is. The run's journal keeps every "
                  f"step, so the start screen (or --resume {self.run_dir}) can continue it later.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(AbortConfirmed(self.run_dir))
                if self.session.stopper is not None:
                    self.session.stopper()

        self.app.push_screen(ConfirmDialog(question, detail, yes="Abort (y)" if not replay else "Stop (y)",
                                           no="Keep going (n)"), answered)

    def action_rollback(self) -> None:
        if not self.can_rollback():
            self.app.bell()
            return
        remedy = self.session.remedies[0]
        changes = dict(remedy.get("changes") or {})
        self.post_message(RollbackRequested(self.run_dir, str(remedy.get("id", "")), changes))
        if not self.session.retry_with(changes):
            self.app.bell()
            return
        shown = ", ".join(f"{key}={value}" for key, value in changes.items())
        self.notify(f"Rolling back to the pre-install snapshot, then retrying with {shown}.", title="Rollback",
                    timeout=6)
        self.retry_started()

    def retry_started(self) -> None:
        """The session has a retry to run: back to the dashboard, which starts it when it shows."""
        dashboard = next((s for s in reversed(self.app.screen_stack) if hasattr(s, "start_source")), None)
        if dashboard is None:
            return

        async def back() -> None:
            while self.app.screen is not dashboard:
                await self.app.pop_screen()

        self.app.call_later(back)

    def ended_message(self) -> RunEnded:
        end = self.session.end
        assert end is not None
        return RunEnded(end.exit_code, end.outcome, end.message)

    def action_quit_run(self) -> None:
        """Quit: while the run goes on, offer to abort it first (it can be resumed)."""
        if self.session.running:
            self.action_abort()
        else:
            self.quit_with_run_code()

    def quit_with_run_code(self) -> None:
        """Leave the app with the run's exit code (the wizard's own way when it has one)."""
        code = self.session.end.exit_code if self.session.end is not None else 0
        finish = getattr(self.app, "finish", None)
        if callable(finish):
            finish(code)
        else:
            self.app.exit(result=code, return_code=code)
