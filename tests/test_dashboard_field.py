"""The field run's raw traces (../shared, imported as a run directory) replayed into the dashboard:
the panes show what the raw logs say (steal 26.7 % in bootstrap, MemAvailable down to 1.2 GiB,
ACTIVATING -> ONLINE in 10 min 41 s), the same figures as the brief's ground truth."""

from __future__ import annotations

import pytest

from backend.analysis.importer import import_traces
from backend.analysis.replay import recorded_events
from tests.conftest import shared_path
from tests.dashboard_helpers import DashboardApp, pane_text, session_at, settle


@pytest.fixture(scope="module")
def field_run(tmp_path_factory):
    traces = shared_path("traces", "seed-run-2025-12-29")
    return import_traces(str(traces), str(tmp_path_factory.mktemp("field") / "run")).path


async def test_the_field_run_replayed_shows_the_raw_logs_figures(field_run):
    app = DashboardApp(session_at("field", events=recorded_events(field_run)), result_on_end=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert "max 26.7 % at 18:37:08" in pane_text(app, "#cpu")
        assert "min 1.2 at " in pane_text(app, "#memory") and "/117.5 GiB" in pane_text(app, "#memory")
        cluster = pane_text(app, "#cluster")
        assert "18:48:39 ACTIVATING 10:41" in cluster and "18:59:20 ONLINE" in cluster
        containers = pane_text(app, "#containers")
        assert "vast_platform_11.0.0.1-4200" in containers and "49.2" in containers  # its peak, GiB
        assert "max 80.3" in pane_text(app, "#load")
