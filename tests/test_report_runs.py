"""`report` on run directories written by the engine's journal: the JSON names others rely on, the
tuning table, faults and sampling gaps, and a useful report when samples or the install are missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend import events as ev
from backend.analysis.deployment import analyse
from backend.analysis.report import write_report
from backend.errors import BadInput
from backend.run.journal import Journal, RunDir
from bench.synthetic_run import write_synthetic_run
from tui.cli import main

T = 1_800_000_000.0
GIB = 1024**3

REQUIRED = (
    "timeline.total_s", "timeline.activation_s", "timeline.phases", "cluster.final_state", "cluster.states",
    "cpu.steal_pct.max", "cpu.steal_pct.mean", "cpu.steal_pct.p99", "cpu.user_pct.max", "cpu.sys_pct.max",
    "load.load1.max", "load.load5.max", "load.load15.max", "memory.total_gib", "memory.used_gib.max",
    "memory.available_gib.min", "disk.r_await_ms.max", "disk.w_await_ms.max", "heartbeat.max_gap_s",
    "heartbeat.gaps_over_1s", "heartbeat.gaps_over_2s", "containers", "diagnosis", "tuning", "faults",
    "sampling_gaps",
)


def lookup(data: dict, dotted: str) -> object:
    node = data
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: missing {part}"
        node = node[part]
    return node


def write_run(path: Path, events: list[ev.Event]) -> RunDir:
    run = RunDir.create(path)
    journal = Journal(run)
    for event in events:
        journal(event)
    journal.close()
    return run


def agent_sample(t: float, steal: float = 0.5, available_gib: float = 60.0) -> ev.SampleTaken:
    total = int(117.5 * GIB)
    available = int(available_gib * GIB)
    return ev.SampleTaken(ts=t, sample={
        "t": t, "dt": 1.0, "cpu": {"user": 40.0, "sys": 8.0, "iowait": 0.5, "steal": steal, "idle": 51.0,
                                   "steal_max_cpu": steal * 4, "ncpu": 12},
        "load": [20.0, 15.0, 10.0], "runnable": 20, "tasks": 3000,
        "mem": {"total": total, "available": available, "used": total - available},
        "disks": {"sda": {"r_s": 10, "w_s": 20, "r_await": 0.5, "w_await": 1.5, "util": 10}},
        "containers": {"vast_vms": {"mem": 7 * GIB, "limit": total}}, "oom_kill": 0,
        "hb": {"max_ms": 1.2, "n": 10}})


TUNED = [
    ev.RunStarted(ts=T, run_id="tuned", target="lab (seed, speed 120)", vm_name="vast-lb"),
    ev.StepStarted(ts=T + 1, step="tune_guest", title="Tune the guest", group="prepare"),
    ev.TuningChecked(ts=T + 2, id="thp_enabled", expected="never", observed="always", ok=False),
    ev.TuningApplied(ts=T + 3, id="thp_enabled", changed=True),
    ev.TuningChecked(ts=T + 4, id="thp_enabled", expected="never", observed="never", ok=True),
    ev.TuningChecked(ts=T + 4, id="io_scheduler", expected="mq-deadline", observed="mq-deadline", ok=True),
    ev.TuningChecked(ts=T + 4, id="vm.swappiness", expected="1", observed="1", ok=True),
    ev.StepFinished(ts=T + 10, step="tune_guest", ok=True),
    ev.StepStarted(ts=T + 11, step="reboot_verify", title="Reboot and verify", group="prepare"),
    ev.TuningChecked(ts=T + 60, id="thp_enabled", expected="never", observed="never", ok=True, after_reboot=True,
                     persisted=True),
    ev.TuningChecked(ts=T + 60, id="vm.swappiness", expected="1", observed="60", ok=False, after_reboot=True,
                     persisted=False, reason="set at run time only"),
    ev.StepFinished(ts=T + 61, step="reboot_verify", ok=True),
    ev.RunFinished(ts=T + 62, outcome="prepared", exit_code=0),
]


def test_json_has_the_agreed_names(tmp_path: Path, capsys):
    run = write_run(tmp_path / "run", [*TUNED, *(agent_sample(T + i) for i in range(30))])
    assert main(["report", str(run.path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for dotted in REQUIRED:
        lookup(data, dotted)
    assert data["cpu"]["steal_max_cpu_pct"]["max"] == 2.0  # the agent's worst single vCPU


def test_tuning_checks_become_the_fixes_applied_table(tmp_path: Path):
    run = write_run(tmp_path / "run", TUNED)
    data = analyse(run.path)
    rows = {(t["id"], t["after_reboot"]): t for t in data["tuning"]}
    assert set(rows) == {("thp_enabled", False), ("io_scheduler", False), ("vm.swappiness", False),
                         ("thp_enabled", True), ("vm.swappiness", True)}
    assert rows[("thp_enabled", False)]["observed"] == "never"  # the latest check, after it was applied
    lost = rows[("vm.swappiness", True)]
    assert (lost["expected"], lost["observed"], lost["ok"], lost["persisted"]) == ("1", "60", False, False)
    assert set(lost) >= {"id", "expected", "observed", "ok", "after_reboot"}
    write_report(str(run.path))
    text = (run.path / "report.md").read_text()
    assert "| vm.swappiness | 1 | 60 | ❌ | yes | no |" in text
    assert "1 tuning check(s) failed: vm.swappiness" in text
    assert [p["id"] for p in data["timeline"]["phases"]] == ["tune_guest", "reboot_verify"]  # tuning phases too


def test_a_run_without_samples_or_install_still_reports(tmp_path: Path):
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T, run_id="empty", target="https://pve:8006", vm_name="vast-lb"),
        ev.RunFinished(ts=T + 5, outcome="blocked", exit_code=3, message="vCPUs exceed the host's cores"),
    ])
    data = analyse(run.path)
    assert data["run"]["samples"] == 0 and data["timeline"]["total_s"] is None
    assert data["cpu"]["steal_pct"]["max"] is None and data["heartbeat"]["max_gap_s"] is None
    assert any("No samples" in m for m in data["missing"])
    assert any("No install phases" in m for m in data["missing"])
    write_report(str(run.path))
    text = (run.path / "report.md").read_text()
    assert "_No CPU samples._" in text and "What this run does not have:" in text
    assert "**Final Status:** ⏹️ BLOCKED (vCPUs exceed the host's cores)" in text


def test_faults_recoveries_and_sampling_gaps_are_visible(tmp_path: Path):
    samples = [agent_sample(T + i) for i in range(0, 60)] + [agent_sample(T + i) for i in range(180, 240)]
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T, run_id="faulty", target="lab", vm_name="vast-lb"),
        ev.RetryScheduled(ts=T + 10, operation="POST /nodes/pve/qemu", attempt=1, error="HTTP 503", delay_s=2.0),
        ev.RecoveredFromFault(ts=T + 13, operation="POST /nodes/pve/qemu", attempts=2, error="HTTP 503"),
        ev.GuestDisconnected(ts=T + 59, reason="connection reset"),
        ev.GuestReconnected(ts=T + 181, attempts=4, down_s=122.0),
        ev.SamplingGapped(ts=T + 180, start=T + 59, end=T + 180, reason="SSH connection lost"),
        *samples,
    ])
    data = analyse(run.path)
    faults = data["faults"]
    assert faults["counts"]["retries"] == 1 and faults["counts"]["recoveries"] == 1
    assert faults["counts"]["connection"] == 2
    assert [(g["start"], g["end"]) for g in data["sampling_gaps"]] == [(T + 59, T + 180)]  # the hole is that gap
    assert data["run"]["samples"] == 120
    write_report(str(run.path))
    text = (run.path / "report.md").read_text()
    assert "| POST /nodes/pve/qemu | 1 | HTTP 503 | 2.0 s |" in text
    assert "SSH connection lost" in text and "never interpolated" in text


def test_an_unannounced_hole_in_the_samples_is_a_sampling_gap(tmp_path: Path):
    run = write_run(tmp_path / "run", [agent_sample(T + i) for i in (0, 1, 2, 30, 31)])
    gaps = analyse(run.path)["sampling_gaps"]
    assert [(g["start"], g["end"]) for g in gaps] == [(T + 2, T + 30)]


def test_a_stall_seen_only_as_a_samples_lateness_still_counts_as_a_gap(tmp_path: Path):
    """The agent reports each second's worst tick lateness; a stall the detector sent no event for
    is counted from it, so the summary never says "worst stall 1.5 s, 0 gaps over 1 s"."""
    samples = [agent_sample(T + i) for i in range(10)]
    samples[4].sample["hb"] = {"max_ms": 1500.0, "n": 20}
    heartbeat = analyse(write_run(tmp_path / "run", [TUNED[0], *samples]).path)["heartbeat"]
    assert heartbeat["max_stall_ms"] == 1500.0
    assert (heartbeat["gaps_over_1s"], heartbeat["gaps_over_2s"]) == (1, 0)


def test_a_synthetic_run_with_faults_reads_end_to_end(tmp_path: Path):
    run = write_synthetic_run(tmp_path / "run", hours=1.0, seed=3)
    data = analyse(run.path)
    assert data["run"]["samples"] == 3600
    assert data["cluster"]["final_state"] == "ONLINE" and data["timeline"]["activation_s"] == 641
    assert len(data["tuning"]) == 22 and all(t["ok"] for t in data["tuning"])
    assert data["sampling_gaps"][0]["duration_s"] == 120
    assert data["faults"]["counts"]["connection"] == 2
    assert [d for d in data["diagnosis"] if d["severity"] == "critical"] == []
    assert len(data["charts"]["steal_max"]) == data["charts"]["columns"]


def test_report_refuses_what_is_not_a_run_directory(tmp_path: Path, capsys):
    with pytest.raises(BadInput):
        write_report(str(tmp_path))
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a vast-loopback run directory" in capsys.readouterr().err
    run = write_run(tmp_path / "run", [ev.RunStarted(ts=T, run_id="r", target="lab", vm_name="v")])
    assert main(["report", str(run.path), "--output", str(tmp_path / "missing" / "r.md")]) == 2
    assert "no such folder" in capsys.readouterr().err


def install_attempt(start: float, *, ok: bool) -> list[ev.Event]:
    """One install attempt: bootstrap (887 s), cluster creation, then ONLINE or a collapse."""
    create = start + 887
    events: list[ev.Event] = [
        ev.StepStarted(ts=start, step="system_checks", title="System checks", group="install"),
        ev.StepFinished(ts=start, step="system_checks", ok=True),
        ev.StepStarted(ts=start, step="bootstrap", title="Bootstrap", group="install"),
        ev.StepFinished(ts=create, step="bootstrap", ok=True),
        ev.StepStarted(ts=create, step="cluster_create", title="Create the cluster", group="install"),
        ev.ClusterStateChanged(ts=create + 90, state="INIT"),
        ev.ClusterStateChanged(ts=create + 99, state="ACTIVATING", previous="INIT"),
    ]
    if ok:
        events += [ev.ClusterStateChanged(ts=create + 740, state="ONLINE", previous="ACTIVATING"),
                   ev.VtaskChanged(ts=create + 1068, name="cluster_deploy", task_id=2, state="COMPLETED"),
                   ev.StepFinished(ts=create + 1074, step="cluster_create", ok=True)]
    else:
        events += [ev.StallDetected(ts=create + 300, start=create + 297, length_ms=3000.0),
                   ev.KernelMessageSeen(ts=create + 344, source="workers.log", match="panic",
                                        text="PANIC[P653:E4:S17:F3c1] vmsg_keepalive_fiber"),
                   ev.ClusterStateChanged(ts=create + 350, state="UNKNOWN", previous="ACTIVATING"),
                   ev.ClusterStateChanged(ts=create + 380, state="INIT", previous="UNKNOWN"),
                   ev.VtaskChanged(ts=create + 400, name="cluster_deploy", task_id=2, state="FAILED"),
                   ev.StepFinished(ts=create + 400, step="cluster_create", ok=False, error="cluster_deploy FAILED")]
    return events


def test_a_rollback_and_retry_reports_both_attempts_and_times_the_one_that_worked(tmp_path: Path):
    first = install_attempt(T, ok=False)
    retry_at = T + 887 + 400 + 120
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T - 1, run_id="retry", target="lab", vm_name="vast-lb"),
        *first,
        ev.SnapshotRolledBack(ts=retry_at - 60, vmid=100, name="pre-install"),
        ev.RemedyApplied(ts=retry_at - 30, id="overcommit", changes={"vcpus": 12}, attempt=2),
        *install_attempt(retry_at, ok=True),
        ev.RunFinished(ts=retry_at + 2000, outcome="online", exit_code=0),
    ])
    data = analyse(run.path)
    timeline = data["timeline"]
    assert timeline["attempts"] == 2
    assert timeline["total_s"] == 887 + 1068  # the second attempt only
    assert timeline["activation_s"] == 641 and timeline["init_to_activating_s"] == 9
    assert [(p["id"], p["attempt"], p["status"]) for p in timeline["phases"] if p["id"] == "cluster_create"] == [
        ("cluster_create", 1, "failed"), ("cluster_create", 2, "done")]
    assert data["cluster"]["final_state"] == "ONLINE"
    ids = {d["id"]: d for d in data["diagnosis"]}
    assert ids["overcommit"]["changes"] == {"vcpus": 12}  # the first attempt's failure stays in the history
    assert "stuck:ACTIVATING" not in ids and "stuck:INIT" not in ids
    assert data["faults"]["counts"]["rollbacks"] == 1 and data["faults"]["remedies"][0]["changes"] == {"vcpus": 12}
    write_report(str(run.path))
    text = (run.path / "report.md").read_text()
    assert "Rolled back to snapshot pre-install" in text and "[attempt 2]" in text


def test_a_step_cut_short_by_a_crash_shows_as_interrupted_after_resume(tmp_path: Path):
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T, run_id="r", target="lab", vm_name="vast-lb"),
        ev.StepStarted(ts=T + 1, step="bootstrap", title="Bootstrap", group="install"),
        ev.RunStarted(ts=T + 300, run_id="r", target="lab", vm_name="vast-lb", resumed=True),
        ev.StepStarted(ts=T + 301, step="bootstrap", title="Bootstrap", group="install"),
        ev.StepFinished(ts=T + 888, step="bootstrap", ok=True),
    ])
    phases = analyse(run.path)["timeline"]["phases"]
    assert [(p["status"], p["attempt"]) for p in phases] == [("interrupted", 1), ("done", 1)]
