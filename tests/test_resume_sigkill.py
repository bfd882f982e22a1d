"""Resume after a crash, proven on the lab: `vast-loopback` is killed with SIGKILL at every phase
boundary (right after each StepStarted and each StepFinished reaches the journal), in the middle
of the long phases and right after the side effects whose result a crash could lose, then resumed
with `--resume RUN_DIR`; the end state must be the one of an uninterrupted run: one VM, its
snapshots once each, the cluster ONLINE with `cluster_deploy` COMPLETED, one VM-create request in
the lab's log, no phase completed twice, every install log line journaled exactly once, nothing
left running in the guest. The kills are chained in one run directory (kill, resume, kill at the
next point, ...), so the whole chain costs about one run plus the restarts.

Also: kills at random points (fixed seed; resumed at other speeds, which re-bases the lab clock), a
failed run resumed once its cause is fixed, a rollback-and-retry killed at its steps' boundaries,
and a run stopped with `--until pre-install` resumed through the wizard's path (`service.resume` +
`service.drive`, no screen).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import events as ev
from backend.run.plan import step_ids
from tests.lab_fixtures import require_lab_guest
from tests.resume_harness import (
    ANSWERS,
    Chain,
    EndState,
    KillPoint,
    end_state,
    in_step,
    job_log,
    journaled_log,
    lab_minutes_into,
    read_jsonl,
    step_finished,
    step_started,
    stop_guests,
    wait_for_no_leftovers,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab]

SPEED = 120  # lab seconds per wall second: a run takes about 35 s; the chain about 75 s (2 cores)
JOBS = ("bootstrap", "cluster_create")


def _event(step: str, kind: str, **fields: str) -> KillPoint:
    """Right after the step's first `kind` event (with these fields) in a process."""
    name = kind + "".join(f":{v}" for v in fields.values())
    return in_step(step, name, lambda e, s: e["type"] == kind and all(str(e.get(k)) == v for k, v in fields.items()))


def _task(step: str) -> KillPoint:
    """Right after the step asked Proxmox for something (the request sent, its result not journaled)."""
    return _event(step, "ProxmoxTaskStarted")


# Kill points inside steps: after a side effect was asked for or done but before the step's result
# reached the journal, and in the middle of the long phases.
INSIDE = {
    "create_vm": [_task("create_vm"),
                  in_step("create_vm", "import", lambda e, s: e["type"] == "StepProgressed"
                          and "transferred 300" in str(e.get("message"))),
                  _event("create_vm", "VmCreated")],
    "first_boot": [_task("first_boot")],
    "grow_root": [_event("grow_root", "RootFilesystemVerified")],
    "tune_stage1": [_event("tune_stage1", "TuningApplied")],
    "tune_stage2": [_event("tune_stage2", "TuningApplied")],
    "shutdown_for_switch": [_task("shutdown_for_switch")],
    "switch_controller": [_task("switch_controller")],
    "second_boot": [_task("second_boot"), _event("second_boot", "GuestAddressResolved")],
    "snapshot_pre_install": [_task("snapshot_pre_install"), _event("snapshot_pre_install", "SnapshotCreated")],
    "bootstrap": [_event("bootstrap", "InstallLogAppended", source="bootstrap")],
    "wait_online": [_event("wait_online", "ClusterStateChanged", state="ACTIVATING")],
    # the reboot done (its GuestRebooted journaled), start_vms.sh running, VAST back (before the result)
    "reboot_test": [_task("reboot_test"), _event("reboot_test", "GuestRebooted"),
                    in_step("reboot_test", "start_vms.sh", lambda e, s: e["type"] == "InstallLogAppended"
                            and str(e.get("source")).startswith("start_vms")),
                    _event("reboot_test", "VastRestarted")],
    "snapshot_online": [_task("snapshot_online"), _event("snapshot_online", "SnapshotCreated")],
    "write_report": [_event("write_report", "ReportWritten")],
}
# Kill points in the middle of a step that lasts a few restarts, taken in the process that runs on
# into it from the step before (the previous step's finish is then passed): the lab's world goes on
# while ours is dead (a restart is seconds of wall time, minutes of lab time at SPEED, more on a
# busy machine), so a phase taken after two or three kills in it may be over before the next
# process gets there. wait_deploy lasts 5.5 lab min (under 3 wall s at SPEED); the bootstrap 14.8
# and ACTIVATING 10.7: their middle, 6 and 4 lab min after their step started, is reached in the
# process that started them, whatever the machine's load.
RUN_INTO = {"bootstrap": [lab_minutes_into("bootstrap", 6)],
            "wait_online": [lab_minutes_into("wait_online", 4)],
            "wait_deploy": [lab_minutes_into("wait_deploy", 0.25)]}
LONG_PHASES = ("mid:create_vm:import", "mid:bootstrap:6min", "mid:wait_online:4min", "mid:wait_deploy:0.25min")


def every_kill_point() -> list[KillPoint]:
    points: list[KillPoint] = []
    for step in step_ids():
        if step in RUN_INTO:  # before the previous step's finish
            points[-1:-1] = RUN_INTO[step]
        points += [step_started(step), *INSIDE.get(step, []), step_finished(step)]
    return points


class Chains:
    """Run directories of one test, their guests powered off and their files removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Chain] = []

    def new(self, name: str, answers: str | None = None) -> Chain:
        chain = Chain(self.root / name, SPEED, **({"answers": answers} if answers else {}))
        self.made.append(chain)
        return chain

    def close(self) -> None:
        for chain in self.made:
            stop_guests(chain.run_dir)
            if not os.environ.get("VLB_KEEP_RESUME_RUNS"):  # keep them to look at a failure
                shutil.rmtree(chain.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def module_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_lab_guest()
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def reference(module_root: Path) -> Iterator[EndState]:
    """The end state of an uninterrupted run."""
    chains = Chains(module_root)
    try:
        chain = chains.new("reference")
        segment = chain.run()
        assert segment.exit_code == 0, segment.output()[-3000:]
        yield end_state(chain.run_dir)
    finally:
        chains.close()


@pytest.fixture
def chains(module_root: Path, request: pytest.FixtureRequest) -> Iterator[Chains]:
    made = Chains(module_root / request.node.name.replace("[", "-").replace("]", ""))
    made.root.mkdir(parents=True, exist_ok=True)
    try:
        yield made
    finally:
        made.close()


def assert_like_reference(chain: Chain, reference: EndState) -> EndState:
    state = end_state(chain.run_dir)
    history = chain.describe()
    assert state.outcome == "online", history
    assert list(state.vms) == list(reference.vms), "not the same VM (exactly one)"
    assert state.vms == reference.vms, "the VM's config, power or snapshots differ from an uninterrupted run"
    assert all(vm["claimed_by_the_run"] for vm in state.vms.values()), "the VM is claimed by the run that made it"
    assert state.vm_creates == 1, "one VM-create request in the lab's log"
    assert state.snapshot_creates == {"pre-install": 1, "vast-online": 1}
    snapshots = sorted(p.name for p in (chain.run_dir / "lab" / "guests").glob("*/snapshots/*"))
    assert snapshots == ["pre-install", "vast-online"], "the guest's disk snapshots"
    assert state.tool_starts == {"bootstrap": 1, "cluster_create": 1, "bringup": 1}, \
        "a VAST tool started twice in the guest"
    assert (state.cluster_state, state.deploy_state) == ("ONLINE", "COMPLETED")
    assert state.completed_twice == [], f"steps completed twice: {state.completed_twice}\n{history}"
    assert state.finished == reference.finished
    assert state.report
    for job in JOBS:
        assert journaled_log(chain.run_dir, job) == job_log(chain.run_dir, job), f"{job}: a line lost or repeated"
    assert wait_for_no_leftovers(chain.run_dir) == []
    # The lab's time stayed one across restarts (and speeds): the install log's own time of ONLINE and
    # the time VMS was seen ONLINE agree within the API's polling.
    online = {e["source"]: e["ts"] for e in read_jsonl(chain.run_dir / "events.jsonl")
              if e["type"] == "ClusterStateChanged" and e["state"] == "ONLINE"}
    assert abs(online["log"] - online["api"]) < 180, online
    return state


def test_killed_at_every_boundary_and_inside_every_phase_ends_as_an_uninterrupted_run(chains, reference):
    chain = chains.new("chain")
    points = every_kill_point()
    killed, passed = chain.run_points(points)
    final = chain.run()
    assert final.exit_code == 0, f"{chain.describe()}\n{final.output()[-3000:]}"
    assert_like_reference(chain, reference)

    # Every step was killed right after it started or right after it finished, but for one that ends
    # within the instant a kill takes (`size` computes for a millisecond); every long phase was
    # killed in its middle.
    history = f"{chain.describe()}\npassed: {passed}"
    unkilled = [step for step in step_ids() if f"start:{step}" not in killed and f"finish:{step}" not in killed]
    assert len(unkilled) <= 2, (unkilled, history)
    assert set(LONG_PHASES) <= set(killed), history
    assert len(killed) >= len(points) - len(RUN_INTO) - 12, history  # a RUN_INTO passes a finish
    events = read_jsonl(chain.run_dir / "events.jsonl")
    assert sum(e["type"] == "VmCreated" for e in events) <= 1  # a resumed create finds its VM (VmFound)
    # The time the process was dead during the install is marked: every hole between two samples
    # (they come every 6 lab seconds) lies in a sampling gap that starts at the last sample before it.
    sampled = sorted(e["ts"] for e in read_jsonl(chain.run_dir / "samples.jsonl"))
    gaps = [(e["start"], e["end"]) for e in events if e["type"] == "SamplingGapped"]
    holes = [(a, b) for a, b in zip(sampled, sampled[1:], strict=False) if b - a > 60]
    assert len(holes) >= 3
    for a, b in holes:
        assert any(start == a and end >= b - 60 for start, end in gaps), ((a, b), gaps)


def test_killed_at_random_points_and_resumed_at_other_speeds_ends_as_an_uninterrupted_run(chains, reference):
    rng = random.Random(20251229)
    chain = chains.new("random")
    for speed in (SPEED, 2 * SPEED, SPEED):  # each resume re-bases the lab clock at its own speed
        count = rng.randrange(30, 160)  # events and samples: a run writes about 600
        point = KillPoint(f"random:{count}", lambda e, s, n=count: len(s.events) >= n)
        segment = chain.run(point, extra=["--speed", f"{speed:g}"])
        assert segment.killed_at, f"{chain.describe()}\n{segment.output()[-3000:]}"
    final = chain.run(extra=["--speed", f"{2 * SPEED:g}"])
    assert final.exit_code == 0, f"{chain.describe()}\n{final.output()[-3000:]}"
    assert_like_reference(chain, reference)


def test_a_failed_run_resumes_once_its_cause_is_fixed(chains):
    chain = chains.new("failed")
    until = ["--until", "pre-install"]
    chain.run_points([step_started("preflight")], extra=until)
    script = next(chain.run_dir.glob("lab/guests/*/disk/vast/bundles/vast_bootstrap.sh"))
    moved = script.with_name("vast_bootstrap.sh.moved")
    script.rename(moved)  # somebody moved the bundle's bootstrap script away on the VM's disk

    failed = chain.run(extra=until)
    assert failed.exit_code == 1 and "preflight" in failed.output(), failed.output()[-2000:]
    moved.rename(script)  # ... and put it back
    fixed = chain.run(extra=until)
    assert fixed.exit_code == 0, fixed.output()[-3000:]

    state = end_state(chain.run_dir)
    assert state.outcome == "stopped" and state.vm_creates == 1 and state.completed_twice == []
    assert state.snapshot_creates == {"pre-install": 1}
    events = read_jsonl(chain.run_dir / "events.jsonl")
    assert [e["ok"] for e in events if e["type"] == "StepFinished" and e["step"] == "preflight"] == [False, True]
    skipped = {e["step"] for e in events if e["type"] == "StepSkipped"}
    assert {"create_vm", "grow_root", "tune_stage2", "second_boot", "verify_after_reboot"} <= skipped
    assert wait_for_no_leftovers(chain.run_dir) == []


def test_a_rollback_and_retry_killed_at_its_boundaries_ends_as_an_uninterrupted_run(chains, reference):
    """97 GiB: the OOM of the field report's first attempt, diagnosed; the retry rolls back to
    pre-install, gives the VM 120 GiB (the field's VM: its guest must see the field run's peak use) and
    installs again, killed at each of its steps' boundaries."""
    chain = chains.new("retry", answers=ANSWERS.replace("memory_gib: 120", "memory_gib: 97"))
    points = [step_started("wait_online")]
    for step in ("rollback@2", "remedy@2", "second_boot@2", "verify_after_reboot@2", "monitor@2", "bootstrap@2"):
        points += [step_started(step), step_finished(step)]
    killed, passed = chain.run_points(points, extra=["--force", "--retry-on-failure"])
    assert len(killed) >= len(points) - 3, f"{chain.describe()}\npassed: {passed}"
    final = chain.run()
    assert final.exit_code == 0, f"{chain.describe()}\n{final.output()[-3000:]}"
    state = end_state(chain.run_dir)
    assert state.vms == reference.vms, "the VM of an uninterrupted run (120 GiB after the remedy)"
    assert state.vm_creates == 1 and state.snapshot_creates == {"pre-install": 1, "vast-online": 1}
    assert (state.cluster_state, state.deploy_state, state.outcome) == ("ONLINE", "COMPLETED", "online")
    assert state.completed_twice == [], state.completed_twice
    events = read_jsonl(chain.run_dir / "events.jsonl")
    remedies = {json.dumps(e["changes"]) for e in events if e["type"] == "RemedyApplied"}
    assert remedies == {json.dumps({"memory_gib": 120})}
    assert wait_for_no_leftovers(chain.run_dir) == []


async def test_a_run_stopped_at_pre_install_resumes_to_the_end_through_the_wizard_path(chains, reference):
    import backend.lab  # noqa: F401  - registers the lab target, as the entry point does
    from backend.run import service

    chain = chains.new("wizard")
    stopped = chain.run(extra=["--until", "pre-install"])
    assert stopped.exit_code == 0, stopped.output()[-3000:]
    assert end_state(chain.run_dir).outcome == "stopped"

    launch = service.resume(chain.run_dir)
    assert launch.options.resume and launch.options.until is None
    seen: list[ev.Event] = []
    code = await service.drive(launch, seen.append)
    assert code == 0, [e for e in seen if isinstance(e, ev.RunFinished)]
    skipped = {e.step for e in seen if isinstance(e, ev.StepSkipped)}
    assert {step for step in step_ids()[: step_ids().index("snapshot_pre_install") + 1]} <= skipped
    assert not any(isinstance(e, ev.VmCreated | ev.VmFound) for e in seen)
    assert_like_reference(chain, reference)
