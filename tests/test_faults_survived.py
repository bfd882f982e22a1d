"""The success scenario survives the lab's faults in every step, and says so.

`vast-loopback --auto` (in this process, through `tui.cli.main`) runs 12 vCPUs / 120 GiB on the lab
with `lab.faults` in the answers: seeded random faults at every opportunity (Proxmox requests, SSH
sessions, VMS requests), answers lost after a create, a snapshot and a power change was made (a
schedule), and, so that every step is hit however short it is, one SSH drop and one Proxmox error
armed at each step's start (the test arms the lab's one fault plan from the run's own events), SSH
drops while bootstrap and cluster create write their logs, and VMS restarts after bootstrap, during
ACTIVATING and during the wait for cluster_deploy.

It must end as an undisturbed run does: exit 0, ONLINE, `cluster_deploy` COMPLETED, one VM create
and one snapshot request per name in the lab's log, every install log line once, every retry
recovered; and the faults and recoveries must be visible in the events (RetryScheduled,
RecoveredFromFault, GuestDisconnected/GuestReconnected, SamplingGapped) and in the report (`report
--json` and the Markdown's "Faults and Recoveries").

Speed: 240 (measured on the 2-core machine: 24-37 s wall for seeds 1-9, all passing; about 40 s at
120). At 480 and above the engine's own wall-bound parts (the client's 1.5 s wall floor on a Proxmox
timeout, its requests and retries) eat much lab time, which would be the lab's artefact, not the
engine's fault (the lab's own work, a guest's boot, costs none: backend/lab/worldclock.py). For the same reason random faults leave
`pve_timeout` out; one timeout is scheduled (on the VM create, whose answer it loses).
`VLB_FAULT_SEED=N` replays the run with another seed.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from backend import events as ev
from backend.clients import installlog
from backend.lab import provider
from backend.lab.faults import FaultPlan
from backend.lab.guest import lab as guest_lab_mod
from backend.run.bus import EventBus
from backend.secrets import redact
from tests.lab_fixtures import require_lab_guest

pytestmark = [
    pytest.mark.slow, pytest.mark.lab,
    # A session still running in the guest when the lab closed (the monitoring agent's) keeps its pipes
    # until the guest is stopped; collected after the lab's loop has closed, they can only complain.
    pytest.mark.filterwarnings("ignore:Exception ignored in.*BaseSubprocessTransport:pytest.PytestUnraisableExceptionWarning"),
]

SPEED = "240"
ANSWERS = """\
proxmox: {url: lab}
vm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}
lab:
  faults:
    rate: 0.03
    seed: {seed}
    kinds: [ssh_drop, pve_500, pve_503, pve_reset, vms_restart]
    schedule:
      - {kind: pve_timeout, method: POST, path: '/nodes/[^/]+/qemu$', after: true}
      - {kind: pve_reset, method: POST, path: '/snapshot$', after: true}
      - {kind: pve_500, method: POST, path: '/status/start$', after: true}
"""
PVE_KINDS = ("pve_503", "pve_500", "pve_reset")  # armed in turn; timeouts cost wall time, one is scheduled
# Steps that talk to no target within their own span: the sizing works on facts already read,
# guest_connect only logs in (its sessions come in the next steps), the monitor step only starts the
# agent's session in the background, the report is written locally.
QUIET_STEPS = {"size", "guest_connect", "monitor", "write_report"}


class StepArmer:
    """Arms the lab's fault plan from the run's events (a bus subscriber: it runs before the step)."""

    def __init__(self) -> None:
        self.plan: FaultPlan | None = None
        self.steps = 0
        self.log_batches = 0

    def __call__(self, event: ev.Event) -> None:
        plan = self.plan
        if plan is None:
            return
        if isinstance(event, ev.StepStarted):
            plan.arm("ssh_drop")
            plan.arm(PVE_KINDS[self.steps % len(PVE_KINDS)])
            self.steps += 1
            if event.step in ("bootstrap", "wait_deploy", "verify"):
                plan.arm("vms_restart")  # bootstrap: its first VMS request is the check that VMS is up
        elif isinstance(event, ev.ClusterStateChanged) and event.state == "ACTIVATING":
            plan.arm("vms_restart")
        elif isinstance(event, ev.InstallLogAppended):
            self.log_batches += 1
            if event.source == "bootstrap" or self.log_batches % 8 == 0:
                plan.arm("ssh_drop")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stop_guests(run_dir: Path) -> None:
    from backend.lab.guest.machine import LabGuest

    for path in sorted((run_dir / "lab" / "guests").glob("*")):
        if (path / "guest.json").exists():
            LabGuest.load_from(path).stop_namespace(False)


def guest_processes(run_dir: Path) -> list[int]:
    """Processes that hold files of this run's lab guests open (a guest's namespace holder)."""
    found = []
    marker = str(run_dir / "lab" / "guests")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(marker in str(fd.readlink()) for fd in (proc / "fd").iterdir()):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def wait_gone(run_dir: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while guest_processes(run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def faulty_run(tmp_path, monkeypatch):
    require_lab_guest()
    armer = StepArmer()
    make_plan = provider.plan_from_answers

    def plan_from_answers(*args, **kwargs) -> FaultPlan:
        armer.plan = make_plan(*args, **kwargs)
        return armer.plan

    class ArmedBus(EventBus):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.subscribe(armer)

    monkeypatch.setattr(provider, "plan_from_answers", plan_from_answers)
    monkeypatch.setattr("backend.run.service.EventBus", ArmedBus)  # the front door wires the bus
    # An SSH drop cuts within half a lab second of its session: inside the step that opened it.
    monkeypatch.setattr(guest_lab_mod, "DROP_WITHIN_LAB_S", 0.5)
    answers = tmp_path / "answers.yaml"
    answers.write_text(ANSWERS.replace("{seed}", os.environ.get("VLB_FAULT_SEED", "7")))
    run_dir = tmp_path / "run"
    yield answers, run_dir
    stop_guests(run_dir)
    if not wait_gone(run_dir, 3.0):  # e.g. a guest still booting when the run ended: no holder recorded yet
        shutil.rmtree(run_dir / "lab" / "guests", ignore_errors=True)  # a guest without its state ends itself
    assert wait_gone(run_dir, 10.0), "the run's lab guest still runs"
    # Threads that waited for the guest's processes end with them; let them end before pytest goes on
    # (Python 3.11.7's AST bookkeeping does not like company), and collect what the lab's loop left.
    for thread in threading.enumerate():
        if thread.name.startswith(("asyncio-waitpid", "guest-unshare")):
            thread.join(5.0)
    gc.collect()


def test_the_success_scenario_survives_faults_in_every_step_and_says_so(faulty_run, capsys):
    from tui import cli

    answers, run_dir = faulty_run
    code = cli.main(["--auto", str(answers), "--run-dir", str(run_dir), "--speed", SPEED])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]

    events = read_jsonl(run_dir / "events.jsonl")
    by_type: dict[str, list[dict]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    assert by_type["RunFinished"][-1]["outcome"] == "online"
    assert any(e["state"] == "ONLINE" for e in by_type["ClusterStateChanged"])
    assert any(e["name"] == "cluster_deploy" and e["state"] == "COMPLETED" for e in by_type["VtaskChanged"])

    # every step that talks to the target saw at least one fault while it ran
    faults = read_jsonl(run_dir / "lab" / "faults.jsonl")
    started = {e["step"]: e["ts"] for e in by_type["StepStarted"]}
    finished = {e["step"]: e["ts"] for e in by_type["StepFinished"] if e["ok"]}
    assert set(finished) == set(started)
    unhit = {step for step in started
             if not any(started[step] <= f["t"] <= finished[step] for f in faults)}
    assert unhit <= QUIET_STEPS, f"steps without a fault: {sorted(unhit - QUIET_STEPS)}"
    kinds = {f["kind"] for f in faults}
    assert {"ssh_drop", "vms_restart", "pve_500", "pve_503", "pve_reset", "pve_timeout"} <= kinds
    assert sum(f["kind"] == "ssh_drop" and started["bootstrap"] < f["t"] < finished["bootstrap"] for f in faults) >= 3
    activating = next(e["ts"] for e in by_type["ClusterStateChanged"] if e["state"] == "ACTIVATING")
    online = next(e["ts"] for e in by_type["ClusterStateChanged"] if e["state"] == "ONLINE")
    assert any(f["kind"] == "vms_restart" and activating <= f["t"] <= online for f in faults)

    # answers lost after the change was made: checked, never sent again
    requests = read_jsonl(run_dir / "lab" / "pve-requests.jsonl")
    assert any(f["when"] == "after" and f["path"].endswith("/qemu") for f in faults)
    # carried out: logged with status 200, whether or not its answer was then lost (a request cut
    # off before the lab handled it is logged with its fault and no status, and may be sent again)
    done = [r for r in requests if r["method"] == "POST" and r.get("status") == 200]
    assert len([r for r in done if r["path"] == "/nodes/pve/qemu"]) == 1
    snapshots = [r["params"]["snapname"] for r in done if r["path"].endswith("/snapshot")]
    assert sorted(snapshots) == ["pre-install", "vast-online"]

    # the recoveries are in the events
    for kind in ("RetryScheduled", "RecoveredFromFault", "GuestDisconnected", "GuestReconnected", "SamplingGapped"):
        assert by_type.get(kind), f"no {kind} event"
    assert len(by_type["GuestReconnected"]) == len(by_type["GuestDisconnected"])
    assert len(by_type["MonitorStarted"]) > 1  # the agent was started again after drops

    # no install log line lost or repeated: the events hold the guest's logs exactly once
    for source in ("bootstrap", "cluster_create"):
        seen = [line for e in by_type["InstallLogAppended"] if e["source"] == source for line in e["lines"]]
        offsets = [e["offset"] for e in by_type["InstallLogAppended"] if e["source"] == source]
        raw = (run_dir / "lab" / "guests" / "100" / "disk" / "home" / "centos" / ".vast-loopback" / "jobs"
               / source / "log").read_bytes()
        expected, previous = [], ""
        for line in installlog.clean_lines(raw.decode("utf-8", "replace")):
            if line != previous:
                expected.append(redact(line))  # the journal keeps no secret (the VMS password is one)
                previous = line
        assert seen == expected and offsets == sorted(offsets) and offsets[-1] == len(raw)

    # ... and in the report: --json lists them, the Markdown has its section
    assert cli.main(["report", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    report_faults = data["faults"]
    assert report_faults["injected"]["count"] == len(faults)
    assert report_faults["episodes"] and all(e["outcome"] == "recovered" for e in report_faults["episodes"])
    assert report_faults["outages"] and all(o["end"] is not None for o in report_faults["outages"])
    assert data["sampling_gaps"] and data["cluster"]["final_state"] == "ONLINE"
    unannounced = [g for g in data["sampling_gaps"] if g["reason"] == "no sample in the samples file"]
    assert not unannounced, "holes in the samples that no SamplingGapped announced"
    text = (run_dir / "report.md").read_text()
    section = text[text.index("## Faults and Recoveries"):]
    assert f"The target injected {len(faults)} faults on purpose" in section
    reported = by_type["FaultInjected"]  # the target reported each one as it happened, in the journal
    assert [(e["fault"], e["ts"]) for e in reported] == [(f["kind"], f["t"]) for f in faults]
    assert "every one recovered" in section and "came back every time" in section
    assert "| Time | Operation | Retries | Failed with | Backoff | Outcome |" in section
