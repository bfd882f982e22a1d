"""The fleet in the wizard: Review asks how many clusters on a multi-node cluster (only there); the
fleet view shows one row per member from its own events and opens the member's dashboard."""

from __future__ import annotations

from textual.app import App
from textual.widgets import DataTable, Input

from backend import events as ev
from backend.clock import Clock
from backend.model.answers import Answers
from backend.run.bus import EventBus
from screens.fleet import FleetScreen, MemberDashboard
from tests.tui_helpers import BIG_INVENTORY, Opener, make_app, to_step
from tui.fleetsession import FleetSession


async def test_review_asks_how_many_clusters_only_on_a_multi_node_cluster(monkeypatch):
    started = []

    async def run(self) -> int:  # the fleet itself is tested in test_fleet_lab.py
        started.append(self.count)
        return 0

    monkeypatch.setattr(FleetSession, "run", run)
    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    async with app.run_test(size=(100, 40)) as pilot:
        await to_step(pilot, app, "review")
        assert app.screen.query_one("#fleet-row").display
        app.screen.query_one("#fleet-count", Input).value = "99"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen" and "1-64" in app.screen.status
        app.screen.query_one("#fleet-count", Input).value = "3"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen) and started == [3]
    single = make_app()
    async with single.run_test(size=(100, 40)) as pilot:
        await to_step(pilot, single, "review")
        assert not single.screen.query_one("#fleet-row").display


class _FleetApp(App):
    def __init__(self, fleet: FleetSession) -> None:
        super().__init__()
        self.fleet = fleet

    def on_mount(self) -> None:
        self.push_screen(FleetScreen(self.fleet, start=False))


async def test_one_row_per_member_and_enter_opens_its_dashboard():
    fleet = FleetSession(Answers.model_validate({"proxmox": {"url": "lab"}, "vm": {"name": "class"}}), 2)
    app = _FleetApp(fleet)
    async with app.run_test(size=(120, 40)) as pilot:
        fleet.planned({"members": [{"name": "class-1", "node": "pve2", "memory_gib": 120},
                                   {"name": "class-2", "node": "pve1", "memory_gib": 120}]})
        buses = {}
        for name in ("class-1", "class-2"):
            buses[name] = EventBus(Clock.wall())
            fleet.member(name, buses[name])
        one, two = buses["class-1"], buses["class-2"]
        one.emit(ev.StepStarted(step="install", title="Install VAST", group="install"))
        one.emit(ev.ClusterStateChanged(state="ONLINE", previous="ACTIVATING", source="api"))
        two.emit(ev.StallDetected(length_ms=2500.0, start=0.0))
        two.emit(ev.AlertRaised(id="steal", severity="warning", message="steal above 10 %", evidence=""))
        await pilot.pause(0.7)
        table = app.screen.query_one(DataTable)
        rows = {str(key.value): table.get_row(key) for key in table.rows}
        assert rows["class-1"][:3] == ["class-1", "pve2", "Install VAST"] and rows["class-1"][6] == "ONLINE"
        assert rows["class-2"][5] == "2500 ms"
        assert "class-2: [warning] steal above 10 %" in str(app.screen.query_one("#fleet-alerts").render())
        table.move_cursor(row=1)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MemberDashboard) and app.screen.session is fleet.sessions["class-2"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
