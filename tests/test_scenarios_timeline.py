"""The success scenario replays the field run: its log parses like the field log, on the field's schedule.

The VAST stand-ins run for real (bash + the guest-side player) in a temporary guest root with a lab
clock 20 000 times faster than the wall; timestamps are lab time, so the field's times come back."""

from __future__ import annotations

import re

import pytest

from backend.clients.installlog import clean_lines, line_timestamp, parse_line
from tests.conftest import shared_path
from tests.vast_lab_helpers import FIELD_START, make_guest


@pytest.fixture(scope="module")
def success_run(tmp_path_factory):
    guest = make_guest(tmp_path_factory.mktemp("guest"))
    boot = guest.bootstrap()
    create = guest.create()
    return guest, boot, create


def _facts(raw: str):
    return [fact for fact in map(parse_line, clean_lines(raw)) if fact]


def test_the_whole_install_takes_the_field_runs_32_minutes_41_seconds(success_run):
    guest, boot, create = success_run
    assert boot.returncode == 0 and create.returncode == 0, (boot.stderr, create.stderr)
    tools = guest.world().tools
    bootstrap, cluster_create = tools["bootstrap"], tools["cluster_create"]
    assert bootstrap.finished - bootstrap.started == pytest.approx(887, abs=0.01)  # 18:32:13 -> 18:47:00
    # the lab clock ran on while the test started the second tool: add only the tools' own durations
    total = (bootstrap.finished - bootstrap.started) + (cluster_create.finished - cluster_create.started)
    assert total == pytest.approx(32 * 60 + 41, abs=0.01)


def test_cluster_states_and_the_deploy_task_on_the_field_schedule(success_run):
    _, _, create = success_run
    facts = _facts(create.stdout.decode())
    states = [(f.value, f.ts) for f in facts if f.kind == "cluster_state"]
    assert [s for s, _ in states] == ["INIT", "ACTIVATING", "ONLINE"]
    assert states[1][1] - states[0][1] == 9  # INIT -> ACTIVATING
    assert states[2][1] - states[1][1] == 641  # ACTIVATING -> ONLINE: 10 min 41 s
    task = next(f for f in facts if f.kind == "task")
    assert (task.name, task.task_id, task.value, task.runtime_s) == ("cluster_deploy", 2, "COMPLETED", 1064.11)
    assert task.ts - states[2][1] == 328  # about 5.5 min after ONLINE


def test_bootstrap_prints_the_field_milestones(success_run):
    _, boot, _ = success_run
    facts = _facts(boot.stdout.decode())
    assert [f.kind for f in facts] == ["vms_up", "bootstrap_done"]
    assert facts[1].value == "https://192.168.30.109"
    assert "unpacking ./vastdata_release_2043819.vast.tar.gz" in boot.stdout.decode()
    assert "starting VMS ---- 30% done" in boot.stdout.decode()


def test_the_log_has_the_field_logs_repaints_and_colours(success_run):
    _, _, create = success_run
    raw = create.stdout.decode()
    assert "\r[" in raw and " ... |\r" in raw and "\x1b[?25l" in raw  # spinner repaints, cursor hidden
    activating = re.findall(r"\r\[[^\]]+\] Cluster lb-vast54 state: ACTIVATING \.\.\. [/\-\\|]", raw)
    assert 290 <= len(activating) <= 320  # the field log repainted it 305 times in 641 s
    assert len({line[2:21] for line in activating}) == 1  # every repaint keeps the phase's first timestamp
    assert raw.endswith("RTNETLINK answers: No such process\n")


def _normalised(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TS", line)
        line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", line)
        # the field's vcli had its password on the command line (-p), ours takes it from the environment
        out.append(re.sub(r" -p \S+", "", line))
    return out


def test_the_cluster_create_log_reads_line_for_line_like_the_field_log(success_run):
    guest, _, create = success_run
    field_raw = shared_path("traces", "seed-run-2025-12-29", "install", "vast_install_final.log").read_text(
        errors="replace")
    field = _normalised(clean_lines(field_raw))
    ours = _normalised(clean_lines(create.stdout.decode()))
    start = field.index(ours[0])
    assert field[start:start + len(ours)] == ours
    # and the timestamps are the field's, relative to the start of cluster create
    field_times = [line_timestamp(line) for line in clean_lines(field_raw)[start:start + len(ours)]]
    our_times = [line_timestamp(line) for line in clean_lines(create.stdout.decode())]
    field0 = next(t for t in field_times if t)
    ours0 = next(t for t in our_times if t)
    assert [t - field0 for t in field_times if t] == [t - ours0 for t in our_times if t]


def test_timestamps_are_lab_time_not_wall_time(success_run):
    guest, _, create = success_run
    started = guest.world().tools["bootstrap"].started
    assert FIELD_START <= started < FIELD_START + 3600  # the lab clock began at the field run's start
    first = next(f for f in _facts(create.stdout.decode()) if f.ts)
    cluster_create = guest.world().tools["cluster_create"]  # the world's record, in lab time
    assert cluster_create.started - 1 <= first.ts <= cluster_create.finished  # 2025-12-29, whatever day it is
