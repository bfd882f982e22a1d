"""Install-log reading: ANSI and spinner repaints stripped, facts parsed, partial lines held back."""

from __future__ import annotations

from backend.clients.installlog import clean_lines, parse_line
from tests.conftest import shared_path

SPINNER = (
    "\x1b[0;34m==>\x1b[0m \x1b[0;34mPhase 9: Creating loopback cluster\x1b[0m\n"
    "\r[2025-12-29 18:48:30] Cluster lb-vast54 state: INIT ... /\r[2025-12-29 18:48:30] Cluster lb-vast54 "
    "state: INIT ... -\r\n"
    "\r[2025-12-29 18:48:39] Cluster lb-vast54 state: ACTIVATING ... |\r\n"
    "\r[2025-12-29 19:04:48] Task cluster_deploy (2) succeeded (runtime=1064.11) ... \\\r\n"
)


def test_repaints_become_one_clean_line_each():
    assert clean_lines(SPINNER) == [
        "==> Phase 9: Creating loopback cluster",
        "[2025-12-29 18:48:30] Cluster lb-vast54 state: INIT",
        "[2025-12-29 18:48:39] Cluster lb-vast54 state: ACTIVATING",
        "[2025-12-29 19:04:48] Task cluster_deploy (2) succeeded (runtime=1064.11)",
    ]


def test_facts_with_their_own_timestamps():
    facts = [parse_line(line) for line in clean_lines(SPINNER)]
    assert [(f.kind, f.value) for f in facts] == [
        ("phase", "Creating loopback cluster"), ("cluster_state", "INIT"), ("cluster_state", "ACTIVATING"),
        ("task", "COMPLETED")]
    assert facts[2].ts - facts[1].ts == 9
    assert facts[3].task_id == 2 and facts[3].runtime_s == 1064.11 and facts[3].name == "cluster_deploy"


def test_states_are_not_a_closed_list():
    fact = parse_line("[2025-12-29 10:57:40] Cluster lb-vast54 state: BOOTSTRAP")
    assert fact.value == "BOOTSTRAP"


def test_panic_and_oom_lines():
    assert parse_line('PANIC[P653:E9:S255:F28d time="2025-12-29 10:57:34.832443472"]').value == "P653"
    assert parse_line("[ 812.3] Out of memory: Killed process 4242 (vast_platform)").kind == "oom"
    assert parse_line("kernel: python invoked oom-killer: gfp_mask=0x6200ca").kind == "oom"


def test_the_field_install_log_reads_as_the_field_run():
    raw = shared_path("traces", "seed-run-2025-12-29", "install", "vast_install_final.log").read_text(errors="replace")
    facts = [f for f in map(parse_line, clean_lines(raw)) if f]
    states = [(f.value, f.ts) for f in facts if f.kind == "cluster_state"]
    assert [s for s, _ in states] == ["INIT", "ACTIVATING", "ONLINE"]
    assert states[2][1] - states[1][1] == 641  # ACTIVATING -> ONLINE: 10 min 41 s
    task = next(f for f in facts if f.kind == "task")
    assert (task.name, task.value, task.runtime_s) == ("cluster_deploy", "COMPLETED", 1064.11)
    assert [f.name for f in facts if f.kind == "phase"] == [str(n) for n in range(1, 12)]
