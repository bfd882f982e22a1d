"""What the dashboard's panes are drawn from, without Textual: chart series that keep gaps as
gaps, the replay of a run directory (record and replay as one feature), and the session that folds
a recorded run into the figures the panes show."""

from __future__ import annotations

import math

from backend import events as ev
from backend.analysis.replay import merge_by_time, recorded_events, replay
from backend.model.hostfacts import GIB
from tests.dashboard_helpers import session_at, with_retry
from tests.recorded_runs import T0, write_recorded_run
from tests.recorded_runs import recorded_events as generated
from tui.hints import demo_hint
from tui.series import Series, Window
from tui.session import RunEnd, RunSession, gap_bucket

# --- series ------------------------------------------------------------------------------------


def test_a_column_without_samples_is_a_gap_not_an_interpolation():
    series = Series()
    for t in range(1000, 1010):
        series.add(t, 10.0)
    for t in range(1030, 1040):  # 20 s without samples
        series.add(t, 30.0)
    window = Window.covering(1000, 1039, 40)
    assert window.step == 1
    columns = window.read(series, "max")
    assert columns[:10] == (10.0,) * 10
    assert columns[10:30] == (None,) * 20
    assert columns[30:40] == (30.0,) * 10
    assert len(columns) == 40


def test_columns_after_the_latest_sample_are_not_there_yet():
    series = Series()
    for t in range(1000, 1010):
        series.add(t, 1.0)
    window = Window.covering(1000, 1009, 60)
    assert len(window.read(series, "mean")) == 10  # the chart is drawn from the left, no trailing gap


def test_a_long_run_fits_the_width_on_a_grid_and_keeps_each_columns_extremes():
    series = Series()
    for t in range(0, 7200):
        series.add(float(t), 100.0 if t == 3601 else 1.0)
    window = Window.covering(0, 7199, 60)
    assert window.step == 120 and window.start % window.step == 0
    high = window.read(series, "max")
    assert len(high) == 60 and high[30] == 100.0 and high.count(1.0) == 59
    assert window.read(series, "min")[30] == 1.0
    assert math.isclose(window.read(series, "mean")[30], (119 + 100) / 120)


# --- replay --------------------------------------------------------------------------------------


def test_a_run_directory_replays_its_events_and_samples_merged_by_time(tmp_path):
    original = generated("success")
    run = write_recorded_run(tmp_path / "run", "success")
    replayed = recorded_events(run.path)
    assert [e.to_dict() for e in replayed] == [e.to_dict() for e in original]


def test_merging_keeps_each_files_order_for_equal_times():
    a = [ev.StepStarted(ts=5.0, step="x", title="X", group="install"), ev.StepFinished(ts=5.0, step="x", ok=True)]
    b = [ev.SampleTaken(ts=5.0, sample={}), ev.SampleTaken(ts=6.0, sample={})]
    kinds = [e.kind for e in merge_by_time(a, b)]
    assert kinds == ["StepStarted", "StepFinished", "SampleTaken", "SampleTaken"]


async def test_replay_waits_target_time_divided_by_the_speed():
    events = [ev.StepProgressed(ts=100.0 + t, step="s", message=str(t)) for t in (0, 10, 40)]
    events.append(ev.RunFinished(ts=141.0, outcome="failed", exit_code=1))
    slept: list[float] = []
    seen: list[ev.Event] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    code = await replay(events, seen.append, speed=10.0, sleep=sleep)
    assert code == 1 and seen == events
    assert slept == [1.0, 3.0, 0.1]


async def test_replay_at_unlimited_speed_never_sleeps_and_a_quiet_stretch_is_capped():
    events = [ev.StepProgressed(ts=t, step="s", message="") for t in (0.0, 3600.0)]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await replay(events, lambda e: None, speed=math.inf, sleep=sleep)
    assert slept == []
    await replay(events, lambda e: None, speed=1.0, sleep=sleep, max_wait=5.0)
    assert slept == [5.0]


# --- the session ---------------------------------------------------------------------------------


def test_the_success_run_folds_into_the_field_figures():
    session = session_at("success")
    assert session.steal_max.value == 26.7
    assert round(session.available_min.value / GIB, 1) == 1.2
    assert round(session.mem_total / GIB, 1) == 117.5
    state = session.state
    assert state.gap_max_ms == 1210.0 and state.gap_count_1s == 1 and state.gap_count_2s == 0
    assert [s for _, s in state.cluster_states] == ["INIT", "ACTIVATING", "ONLINE"]
    assert state.sampling_gaps and state.sampling_gaps[0][1] - state.sampling_gaps[0][0] == 20
    assert session.containers["vast_platform_4200"].peak > session.containers["vast_vms"].peak > 0
    assert session.vcpus == 12
    assert session.end == RunEnd(0, "online", "")


def test_gaps_seen_both_as_events_and_in_the_samples_are_counted_once():
    session = session_at("overcommit")
    assert sum(session.stall_hist.values()) == len(session.state.gaps) == 15
    assert session.gap_hist == session.stall_hist
    assert session.state.gap_count_2s == 3 and session.state.gap_max_ms == 5000.0
    assert gap_bucket(49) is None and gap_bucket(50) == "50" and gap_bucket(1999) == "1000"


def test_the_samples_own_counts_fill_in_for_gap_events_that_were_lost():
    session = RunSession(live=False)
    hist = {"50": 0, "100": 0, "250": 0, "500": 0, "1000": 2, "2000": 0, "5000": 0}
    session.apply(ev.SampleTaken(ts=1.0, sample={"t": 1.0, "gaps_hist": hist}))
    session.apply(ev.StallDetected(ts=1.0, start=0.5, length_ms=1500.0))
    assert session.gap_hist["1000"] == 2


def test_the_live_watcher_diagnoses_the_failures_with_a_remedy_the_retry_can_apply():
    overcommit = session_at("overcommit")
    assert overcommit.failed
    assert overcommit.remedies[0]["id"] == "overcommit" and overcommit.remedies[0]["changes"] == {"vcpus": 12}
    oom = session_at("oom")
    assert oom.remedies[0]["id"] == "oom" and "memory_gib" in oom.remedies[0]["changes"]
    assert not session_at("success").remedies


def test_a_diagnosis_the_engine_emits_and_the_watchers_own_are_one_item():
    session = session_at("overcommit", 330)
    item = {"id": "overcommit", "cause": "vCPU overcommit: recorded", "remedy": "12 vCPUs", "evidence": []}
    session.apply(ev.DiagnosisMade(ts=T0 + 331, items=[item]))
    session.apply(ev.AlertRaised(ts=T0 + 331, id="steal_sustained", severity="warning", message="again"))
    assert list(session.diagnoses).count("overcommit") == 1
    assert sum(1 for a in session.alerts if a == "steal_sustained") == 1


def test_demo_hints_point_at_what_matters_now():
    assert "steal climb" in demo_hint(session_at("overcommit", 320), "overcommit")
    assert "MemAvailable is falling" in demo_hint(session_at("oom", 315), "oom")
    assert "Bootstrap" in demo_hint(session_at("success", 120), "success")
    failed = demo_hint(with_retry(session_at("overcommit"), []), "overcommit", on_result=True)
    assert "the blocker you overrode (24 vCPUs on 12 cores)" in failed and "r retries" in failed
    assert "ONLINE" in demo_hint(session_at("success"), "success")


async def test_events_emitted_from_a_worker_thread_are_folded_on_the_ui_loop():
    import asyncio
    import threading

    applied_in: list[int] = []

    async def source(subscriber) -> int:  # noqa: ANN001 - a blocking client's thread emits
        await asyncio.to_thread(subscriber, ev.StepStarted(ts=1.0, step="s", title="S", group="install"))
        await asyncio.sleep(0.01)
        return 0

    session = RunSession(source=source, live=False)
    session.listen(lambda what: applied_in.append(threading.get_ident()))
    end = await session.run()
    assert end.exit_code == 0 and session.state.steps["s"].status == "running"
    assert set(applied_in) == {threading.get_ident()}


def test_replay_of_something_that_is_not_a_run_directory_is_a_clear_error(tmp_path, capsys):
    from tui.cli import main

    assert main(["replay", str(tmp_path)]) == 2
    assert "is not a vast-loopback run directory" in capsys.readouterr().err
