"""The fleet's live view: one row per member (phase, memory vs the VM's size, max steal, worst stall,
cluster state) and every member's alerts; Enter opens the member's own dashboard, Esc comes back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from screens.dashboard import DashboardScreen
from tui.fleetsession import FleetSession

COLUMNS = ("Member", "Node", "Phase", "Memory used / VM", "Max steal", "Worst stall", "Cluster")
KEYS = ("name", "node", "phase", "memory", "steal", "stall", "cluster")
REFRESH_S = 0.5


class MemberDashboard(DashboardScreen):
    """A member's ordinary dashboard, inside the fleet view: Esc goes back to the fleet."""

    BINDINGS = [Binding("escape", "back", "Fleet")]

    def action_back(self) -> None:
        self.app.pop_screen()


class FleetScreen(Screen):
    TITLE = "Fleet"
    HELP = """\
One row per member of the class: its node, phase, the guest's peak memory against the VM's size, the
highest CPU steal, the longest stall and the VAST cluster's state; below, every member's alerts.
Enter opens the selected member's full dashboard (Esc comes back)."""
    DEFAULT_CSS = """
    FleetScreen #fleet-title { height: 1; text-style: bold; }
    FleetScreen DataTable { height: auto; max-height: 60%; }
    FleetScreen #fleet-alerts { height: auto; }
    """
    BINDINGS = [Binding("enter", "open_member", "Member dashboard")]

    def __init__(self, fleet: FleetSession, *, start: bool = True) -> None:
        super().__init__()
        self.fleet = fleet
        self.start = start
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Static(f"Class of {self.fleet.count}: {self.fleet.answers.vm.name}-1..{self.fleet.count}",
                     id="fleet-title")
        table: DataTable = DataTable(id="members", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="fleet-alerts", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.fleet.listen(self._changed)
        self.set_interval(REFRESH_S, self.flush)
        if self.start and self.fleet.end is None:
            self.app.run_worker(self.fleet.run(), name="fleet", group="engine", exit_on_error=False)
        self.flush()

    def _changed(self, what: str) -> None:
        self._dirty = True

    def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        table = self.query_one(DataTable)
        for name in self.fleet.sessions:
            row = self.fleet.row(name)
            if name not in table.rows:
                table.add_row(*(row[k] for k in KEYS), key=name)
            else:
                for column, key in zip(table.ordered_columns, KEYS, strict=True):
                    table.update_cell(name, column.key, row[key])
        lines = self.fleet.alerts()
        if self.fleet.end is not None:
            lines.insert(0, "all members ONLINE" if self.fleet.end == 0 else
                         f"the fleet ended with exit {self.fleet.end}" + (f": {self.fleet.message}"
                                                                          if self.fleet.message else ""))
        self.query_one("#fleet-alerts", Static).update("\n".join(lines[-12:]) or "no alerts")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row (the table takes the key): that member's dashboard."""
        event.stop()
        self.action_open_member()

    def action_open_member(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.app.bell()
            return
        name = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        self.app.push_screen(MemberDashboard(self.fleet.sessions[name], result_on_end=False))
