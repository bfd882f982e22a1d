"""The seed's post-install checklist on the lab, end to end (`vast-loopback --auto`): after ONLINE the
guest reboots, start_vms.sh brings VAST back and the cluster is ONLINE again before `vast-online` is
taken; where start_vms.sh fails (the lab's other answer: the node containers do not come back with
Docker) the run fails with exit 1 and a diagnosis, and no `vast-online` is taken of a broken cluster;
`vast: {reboot_test: false}` skips it. Restoring `vast-online` (taken without RAM state) is the same
path: roll back through the lab's Proxmox API, start the VM, run start_vms.sh, ONLINE.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import install, prepare, restart
from backend.analysis import analyse
from backend.bus import EventBus
from backend.engine import RunContext
from backend.events import VastRestarted
from backend.provision import proxmox_client
from backend.proxmox import VmRef
from backend.report import render
from backend.target import TargetOptions, open_target
from tests.lab_fixtures import require_lab_guest
from tests.resume_harness import ANSWERS, Chain, end_state, read_jsonl, stop_guests
from tui.runner import resume_launch

pytestmark = [pytest.mark.slow, pytest.mark.lab]

SPEED = 120
WARNING = "WARNING! - added extra volume mounts to common params: -v /file_server:/file_server"


def _run(root: Path, name: str, answers: str) -> Chain:
    chain = Chain(root / name, SPEED, answers=answers)
    chain.run()
    return chain


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Chain]]:
    require_lab_guest()
    root = tmp_path_factory.mktemp("reboot-test")
    made: dict[str, Chain] = {}
    try:
        yield made
    finally:
        for chain in made.values():
            stop_guests(chain.run_dir)
        shutil.rmtree(root, ignore_errors=True)


def _chain(runs: dict[str, Chain], tmp_path_factory: pytest.TempPathFactory, name: str, answers: str) -> Chain:
    if name not in runs:
        runs[name] = _run(tmp_path_factory.mktemp(name), name, answers)
    return runs[name]


def _events(chain: Chain, kind: str) -> list[dict]:
    return [e for e in read_jsonl(chain.run_dir / "events.jsonl") if e["type"] == kind]


def test_after_online_the_guest_reboots_and_start_vms_brings_the_cluster_back_before_the_snapshot(
        runs, tmp_path_factory):
    chain = _chain(runs, tmp_path_factory, "works", ANSWERS)
    assert chain.segments[-1].exit_code == 0, chain.segments[-1].output()[-3000:]
    state = end_state(chain.run_dir)
    assert state.outcome == "online" and state.snapshot_creates == {"pre-install": 1, "vast-online": 1}
    assert state.tool_starts == {"bootstrap": 1, "cluster_create": 1, "bringup": 1}
    steps = [e["step"] for e in _events(chain, "StepFinished") if e["ok"]]
    assert steps[-3:] == ["reboot_test", "snapshot_online", "write_report"]
    rebooted = [e for e in _events(chain, "GuestRebooted") if "reboot test" in e["why"]]
    restarted = _events(chain, "VastRestarted")
    snapshot = next(e for e in _events(chain, "SnapshotCreated") if e["name"] == "vast-online")
    assert len(rebooted) == 1 and len(restarted) == 1 and restarted[0]["ok"]
    assert rebooted[0]["ts"] < restarted[0]["ts"] < snapshot["ts"]  # ONLINE again, then the snapshot
    assert restarted[0]["output"][-1] == "start_vms.sh: done"
    assert {c["name"]: c["state"] for c in restarted[0]["containers"]}["vast_vms"] == "running"
    # right after the boot, vast_vms (--rm) was gone and the VMS did not answer, until start_vms.sh
    progress = [e["message"] for e in _events(chain, "StepProgressed") if e["step"] == "reboot_test"]
    assert any("no vast_vms container; VMS does not answer" in m for m in progress), progress
    titles = {e["step"]: e["title"] for e in _events(chain, "StepStarted")}
    assert titles["reboot_test"] == "Reboot and start_vms.sh"
    report = (chain.run_dir / "report.md").read_text()
    assert "| Reboot and start_vms.sh | finish |" in report and "Reboot and start_vms.sh: **passed**" in report
    # vman.sh saw EXTRA_VOLUME_MOUNTS exported as the field's script did, and said so as the field log shows
    created = [line for e in _events(chain, "InstallLogAppended") if e["source"] == "cluster_create"
               for line in e["lines"]]
    assert WARNING in created


def test_where_start_vms_fails_after_a_reboot_the_run_is_diagnosed_and_no_snapshot_is_taken(runs, tmp_path_factory):
    chain = _chain(runs, tmp_path_factory, "fails", ANSWERS + "lab: {start_vms_after_reboot: fails}\n")
    segment = chain.segments[-1]
    assert segment.exit_code == 1, segment.output()[-3000:]
    state = end_state(chain.run_dir)
    assert state.outcome == "failed" and state.snapshot_creates == {"pre-install": 1}  # no vast-online
    restarted = _events(chain, "VastRestarted")
    assert len(restarted) == 1 and not restarted[0]["ok"]
    assert "start_vms.sh ended with exit 1" in restarted[0]["problem"]
    assert "is not running" in restarted[0]["problem"]  # docker exec into the stopped cnode-1
    assert {c["state"] for c in restarted[0]["containers"] if c["name"].startswith("vast_platform")} == {"exited"}
    diagnosis = [i for e in _events(chain, "DiagnosisMade") for i in e["items"] if i["id"] == "restart_failed"]
    assert diagnosis and diagnosis[0]["severity"] == "critical"
    assert "did not come back with Docker" in diagnosis[0]["remedy"] and "vman.sh" in diagnosis[0]["remedy"]
    assert any("vast_platform_11.0.0.1-4100 exited" in ev["text"] for ev in diagnosis[0]["evidence"])
    assert "VAST did not come back after the reboot" in segment.output()
    report = render(analyse(chain.run_dir))  # what `vast-loopback report RUN_DIR` writes for a failed run
    assert "Reboot and start_vms.sh: **failed**" in report and "FAILED (restart_failed)" in report


def test_the_reboot_test_can_be_turned_off(runs, tmp_path_factory):
    chain = _chain(runs, tmp_path_factory, "off", ANSWERS + "vast: {reboot_test: false}\n")
    assert chain.segments[-1].exit_code == 0, chain.segments[-1].output()[-3000:]
    assert end_state(chain.run_dir).snapshot_creates == {"pre-install": 1, "vast-online": 1}
    assert not _events(chain, "VastRestarted")
    assert not [e for e in _events(chain, "GuestRebooted") if "reboot test" in e["why"]]
    finished = next(e for e in _events(chain, "StepFinished") if e["step"] == "reboot_test")
    assert finished["result"] == {"reboot_test": "off"}
    assert "Reboot and start_vms.sh: not run" in (chain.run_dir / "report.md").read_text()


async def _lab_context(run_dir: Path) -> RunContext:
    """The run's lab opened again (its world on disk), and a context with the run's facts."""
    launch = resume_launch(run_dir, speed=SPEED)
    target = await open_target(launch.answers, TargetOptions(speed=SPEED, state_dir=run_dir / "lab", resume=True))
    ctx = RunContext(answers=launch.answers, target=target, bus=EventBus(target.clock), run=launch.run)
    for result in launch.run.finished_steps().values():
        ctx.facts.update(result)
    return ctx


async def _boot(ctx: RunContext, snapshot: str | None) -> str:
    """Stop the VM, roll it back to `snapshot` (if given) through the API, start it, reconnect."""
    client = await proxmox_client(ctx)
    vm = VmRef(node=str(ctx.facts["node"]), vmid=int(ctx.facts["vmid"]), name=ctx.answers.vm.name)
    if (await client.status(vm)).get("status") != "stopped":
        await client.stop(vm)
    if snapshot:
        await client.rollback(vm, snapshot)
    await client.start(vm)
    await prepare._wait_for_agent(ctx, vm, "after the start")
    await prepare.guest_client(ctx, fresh=True)
    return await prepare.boot_id(ctx)


async def test_restoring_vast_online_is_a_boot_and_start_vms_brings_the_cluster_back(runs, tmp_path_factory):
    chain = _chain(runs, tmp_path_factory, "works", ANSWERS)
    assert chain.segments[-1].exit_code == 0
    ctx = await _lab_context(chain.run_dir)
    seen: list = []
    ctx.bus.subscribe(seen.append)
    try:
        boot_id = await _boot(ctx, "vast-online")
        assert not await (await install.vms_client(ctx)).reachable()  # no RAM state: VMS is not running
        result = await restart.restart_vast(ctx, boot_id, ctx.clock.now())
        cluster = await (await install.vms_client(ctx)).cluster()
    finally:
        await ctx.close()
        await ctx.target.close()
    assert result["restarted_with"] == "start_vms.sh" and cluster["state"] == "ONLINE"
    assert [e.ok for e in seen if isinstance(e, VastRestarted)] == [True]


async def test_where_start_vms_fails_the_remedys_vman_start_brings_the_cluster_back(runs, tmp_path_factory):
    chain = _chain(runs, tmp_path_factory, "fails", ANSWERS + "lab: {start_vms_after_reboot: fails}\n")
    assert chain.segments[-1].exit_code == 1
    ctx = await _lab_context(chain.run_dir)
    try:
        await _boot(ctx, None)
        guest = await prepare.guest_client(ctx)
        started = await guest.run(install.vman_start_command(ctx.answers.vast.build), timeout=600)
        state = await restart.wait_online(ctx, timeout_s=300)
    finally:
        await ctx.close()
        await ctx.target.close()
    assert started.exit_status == 0, started.stderr
    assert WARNING in started.stdout  # the remedy exports EXTRA_VOLUME_MOUNTS as the install did
    assert state == "ONLINE"
