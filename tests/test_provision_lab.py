"""The provisioning steps against the lab: one VM, created exactly for the OVA's first boot, found
again on a rerun; sizing blockers stop before anything is created; `check` changes nothing."""

from __future__ import annotations

import json

import pytest

from backend.clients.proxmox import ProxmoxClient, VmRef
from backend.lab import facts
from backend.model import vmconfig
from backend.run.engine import Engine, RunContext
from backend.run.journal import Journal, RunDir
from backend.steps import hostcheck, provision
from tests.proxmox_lab_support import Recorder, lab_answers, open_lab, requests_log, requests_to
from tests.proxmox_lab_support import run_provision as _provision

OVA_PREFIX = "local:import/vast-5.4.0-loopback.ova/"


@pytest.fixture
async def seed(tmp_path):
    target = await open_lab(tmp_path / "lab", "seed")
    yield target
    await target.close()


async def test_the_first_run_creates_one_vm_exactly_for_the_ovas_first_boot(tmp_path, seed):
    code, rec, ctx = await _provision(tmp_path, seed, lab_answers("seed"))
    assert code == 0, [e.to_dict() for e in rec.of("RunFinished")]
    creates = requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")
    assert len(creates) == 1
    params = creates[0]["params"]
    scsi0 = params.pop("scsi0")
    assert scsi0.startswith(f"local-lvm:0,import-from={OVA_PREFIX}") and scsi0.endswith(".vmdk")
    assert params == {
        "vmid": "100", "name": "vast-loopback", "machine": "q35", "ostype": "l26",
        "scsihw": "pvscsi", "cpu": "host", "sockets": "1", "cores": "12", "memory": str(120 * 1024),
        "balloon": "0", "numa": "0", "agent": "1", "net0": "virtio,bridge=vmbr0", "boot": "order=scsi0",
        "tags": "vast-loopback", "description": vmconfig.claim_note(ctx.run.run_id),
    }
    # 'local' holds the OVA but not images: it gets 'images' once so Proxmox can extract the disk, and
    # loses it again once the import is done (tests/test_host_changes_lab.py)
    puts = requests_to(tmp_path / "lab", "PUT", "/storage/local")
    assert len(puts) == 2 and "images" in puts[0]["params"]["content"].split(",")
    assert "images" not in puts[1]["params"]["content"].split(",")

    kinds = [e.kind for e in rec.events]
    assert kinds.count("VmCreated") == 1 and "VmFound" not in kinds
    host = rec.of("HostFactsGathered")[0]
    assert (host.node, host.facts["cores"], host.facts["threads"]) == ("pve", 12, 24)
    sizing = rec.of("SizingEvaluated")[0]
    assert sizing.recommendation["vcpus"] == 12 and sizing.recommendation["memory_gib"] == 120
    address = rec.of("GuestAddressResolved")[0]
    # vmbr0 is a plain bridge: the address is the LAN DHCP's, found by the VM's MAC in the jump host's
    # neighbour table (the lab's jump host shares vmbr0's layer 2)
    assert address.source == "neighbour-table" and address.address == f"{facts.LAN_PREFIX}.{facts.LAN_DHCP_FIRST}"
    assert ctx.facts.guest_address == address.address and ctx.facts.vmid == 100
    assert any(e.kind == "StepProgressed" and e.step == "create_vm" and e.fraction == 1.0 for e in rec.events)

    client = await ProxmoxClient.connect(seed)
    try:
        vm = VmRef("pve", 100, "vast-loopback")
        config = await client.vm_config(vm)
        status = await client.status(vm)
    finally:
        await client.close()
    assert vmconfig.drive_size_gib(config["scsi0"]) == 1000  # grown from the OVA's 600 GiB
    assert config["scsihw"] == "pvscsi" and config["balloon"] in (0, "0") and config["cpu"] == "host"
    assert status["status"] == "running"


async def test_a_second_run_with_the_same_vm_name_refuses_the_vm_of_the_first(tmp_path, seed):
    code, _, first = await _provision(tmp_path, seed, lab_answers("seed"), "first")
    assert code == 0
    owner = first.run.run_id
    before = len(requests_log(tmp_path / "lab"))
    code, rec, second = await _provision(tmp_path, seed, lab_answers("seed"), "second")
    assert code == 1
    finished = rec.of("RunFinished")[0]
    assert f"VM 100 'vast-loopback' on pve belongs to run {owner}" in finished.message
    assert second.run.run_id in finished.message and "not adopted" in finished.message
    hint = [e for e in rec.of("StepFinished") if not e.ok][0].error
    assert "--resume" in hint and "pick another vm.name" in hint
    assert not rec.of("VmFound") and not rec.of("VmCreated")
    assert not [r for r in requests_log(tmp_path / "lab")[before:] if r["method"] != "GET"]  # it changed nothing


async def test_a_vm_whose_notes_name_no_run_is_not_adopted(tmp_path, seed):
    assert (await _provision(tmp_path, seed, lab_answers("seed"), "first"))[0] == 0
    client = await ProxmoxClient.connect(seed)
    try:  # notes edited by hand (or a VM made by an older vast-loopback): tagged, but unclaimed
        await client.update_config(VmRef("pve", 100, "vast-loopback"), {"description": "my notes"})
    finally:
        await client.close()
    code, rec, _ = await _provision(tmp_path, seed, lab_answers("seed"), "second")
    assert code == 1
    assert "belongs to another vast-loopback run (its notes name no run)" in rec.of("RunFinished")[0].message


async def test_resume_rechecks_the_vm_and_skips_what_is_still_true(tmp_path, seed):
    code, _, ctx = await _provision(tmp_path, seed, lab_answers("seed"), "run")
    assert code == 0
    run_dir = tmp_path / "run"
    meta = RunDir.open(run_dir)
    meta.write_meta({**meta.read_meta(), "status": "running"})  # as if it had been killed
    code, rec, _ = await _provision(tmp_path, seed, lab_answers("seed"), resume_dir=run_dir)
    assert code == 0
    assert [e.step for e in rec.of("StepSkipped")] == ["connect", "size", "ova", "create_vm", "first_boot"]
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1


async def test_resume_after_the_vm_was_stopped_starts_it_again(tmp_path, seed):
    assert (await _provision(tmp_path, seed, lab_answers("seed"), "run"))[0] == 0
    client = await ProxmoxClient.connect(seed)
    try:
        await client.stop(VmRef("pve", 100, "vast-loopback"))
    finally:
        await client.close()
    meta = RunDir.open(tmp_path / "run")
    meta.write_meta({**meta.read_meta(), "status": "running"})
    code, rec, ctx = await _provision(tmp_path, seed, lab_answers("seed"), resume_dir=tmp_path / "run")
    assert code == 0
    assert "first_boot" not in [e.step for e in rec.of("StepSkipped")]
    assert [e.action for e in rec.of("VmPowerChanged")] == ["start"]
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1


async def test_a_fixed_guest_address_is_taken_from_the_answers(tmp_path, seed):
    address = f"{facts.LAN_PREFIX}.{facts.LAN_DHCP_FIRST}"  # what the lab's network gives its first VM
    answers = lab_answers("seed", guest={"address": address})
    code, rec, _ = await _provision(tmp_path, seed, answers)
    assert code == 0
    assert [(e.address, e.source) for e in rec.of("GuestAddressResolved")] == [(address, "answers")]


async def test_a_vm_of_the_same_name_not_made_by_us_is_left_alone(tmp_path, seed):
    client = await ProxmoxClient.connect(seed)
    try:
        upid = await client.request("POST", ("nodes", "pve", "qemu"), {"vmid": 555, "name": "vast-loopback",
                                                                       "memory": 1024}, op="create a stranger")
        await client.wait_task(upid)
    finally:
        await client.close()
    code, rec, _ = await _provision(tmp_path, seed, lab_answers("seed"))
    assert code == 1
    message = rec.of("RunFinished")[0].message
    assert "555" in message and "not created by vast-loopback" in message
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1  # only the stranger


async def test_sizing_blockers_stop_before_anything_is_created(tmp_path):
    target = await open_lab(tmp_path / "lab", "small")
    try:
        code, rec, _ = await _provision(tmp_path, target, lab_answers("small"))
    finally:
        await target.close()
    assert code == 3
    finished = rec.of("RunFinished")[0]
    assert finished.outcome == "blocked" and "--force" in finished.message
    assert not [r for r in requests_log(tmp_path / "lab") if r["method"] != "GET"]


async def test_too_many_vcpus_for_the_cores_is_blocked_as_in_attempt_2(tmp_path, seed):
    code, rec, _ = await _provision(tmp_path, seed, lab_answers("seed", vm={"vcpus": 24}))
    assert code == 3
    blockers = [f["id"] for f in rec.of("SizingEvaluated")[0].findings if f["severity"] == "blocker"]
    assert blockers == ["vcpus-over-cores"]
    assert not requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")


async def test_big_cluster_places_the_vm_on_the_best_node_with_numa(tmp_path):
    target = await open_lab(tmp_path / "lab", "big")
    try:
        code, rec, ctx = await _provision(tmp_path, target, lab_answers("big"))
    finally:
        await target.close()
    assert code == 0
    assert ctx.facts.node == "pve2"  # most free memory among equal nodes
    create = requests_to(tmp_path / "lab", "POST", "/nodes/pve2/qemu")[0]["params"]
    # 24 vCPUs span both of the host's 2 x 16-core sockets: 2 sockets, one NUMA node each, as on the host
    assert (create["sockets"], create["cores"], create["numa"]) == ("2", "12", "1")
    assert create["memory"] == str(131 * 1024)  # the guest sees the report's 128 GB+


@pytest.mark.parametrize(
    ("profile", "ok", "node", "blockers", "rec"),
    [
        ("seed", True, "pve", [], (12, 120, 1000)),
        ("small", False, "pve-small", ["host-memory-too-small", "memory-below-minimum"], (8, 60, 930)),
        ("big", True, "pve2", [], (24, 131, 1000)),
    ],
)
async def test_check_host_on_each_profile_changes_nothing(tmp_path, profile, ok, node, blockers, rec):
    target = await open_lab(tmp_path / "lab", profile)
    try:
        result = await hostcheck.check_host(lab_answers(profile), target)
    finally:
        await target.close()
    assert result["ok"] is ok
    assert result["host"]["node"] == node and result["host"]["pve_version"]
    assert sorted(f["id"] for f in result["findings"] if f["severity"] == "blocker") == sorted(blockers)
    recommendation = result["recommendation"]
    assert (recommendation["vcpus"], recommendation["memory_gib"])  == rec[:2]
    assert all(set(f) == {"id", "severity", "message", "remedy", "evidence"} for f in result["findings"])
    assert not [r for r in requests_log(tmp_path / "lab") if r["method"] != "GET"]


async def test_check_host_reports_a_missing_ova_and_bridge(tmp_path, seed):
    answers = lab_answers("seed", ova="local:import/other.ova", vm={"bridge": "vmbr9"})
    result = await hostcheck.check_host(answers, seed)
    blockers = {f["id"]: f for f in result["findings"] if f["severity"] == "blocker"}
    assert set(blockers) == {"ova-missing", "bridge-missing"}
    assert "Upload" in blockers["ova-missing"]["remedy"] and "vmbr0" in blockers["bridge-missing"]["remedy"]


@pytest.mark.parametrize(("profile", "exit_code"), [("seed", 0), ("small", 3)])
def test_cli_check_json_exit_codes(tmp_path, capsys, profile, exit_code):
    from tui.cli import main

    answers = tmp_path / "answers.yaml"
    answers.write_text(f"proxmox: {{url: lab}}\nlab: {{host_profile: {profile}}}\n")
    assert main(["check", str(answers), "--json"]) == exit_code
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"ok", "findings", "recommendation", "host"}
    assert result["ok"] is (exit_code == 0)
    assert set(result["recommendation"]) >= {"vcpus", "memory_gib", "disk_gib"}
    assert result["host"]["cores"] == {"seed": 12, "small": 8}[profile]


@pytest.mark.parametrize("seed_value", [3, 11])
async def test_provisioning_survives_random_api_faults_without_a_second_vm(tmp_path, seed_value):
    faults = {"rate": 0.2, "seed": seed_value, "kinds": ["pve_500", "pve_503", "pve_reset", "pve_timeout"]}
    answers = lab_answers("seed", lab={"host_profile": "seed", "faults": faults})
    from backend.target import TargetOptions, open_target

    target = await open_target(answers, TargetOptions(speed=600, state_dir=tmp_path / "lab"))
    try:
        run = RunDir.create(tmp_path / "run", answers.vm.name)
        rec = Recorder(target.clock)
        ctx = RunContext(answers=answers, target=target, bus=rec.bus, run=run)
        # a short read timeout so that injected hangs cost a second, not the default floor
        ctx.services["proxmox"] = await ProxmoxClient.connect(target, rec.bus, timeout=(5.0, 1.0))
        code = await Engine(ctx, provision.steps()).run()
    finally:
        await target.close()
    assert code == 0, rec.of("RunFinished")[0].message
    injected = [json.loads(line) for line in (tmp_path / "lab" / "faults.jsonl").read_text().splitlines()]
    assert len(injected) >= 5
    assert rec.of("RetryScheduled") and rec.of("RecoveredFromFault")
    creates = requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")
    assert len([c for c in creates if c.get("status") == 200 or c.get("fault")]) >= 1
    again = await open_lab(tmp_path / "lab", "seed")
    client = await ProxmoxClient.connect(again)
    try:
        ours = [vm for vm in await client.vms() if vm.get("name") == "vast-loopback"]
    finally:
        await client.close()
        await again.close()
    assert len(ours) == 1


async def _interrupted_create(client: ProxmoxClient, run: RunDir) -> None:
    """`run` sent its create and died before the task ended (before its claim could be read back)."""
    await client.add_storage_content("local", "images")
    disk = (await client.ova_metadata("pve", "local:import/vast-5.4.0-loopback.ova"))["disks"]["scsi0"]
    spec = vmconfig.VmSpec(name="vast-loopback", vcpus=12, memory_gib=120, storage="local-lvm",
                           bridge="vmbr0", vmid=100, run_id=run.run_id)
    await client.request("POST", ("nodes", "pve", "qemu"), vmconfig.first_boot_config(spec, [disk["volid"]]),
                         op="create VM 100")
    assert (await client.vm_config(VmRef("pve", 100))).get("name") is None  # only 'lock: create'


@pytest.mark.parametrize("who", ["resume", "another run"])
async def test_a_create_still_importing_from_an_interrupted_run_is_awaited_not_repeated(tmp_path, who):
    # slower lab: the OVA import (about 6 lab minutes) must still run when the new run looks
    target = await open_lab(tmp_path / "lab", "seed", speed=120)
    try:
        interrupted = RunDir.create(tmp_path / "interrupted", "vast-loopback")
        client = await ProxmoxClient.connect(target)
        try:
            await _interrupted_create(client, interrupted)
        finally:
            await client.close()
        if who == "resume":
            code, rec, ctx = await _provision(tmp_path, target, lab_answers("seed"), resume_dir=interrupted.path)
        else:
            code, rec, ctx = await _provision(tmp_path, target, lab_answers("seed"), "other")
    finally:
        await target.close()
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1
    assert any("still being created" in e.message for e in rec.of("StepProgressed"))
    if who == "resume":  # the run that created it adopts it once the import ended
        assert code == 0, rec.of("RunFinished")[0].message
        assert [e.vmid for e in rec.of("VmFound")] == [100] and ctx.facts.vmid == 100
    else:  # another run waits for the create to end, reads the claim and refuses the VM
        assert code == 1
        assert f"belongs to run {interrupted.run_id}" in rec.of("RunFinished")[0].message
        assert not rec.of("VmFound") and ctx.facts.vmid is None


async def test_a_resume_does_not_need_the_ova_once_its_vm_exists(tmp_path, seed):
    assert (await _provision(tmp_path, seed, lab_answers("seed"), "run"))[0] == 0
    run = RunDir.open(tmp_path / "run")
    events = (run.path / "events.jsonl").read_text().splitlines(keepends=True)
    ova_started = next(i for i, line in enumerate(events) if '"StepStarted"' in line and '"ova"' in line)
    (run.path / "events.jsonl").write_text("".join(events[:ova_started]))  # its journal ends before `ova`
    run.write_meta({**run.read_meta(), "status": "running"})
    moved = lab_answers("seed", ova="local:import/cleaned-up.ova")
    code, rec, _ = await _provision(tmp_path, seed, moved, resume_dir=run.path)
    assert code == 0, rec.of("RunFinished")[0].message
    assert any("the OVA is not needed" in e.message for e in rec.of("StepProgressed"))
    result = await hostcheck.check_host(moved, seed)
    assert result["ok"] and "vm-exists" in [f["id"] for f in result["findings"]]


async def test_a_fixed_vmid_already_taken_is_a_clear_error(tmp_path, seed):
    client = await ProxmoxClient.connect(seed)
    try:
        await client.wait_task(await client.request("POST", ("nodes", "pve", "qemu"),
                                                    {"vmid": 555, "name": "other", "memory": 1024}, op="create"))
    finally:
        await client.close()
    code, rec, _ = await _provision(tmp_path, seed, lab_answers("seed", vm={"vmid": 555}))
    assert code == 1
    assert "VMID 555 is already used by VM 'other' on pve" in rec.of("RunFinished")[0].message
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1  # only the other VM's


async def test_the_token_secret_never_reaches_the_journal_events_or_the_request_log(tmp_path, monkeypatch):
    secret = "b0d1c5e2-6f3a-4c77-9e21-known-secret"
    monkeypatch.setenv("VLB_TEST_TOKEN", secret)
    answers = lab_answers("seed", proxmox={"url": "lab", "token_id": "root@pam!vlb",
                                           "token_secret": "env:VLB_TEST_TOKEN"})
    from backend.target import TargetOptions, open_target

    target = await open_target(answers, TargetOptions(speed=600, state_dir=tmp_path / "run" / "lab"))
    try:
        assert target.token_secret.reveal() == secret  # the lab authenticates with the user's token
        run = RunDir.create(tmp_path / "run-journal", answers.vm.name)
        rec = Recorder(target.clock)
        journal = Journal(run)
        rec.bus.subscribe(journal)
        ctx = RunContext(answers=answers, target=target, bus=rec.bus, run=run)
        code = await Engine(ctx, provision.steps()).run()
        journal.close()
    finally:
        await target.close()
    assert code == 0
    assert all(secret not in json.dumps(e.to_dict(), default=str) for e in rec.events)
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "run-journal").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
