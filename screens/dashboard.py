"""The live dashboard: the run while it happens, in panes that each show one thing.

At 80x24 it keeps the essentials (phases, memory, steal, heartbeat gaps, cluster state, the alert
that matters most); from 120x34 on it shows every pane (load, container memory, alerts & log too).
While the guest is prepared (no samples yet), the tuning read back and the preflight checklist take
the place of the memory and CPU panes.
d shows every pane at full size, l the full log, a aborts (after a confirmation), r rolls back and
retries after a diagnosed failure, Enter shows the result once the run ended.

The screen starts the session's source (the engine, or a replay) as an app worker, so the run goes
on while other screens cover this one; the history lives in the session, never in the widgets.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.geometry import Size
from textual.widgets import Footer

from screens.sessionbase import SessionScreen
from tui.hints import demo_hint
from tui.session import RunSession
from tui.widgets.dashboard.alerts import AlertLine, AlertsPane, HintLine, RunHeader
from tui.widgets.dashboard.cluster import ClusterPane
from tui.widgets.dashboard.containers import ContainersPane
from tui.widgets.dashboard.gaps import GapsPane
from tui.widgets.dashboard.preparation import PreparationPane
from tui.widgets.dashboard.resources import CpuPane, LoadPane, MemoryPane
from tui.widgets.dashboard.timeline import TimelinePane

WIDE = Size(120, 34)  # from this size on, every pane is on the dashboard


class DashboardScreen(SessionScreen):
    CSS_PATH = "dashboard.tcss"
    TITLE = "Dashboard"
    HELP = """\
The run as it happens. Phases: every step of the plan, its duration on the target's clock and the
running step's last log line. Memory: used memory against the VM's size; the dotted line on top
is where the OOM killer bites. CPU steal: time the host did not give the VM its vCPUs (the dotted
line is 10 %, the sustained-steal alert). Heartbeat gaps: how long the guest stood still. Cluster:
the VAST cluster's states and how long each lasted.
While the guest is prepared, Guest preparation lists every tuning read back from the guest (↻✓:
it survived the reboot) and the preflight checklist's verdict.
Keys: d every pane at full size · l the full log · a abort (asks first; the run can be resumed) ·
r roll back and retry (after a diagnosed failure) · Enter the result (once the run ended) ·
q quit (asks first while the run goes on)."""

    BINDINGS = [
        Binding("d", "details", "Details"),
        Binding("l", "log", "Log"),
        Binding("a", "abort", "Abort"),
        Binding("r", "rollback", "Rollback & retry"),
        Binding("enter", "result", "Result"),
        Binding("q", "quit_run", "Quit"),
    ]

    def __init__(self, session: RunSession, *, scenario: str | None = None, badge: str = "",
                 result_on_end: bool = True) -> None:
        super().__init__(session)
        self.scenario = scenario  # a demo scenario: show hints
        self.badge = badge
        self.result_on_end = result_on_end

    def compose(self) -> ComposeResult:
        session = self.session
        header = RunHeader(session, id="run-header")
        header.badge = self.badge
        yield header
        with Container(id="panes"):
            yield TimelinePane(session, id="timeline")
            yield PreparationPane(session, id="prep")
            yield MemoryPane(session, id="memory")
            yield CpuPane(session, id="cpu")
            yield LoadPane(session, id="load")
            yield GapsPane(session, id="gaps")
            yield ClusterPane(session, id="cluster")
            yield ContainersPane(session, id="containers")
            yield AlertsPane(session, id="alerts")
        yield AlertLine(session, id="alert-line")
        yield HintLine("", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(HintLine).display = self.scenario is not None
        self._layout(self.app.size)
        super().on_mount()
        self.start_source()

    def start_source(self) -> None:
        """Run the session's source as an app worker (once), so it outlives this screen."""
        session = self.session
        if session.source is None or session.running or session.end is not None:
            return
        worker = self.app.run_worker(session.run(), name="engine", group="engine", exit_on_error=False,
                                     description="run the plan" if session.live else "replay a recorded run")
        session.stopper = worker.cancel

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.start_source()  # a rollback-and-retry chosen on the result screen starts here

    def retry_started(self) -> None:
        self.start_source()

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size)

    def _layout(self, size: Size) -> None:
        self.set_class(size.width >= WIDE.width and size.height >= WIDE.height, "-wide")

    def preparing(self) -> bool:
        """While the guest is prepared (tuning, reboot, preflight) and the monitor has no samples yet,
        the tuning and preflight results take the place of the empty memory and CPU panes."""
        session = self.session
        if session.samples_seen:
            return False
        state = session.state
        step = state.current_step
        return bool(state.tuning or state.preflight or (step is not None and step.group == "prepare"))

    def after_flush(self) -> None:
        preparing = self.preparing()
        if preparing != self.has_class("-preparing"):
            self.set_class(preparing, "-preparing")
        if self.scenario is not None:
            self.query_one(HintLine).update(demo_hint(self.session, self.scenario))
        self.refresh_bindings_if_changed()

    def session_ended(self) -> None:
        self.post_message(self.ended_message())
        if self.result_on_end:
            self.action_result()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "result":
            return self.session.end is not None
        return super().check_action(action, parameters)

    # --- keys --------------------------------------------------------------------------------

    def action_details(self) -> None:
        from screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(self.session))

    def action_log(self) -> None:
        from screens.runlog import RunLogScreen

        self.app.push_screen(RunLogScreen(self.session))

    def action_result(self) -> None:
        if self.session.end is None:
            self.app.bell()
            return
        from screens.result import ResultScreen

        if isinstance(self.app.screen, ResultScreen):
            return
        self.app.push_screen(ResultScreen(self.session, scenario=self.scenario))
