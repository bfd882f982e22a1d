"""The report's faults and recoveries: retries folded into one row per operation with how it ended,
one row per guest connection outage, the faults the target reported injecting (FaultInjected events),
and samples of a compressed lab (one every few target seconds) are not mistaken for holes."""

from __future__ import annotations

from pathlib import Path

from backend import events as ev
from backend.analysis.deployment import analyse
from backend.analysis.report import write_report
from backend.run.journal import Journal, RunDir

T = 1_800_000_000.0


def write_run(path: Path, events: list[ev.Event]) -> RunDir:
    run = RunDir.create(path)
    journal = Journal(run)
    for event in events:
        journal(event)
    journal.close()
    return run


def sample(t: float, dt: float = 1.0) -> ev.SampleTaken:
    return ev.SampleTaken(ts=t, sample={"t": t, "dt": dt, "cpu": {"user": 40.0, "steal": 0.1},
                                        "mem": {"total": 100, "available": 50, "used": 50}})


FAULTY = [
    ev.RunStarted(ts=T, run_id="faulty", target="lab", vm_name="vast-lb"),
    ev.RetryScheduled(ts=T + 10, operation="VMS GET clusters", attempt=1, error="HTTP 502", delay_s=2.0),
    ev.RetryScheduled(ts=T + 12, operation="VMS GET clusters", attempt=2, error="connection refused", delay_s=4.0),
    ev.RetryScheduled(ts=T + 16, operation="VMS GET clusters", attempt=3, error="connection refused", delay_s=8.0),
    ev.RecoveredFromFault(ts=T + 24, operation="VMS GET clusters", attempts=4, error="HTTP 502"),
    ev.GuestDisconnected(ts=T + 30, reason="Connection lost"),
    ev.GuestReconnected(ts=T + 31.5, attempts=1, down_s=1.5),
    ev.RetryScheduled(ts=T + 40, operation="read VM 100's status", attempt=1, error="timeout", delay_s=1.0),
    ev.RecoveredFromFault(ts=T + 42, operation="read VM 100's status", attempts=2, error="timeout"),
    ev.RetryScheduled(ts=T + 50, operation="read VM 100's status", attempt=1, error="HTTP 503", delay_s=1.0),
    ev.SamplingGapped(ts=T + 90, start=T + 54, end=T + 84, reason="the monitoring stream was lost"),
    *[sample(T + i * 6, dt=6.0) for i in range(0, 10)],  # one sample every 6 s: a lab at --speed 120
    *[sample(T + 90 + i * 6, dt=6.0) for i in range(0, 5)],
]


def test_retries_fold_into_one_row_per_operation_with_its_outcome(tmp_path: Path):
    run = write_run(tmp_path / "run", FAULTY)
    faults = analyse(run.path)["faults"]
    rows = [(e["operation"], e["retries"], e["error"], e["waited_s"], e["outcome"]) for e in faults["episodes"]]
    assert rows == [("VMS GET clusters", 3, "HTTP 502, then connection refused", 14.0, "recovered"),
                    ("read VM 100's status", 1, "timeout", 1.0, "recovered"),
                    ("read VM 100's status", 1, "HTTP 503", 1.0, "not recovered")]
    assert [(o["start"], o["end"], o["down_s"]) for o in faults["outages"]] == [(T + 30, T + 31.5, 1.5)]
    assert faults["summary"] == {"episodes": 3, "recovered": 2, "outages": 1, "longest_outage_s": 1.5,
                                 "gap_s": 30.0}
    assert faults["injected"] is None  # no lab record in this run directory
    assert faults["counts"]["retries"] == 5  # the older keys stay as they were


def test_samples_of_a_compressed_lab_are_not_holes_but_a_dropped_stream_is_one_gap(tmp_path: Path):
    """The stream's gap ends where the next sample's interval begins (t - dt): the hole the samples
    show is that same gap, not a second one."""
    run = write_run(tmp_path / "run", FAULTY)
    gaps = analyse(run.path)["sampling_gaps"]
    assert [(g["start"], g["end"]) for g in gaps] == [(T + 54, T + 84)]


def test_the_markdown_section_reads_as_sentences_then_one_row_per_episode(tmp_path: Path):
    injected = [ev.FaultInjected(ts=T + 9, source="vms", fault="vms_restart"),
                ev.FaultInjected(ts=T + 30, source="ssh", fault="ssh_drop", details={"vmid": 100}),
                ev.FaultInjected(ts=T + 39, source="pve", fault="pve_timeout", details={"method": "GET"})]
    run = write_run(tmp_path / "run", FAULTY + injected)
    write_report(str(run.path))
    text = (run.path / "report.md").read_text()
    section = text[text.index("## Faults and Recoveries"):]
    section = section[:section.index("\n---")]
    assert ("The target injected 3 faults on purpose (1 pve_timeout, 1 ssh_drop, 1 vms_restart). 3 operations "
            "hit a fault and were retried (5 retries); 2 recovered, 1 did not (see below). The SSH connection "
            "to the guest dropped 1 time and came back every time (longest outage 1.5 s). The monitor was not "
            "sampling for 30 s in 1 stretch: shown as gaps, never interpolated.") in section
    assert "| VMS GET clusters | 3 | HTTP 502, then connection refused | 14.0 s | recovered at" in section
    assert "| read VM 100's status | 1 | HTTP 503 | 1.0 s | **not recovered** |" in section
    assert "| Connection lost | 1 |" in section
    assert section.count("\n| ") == 3 + 2 + 1 + 1 + 1  # episodes + headers, the outage, the gap's header and row
    data = analyse(run.path)
    assert data["faults"]["injected"]["by_kind"] == {"pve_timeout": 1, "ssh_drop": 1, "vms_restart": 1}
