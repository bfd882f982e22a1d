"""The Proxmox client over HTTPS (real proxmoxer) against the lab: facts, TLS, auth, VMs, retries."""

from __future__ import annotations

import dataclasses
import json
import re
import socket

import pytest

from backend.clients.proxmox import ProxmoxApiError, ProxmoxClient
from backend.errors import RunFailed, TargetUnreachable
from backend.lab.faults import FaultPlan, ScheduledFault
from backend.lab.profiles import PROFILES
from backend.model import vmconfig
from backend.secrets import Secret
from tests.proxmox_lab_support import Recorder, open_lab, requests_log, requests_to, start_world, world_target

OVA = "local:import/vast-5.4.0-loopback.ova"

# physical cores, threads, sockets as the host profile defines them
EXPECTED_CPU = {"seed": (12, 24, 1), "small": (8, 16, 1), "big": (32, 64, 2)}


@pytest.fixture
async def lab(tmp_path):
    opened = []

    async def open_(profile: str = "seed"):
        target = await open_lab(tmp_path / "lab", profile)
        opened.append(target)
        return target

    yield open_
    for target in opened:
        await target.close()


@pytest.mark.parametrize("profile", ["seed", "small", "big"])
async def test_host_facts_count_physical_cores_and_available_memory(lab, profile):
    target = await lab(profile)
    client = await ProxmoxClient.connect(target)
    try:
        inventory = await client.inventory()
        raw = await client.get("nodes", inventory.nodes[0].node, "status", op="read status")
    finally:
        await client.close()
    host = PROFILES[profile]
    assert inventory.pve_version == host.pve_version
    assert [n.node for n in inventory.nodes] == sorted(n.node for n in host.nodes)
    assert inventory.fingerprint == target.fingerprint
    for node in inventory.nodes:
        expected = next(n for n in host.nodes if n.node == node.node)
        assert (node.cores, node.threads, node.sockets) == EXPECTED_CPU[profile]
        assert node.mem_total == expected.mem_total
        # total - used is the real available memory on PVE 8.4 and 9.x alike (used: the host's own
        # and its running VMs', such as the others' VMs on big's nodes)
        running = sum(vm.memory_mib * 1024**2 for vm in expected.vms if vm.status == "running")
        assert node.mem_available == expected.mem_total - expected.mem_used - running
        assert node.storage("local-lvm").holds("images") and node.storage("local").holds("import")
        assert "vmbr0" in node.bridges and node.hvm and node.online
    # a client reading `free` as available would be wrong by the page cache
    memory = raw["memory"]
    assert memory["free"] < memory["total"] - memory["used"]
    if profile == "big":
        assert inventory.cluster_name == "lab-cluster" and len(inventory.nodes) == 3


async def test_a_pinned_certificate_is_accepted_and_any_other_refused_naming_both(lab):
    target = await lab()
    client = await ProxmoxClient.connect(target)
    assert client.pve_version == "9.1.3"
    await client.close()

    wrong_pin = "AB:" * 31 + "AB"
    with pytest.raises(RunFailed) as info:
        await ProxmoxClient.connect(dataclasses.replace(target, fingerprint=wrong_pin, closer=None))
    text = str(info.value)
    assert "does not match the pinned fingerprint" in text
    assert wrong_pin in text and target.fingerprint in text


async def test_an_unpinned_self_signed_certificate_is_refused_with_the_fingerprint_to_pin(lab):
    target = await lab()
    with pytest.raises(RunFailed) as info:
        await ProxmoxClient.connect(dataclasses.replace(target, fingerprint=None, closer=None))
    assert "is not trusted" in info.value.message
    assert target.fingerprint in (info.value.hint or "")


async def test_a_wrong_token_secret_is_one_clear_401_never_retried(lab, tmp_path):
    target = await lab()
    wrong = dataclasses.replace(target, token_secret=Secret("definitely-not-the-secret"), closer=None)
    with pytest.raises(ProxmoxApiError) as info:
        await ProxmoxClient.connect(wrong)
    error = info.value
    assert error.status == 401
    assert f"authentication failed at 127.0.0.1:{target.proxmox_url.rsplit(':', 1)[1]}" in error.message
    assert target.token_id in error.message
    assert "privilege separation" in (error.hint or "")
    assert "definitely-not-the-secret" not in str(error)
    assert len(requests_to(tmp_path / "lab", "GET", "/version")) == 1


async def test_an_unreachable_host_names_the_host_and_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from backend.clock import Clock
    from backend.target import Target

    target = Target(label="x", proxmox_url=f"https://127.0.0.1:{port}", token_id="root@pam!vlb",
                    token_secret=Secret("unused-secret-1"), clock=Clock.wall(), fingerprint="AB:" * 31 + "AB")
    with pytest.raises(TargetUnreachable) as info:
        await ProxmoxClient.connect(target)
    assert f"127.0.0.1:{port}" in info.value.message and "refused" in info.value.message


async def _create(client: ProxmoxClient, node: str = "pve", name: str = "vast-loopback"):
    await client.add_storage_content("local", "images")
    metadata = await client.ova_metadata(node, OVA)
    disk = metadata["disks"]["scsi0"]["volid"]
    spec = vmconfig.VmSpec(name=name, vcpus=12, memory_gib=120, storage="local-lvm", bridge="vmbr0")
    return await client.create_vm(node, vmconfig.first_boot_config(spec, [disk]))


async def test_tasks_are_awaited_with_progress_and_vm_operations_work(lab, tmp_path):
    target = await lab()
    recorder = Recorder(target.clock)
    client = await ProxmoxClient.connect(target, recorder.bus)
    progress: list[tuple[str, float | None]] = []
    try:
        await client.add_storage_content("local", "images")
        assert not await client.add_storage_content("local", "images")  # already there: no second PUT
        metadata = await client.ova_metadata("pve", OVA)
        disk = metadata["disks"]["scsi0"]["volid"]
        spec = vmconfig.VmSpec(name="vast-loopback", vcpus=12, memory_gib=120, storage="local-lvm", bridge="vmbr0")
        vm = await client.create_vm("pve", vmconfig.first_boot_config(spec, [disk]),
                                    on_progress=lambda m, f: progress.append((m, f)))
        assert await client.find_vm("vast-loopback") == vm
        config = await client.vm_config(vm)
        assert config["scsihw"] == "pvscsi" and "import-from" not in config["scsi0"]

        # the second stage: VirtIO SCSI single + IO thread on the same volume
        volume = vmconfig.parse_drive(config["scsi0"])[0]
        await client.update_config(vm, vmconfig.final_controller_changes(config))
        config = await client.vm_config(vm)
        assert config["scsihw"] == "virtio-scsi-single"
        assert vmconfig.parse_drive(config["scsi0"])[0] == volume
        assert vmconfig.parse_drive(config["scsi0"])[1]["iothread"] == "1"
        assert vmconfig.final_controller_changes(config) == {}

        await client.resize(vm, "scsi0", "1000G")
        assert vmconfig.drive_size_gib((await client.vm_config(vm))["scsi0"]) == 1000

        await client.start(vm)
        await client.start(vm)  # already running: nothing sent
        assert (await client.status(vm))["status"] == "running"
        await client.snapshot(vm, "pre-install", "before the install")
        await client.snapshot(vm, "pre-install")  # exists: never a second one
        assert [s["name"] for s in await client.snapshots(vm)] == ["pre-install"]
        await client.shutdown(vm, timeout_s=120, force_stop=True)  # still booting: ACPI is not answered
        assert (await client.status(vm))["status"] == "stopped"
        await client.rollback(vm, "pre-install")
    finally:
        await client.close()
    state = tmp_path / "lab"
    assert len(requests_to(state, "POST", "/nodes/pve/qemu")) == 1
    assert len(requests_to(state, "PUT", "/storage/local")) == 1
    assert len(requests_to(state, "POST", f"/nodes/pve/qemu/{vm.vmid}/status/start")) == 1
    assert len(requests_to(state, "POST", f"/nodes/pve/qemu/{vm.vmid}/snapshot")) == 1
    fractions = [f for _, f in progress if f is not None]
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)
    finished = recorder.of("ProxmoxTaskFinished")
    assert {e.task_type for e in finished} >= {"qmcreate", "qmstart", "qmsnapshot", "qmshutdown", "qmrollback"}
    assert all(e.ok for e in finished)
    assert [e.kind for e in recorder.events if e.kind in ("SnapshotCreated", "SnapshotRolledBack")] == [
        "SnapshotCreated", "SnapshotRolledBack"]


async def test_a_failed_task_raises_with_its_log_tail(lab):
    target = await lab()
    recorder = Recorder(target.clock)
    client = await ProxmoxClient.connect(target, recorder.bus)
    try:
        vm = await _create(client)
        await client.start(vm)
        with pytest.raises(RunFailed) as info:  # the guest is still booting: nothing answers ACPI
            await client.shutdown(vm, timeout_s=60)
    finally:
        await client.close()
    assert "qmshutdown" in info.value.message and "powerdown failed" in info.value.message
    assert "TASK ERROR" in (info.value.hint or "")
    failed = [e for e in recorder.of("ProxmoxTaskFinished") if not e.ok]
    assert len(failed) == 1 and failed[0].log_tail[-1].startswith("TASK ERROR")


async def test_on_the_ovas_first_boot_proxmox_knows_no_address_on_vmbr0_and_no_guest_agent_answers(lab):
    """The OVA is built for VMware: its first boot has vmtoolsd, not qemu-guest-agent, so the agent stays
    silent until it is installed; and vmbr0 is a plain bridge, whose DHCP lease (the LAN's, not
    Proxmox's) no IPAM records: the lab's API answers as a real host's, with nothing."""
    target = await lab()
    client = await ProxmoxClient.connect(target)
    try:
        vm = await _create(client)
        assert await client.agent_ping(vm) is False  # stopped VM: 500 "not running" means "not yet"
        await client.start(vm)
        await target.clock.sleep(120)  # well past the guest's boot
        assert await client.ipam_entries() == []
        assert await client.agent_ping(vm) is False
        assert await client.guest_addresses(vm) == []
    finally:
        await client.close()


async def test_reads_are_retried_on_503_and_reset_with_events(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_503", method="GET", path=r"^/nodes/pve/status$", nth=1, count=2),
        ScheduledFault("pve_reset", method="GET", path=r"^/nodes/pve/storage$", nth=1),
    ])
    world = start_world(state, faults=plan)
    try:
        target = world_target(world)
        recorder = Recorder(target.clock)
        client = await ProxmoxClient.connect(target, recorder.bus)
        try:
            facts = await client.node_facts("pve")
        finally:
            await client.close()
    finally:
        world.stop()
    assert facts.cores == 12
    retries = recorder.of("RetryScheduled")
    assert [(e.operation, e.attempt) for e in retries] == [
        ("read node pve's status", 1), ("read node pve's status", 2), ("list node pve's storages", 1)]
    assert "503" in retries[0].error and retries[2].error == "connection reset"
    recovered = recorder.of("RecoveredFromFault")
    assert [(e.operation, e.attempts) for e in recovered] == [
        ("read node pve's status", 3), ("list node pve's storages", 2)]


async def test_a_create_whose_answer_is_lost_is_found_not_repeated(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_timeout", method="POST", path=r"^/nodes/pve/qemu$", after=True)])
    world = start_world(state, faults=plan)
    try:
        target = world_target(world)
        recorder = Recorder(target.clock)
        client = await ProxmoxClient.connect(target, recorder.bus, timeout=(5.0, 1.0))
        try:
            vm = await _create(client)
            config = await client.vm_config(vm)
        finally:
            await client.close()
    finally:
        world.stop()
    assert len(requests_to(state, "POST", "/nodes/pve/qemu")) == 1
    assert config["name"] == "vast-loopback" and "lock" not in config  # the create task was awaited
    assert [e.error for e in recorder.of("RetryScheduled")] == ["timeout"]
    assert recorder.of("RecoveredFromFault")[0].operation.startswith("create VM")


async def test_a_create_refused_with_500_before_it_happened_is_retried_once_checked(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_500", method="POST", path=r"^/nodes/pve/qemu$")])
    world = start_world(state, faults=plan)
    try:
        target = world_target(world)
        client = await ProxmoxClient.connect(target)
        try:
            vm = await _create(client)
        finally:
            await client.close()
    finally:
        world.stop()
    creates = requests_to(state, "POST", "/nodes/pve/qemu")
    assert [r["status"] for r in creates] == [500, 200]
    lookups = requests_to(state, "GET", "/cluster/resources")
    assert lookups, "the VM was looked for before the create was sent again"
    assert vm.vmid == int(creates[1]["params"]["vmid"])


@pytest.mark.parametrize(("kind", "path"), [
    ("pve_reset", r"/status/reboot$"), ("pve_reset", r"/status/start$"), ("pve_503", r"/snapshot$"),
    ("pve_timeout", r"/snapshot$"), ("pve_reset", r"^/storage/local$"),
])
async def test_calls_whose_answer_is_lost_are_checked_not_repeated(tmp_path, kind, path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault(kind, method=None if "storage" in path else "POST", path=path, after=True)])
    world = start_world(state, faults=plan)
    try:
        target = world_target(world)
        recorder = Recorder(target.clock)
        client = await ProxmoxClient.connect(target, recorder.bus, timeout=(5.0, 1.0))
        try:
            vm = await _create(client)
            await client.start(vm)
            for _ in range(100):  # the guest boots (its agent answers once it is up)
                if await client.agent_ping(vm):
                    break
                await target.clock.sleep(5)
            await client.reboot(vm)
            await client.snapshot(vm, "pre-install")
            status = await client.status(vm)
            snapshots = await client.snapshots(vm)
        finally:
            await client.close()
    finally:
        world.stop()
    assert [json.loads(line)["kind"] for line in (state / "faults.jsonl").read_text().splitlines()] == [kind]
    assert status["status"] == "running" and [s["name"] for s in snapshots] == ["pre-install"]
    sent = [r for r in requests_log(state) if r["method"] in ("POST", "PUT") and re.search(path, r["path"])]
    assert len(sent) == 1, sent
    assert len(recorder.of("RecoveredFromFault")) == 1


async def test_a_node_that_keeps_failing_is_shown_offline_not_fatal(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_503", method="GET", path=r"^/nodes/pve3/status$", count=100)])
    world = start_world(state, "big", faults=plan)
    try:
        target = world_target(world)
        recorder = Recorder(target.clock)
        client = await ProxmoxClient.connect(target, recorder.bus)
        try:
            inventory = await client.inventory()
        finally:
            await client.close()
    finally:
        world.stop()
    assert [(n.node, n.online) for n in inventory.nodes] == [("pve1", True), ("pve2", True), ("pve3", False)]
    assert len(recorder.of("RetryScheduled")) == 5  # tried six times before giving up on it
