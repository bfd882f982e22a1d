"""What the engine does when the lab's faults strike, part by part (regressions found by running
the success scenario under faults): the monitoring agent comes back after target seconds, a
detached job's launch survives a drop, and a VMS restart right after bootstrap is ridden through."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import pytest

from backend.bus import EventBus
from backend.clock import Clock
from backend.monitor.stream import MonitorSession, SubprocessSource


def test_a_dropped_monitor_stream_comes_back_after_target_seconds_not_wall_seconds():
    """At --speed 120 a 1 s backoff in wall time was 2 lab minutes without samples after every drop."""
    source = SubprocessSource(["true"])
    lab = MonitorSession(source, EventBus(Clock.scaled(120.0)))
    assert lab.backoff_wall(0) == pytest.approx(max(0.02, 1.0 / 120))  # the stream ran, then dropped
    assert lab.backoff_wall(9) == pytest.approx(30.0 / 120)  # starts that keep failing back off further
    real = MonitorSession(source, EventBus(Clock.wall()))
    assert (real.backoff_wall(0), real.backoff_wall(2)) == (1.0, 5.0)
    assert MonitorSession(source, EventBus(Clock.scaled(10_000.0))).backoff_wall(0) == 0.02  # never a busy loop
