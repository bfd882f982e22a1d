"""`vast-loopback replay RUN_DIR [--speed N]`: watch a recorded run in the live dashboard.

Record and replay are one feature: the run directory's journal is fed, at `speed` times the
target clock, into the same session and the same dashboard a live run uses (backend/analysis/replay.py,
tui/session.py). When the recording ends the result screen shows its outcome and diagnosis; q
quits with the recorded run's exit code.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from tui.session import RunSession, replay_session


class ReplayApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "vast-loopback replay"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, session: RunSession, *, hints: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.hints = hints
        self.exit_code = 0

    def on_mount(self) -> None:
        from screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(self.session, scenario=self.hints))

    def action_help(self) -> None:
        from screens.help import RUN_KEYS, HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(getattr(self.screen, "HELP", ""), getattr(self.screen, "TITLE", ""), RUN_KEYS))

    def finish(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.exit(result=exit_code, return_code=exit_code)


def run_replay(run_dir: str, speed: float = 30.0, hints: str | None = None) -> int:
    """Replay a run directory in the dashboard; returns the recorded run's exit code on q."""
    app = ReplayApp(replay_session(run_dir, speed), hints=hints)
    result = app.run()
    return int(result) if result is not None else app.exit_code
