"""The full log of a run (l on the dashboard): every install log line and every notable event
(kernel lines, stalls, retries, cluster changes, alerts, diagnoses) with its time on the target
clock, newest at the bottom, following the run as it goes. Esc (or l) goes back."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, RichLog

from screens.sessionbase import SessionScreen
from tui.session import LOG_ENTRIES
from tui.widgets.dashboard.alerts import LEVEL_STYLES, RunHeader
from tui.widgets.dashboard.pane import clock

LEVEL_MARKS = {"critical": "✖ ", "warning": "! ", "info": "· ", "log": "  "}


class RunLogScreen(SessionScreen):
    TITLE = "Log"
    HELP = """\
The run's full log: the install log's lines (dim) and the notable events between them, newest at
the bottom; it follows the run as it goes. Esc goes back to the dashboard."""

    DEFAULT_CSS = """
    RunLogScreen RichLog { height: 1fr; padding: 0 1; }
    """

    BINDINGS = [Binding("escape,l", "close", "Back")]

    def __init__(self, session) -> None:  # noqa: ANN001 - RunSession
        super().__init__(session)
        self.shown = 0  # log entries written so far (session.log_count when last flushed)

    def compose(self) -> ComposeResult:
        yield RunHeader(self.session)
        yield RichLog(max_lines=LOG_ENTRIES, wrap=False, highlight=False, markup=False, id="log")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RichLog).focus()

    def after_flush(self) -> None:
        session = self.session
        fresh = min(session.log_count - self.shown, len(session.log))
        if fresh <= 0:
            return
        log = self.query_one(RichLog)
        for entry in list(session.log)[-fresh:]:
            line = Text(clock(entry.t) + " ", style="dim")
            line.append(LEVEL_MARKS.get(entry.level, "  ") + entry.text, style=LEVEL_STYLES.get(entry.level) or None)
            log.write(line)
        self.shown = session.log_count

    def action_close(self) -> None:
        self.dismiss()
