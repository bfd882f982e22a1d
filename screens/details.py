"""Every pane of the run at full size, one under the other (d on the dashboard): the phases, the
diagnosis with its evidence, memory, CPU, load, heartbeat gaps with the histogram, the cluster,
container memory, the tuning read back from the guest (before and after the reboot), the preflight
checklist and the alerts & log. Esc (or d) goes back; the run goes on meanwhile."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer

from screens.sessionbase import SessionScreen
from tui.widgets.dashboard.alerts import AlertsPane, RunHeader
from tui.widgets.dashboard.cluster import ClusterPane
from tui.widgets.dashboard.containers import ContainersPane
from tui.widgets.dashboard.diagnosis import DiagnosisPane
from tui.widgets.dashboard.gaps import GapsPane
from tui.widgets.dashboard.preparation import PreflightPane, TuningPane
from tui.widgets.dashboard.resources import CpuPane, LoadPane, MemoryPane
from tui.widgets.dashboard.timeline import TimelinePane


class DetailsScreen(SessionScreen):
    TITLE = "Details"
    HELP = """\
Every pane at full size; scroll with the arrows, PgUp/PgDn or the mouse. Esc goes back to the
dashboard; the run goes on meanwhile."""

    DEFAULT_CSS = """
    DetailsScreen VerticalScroll { height: 1fr; }
    DetailsScreen #d-timeline { height: 26; }
    DetailsScreen #d-memory, DetailsScreen #d-cpu { height: 16; }
    DetailsScreen #d-load { height: 12; }
    DetailsScreen #d-gaps { height: 12; }
    DetailsScreen #d-cluster, DetailsScreen #d-containers { height: 12; }
    DetailsScreen #d-tuning { height: 21; }
    DetailsScreen #d-preflight { height: 24; }
    DetailsScreen #d-alerts { height: 24; }
    """

    BINDINGS = [
        Binding("escape,d", "close", "Back"),
        Binding("l", "log", "Log"),
        Binding("r", "rollback", "Rollback & retry"),
    ]

    def compose(self) -> ComposeResult:
        session = self.session
        yield RunHeader(session)
        with VerticalScroll():
            yield TimelinePane(session, id="d-timeline")
            yield DiagnosisPane(session, id="d-diagnosis")
            yield MemoryPane(session, id="d-memory")
            yield CpuPane(session, id="d-cpu")
            yield LoadPane(session, id="d-load")
            yield GapsPane(session, id="d-gaps")
            yield ClusterPane(session, id="d-cluster")
            yield ContainersPane(session, id="d-containers")
            yield TuningPane(session, id="d-tuning")
            yield PreflightPane(session, id="d-preflight")
            yield AlertsPane(session, id="d-alerts")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss()

    def action_log(self) -> None:
        from screens.runlog import RunLogScreen

        self.app.push_screen(RunLogScreen(self.session))
