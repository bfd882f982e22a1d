"""VMs on the lab host: OVA import as a timed task, power, agent, pending config, snapshots and locks,
and the world surviving a restart of its process."""

from __future__ import annotations

import json
import time

import pytest
from proxmoxer import ResourceException

from backend.lab.profiles import GIB
from tests.lab_pve_support import allow_images_on_local, client, create_args, start_world, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def world(tmp_path):
    world = start_world(tmp_path / "lab")
    yield world
    world.stop()


def _create(api, vmid: int = 100, **extra) -> str:
    allow_images_on_local(api)
    return api.nodes("pve").qemu.post(**create_args(vmid, **extra))


def test_create_with_ova_import_is_a_task_that_runs_then_ends_ok(world):
    api = client(world)
    upid = _create(api)
    assert upid.startswith("UPID:pve:") and ":qmcreate:100:root@pam!vlb:" in upid
    running = api.nodes("pve").tasks(upid).status.get()
    assert running["status"] == "running" and "exitstatus" not in running
    creating = api.nodes("pve").qemu(100).config.get()
    assert creating["lock"] == "create" and "name" not in creating  # only the lock until the worker ends
    assert [r["name"] for r in api.cluster.resources.get(type="vm")] == ["VM 100"]

    done = wait_task(api, "pve", upid)
    assert (done["status"], done["exitstatus"]) == ("stopped", "OK")
    lab_seconds = world.clock.now() - done["starttime"]
    assert lab_seconds > 5 * 60  # about six lab minutes for the 600 GiB disk
    config = api.nodes("pve").qemu(100).config.get()
    assert config["scsi0"] == "local-lvm:vm-100-disk-0,discard=on,size=600G"
    assert "lock" not in config and config["cores"] == 12 and config["memory"] == "119808"
    assert config["net0"].startswith("virtio=BC:24:11:") and config["net0"].endswith(",bridge=vmbr0")
    log = api.nodes("pve").tasks(upid).log.get(start=0, limit=500)
    texts = [row["t"] for row in log]
    assert "transferred 300.0 GiB of 600.0 GiB (50.00%)" in texts and texts[-1] == "TASK OK"
    assert api.nodes("pve").storage("local-lvm").status.get()["used"] >= 600 * GIB


def test_ova_extraction_needs_a_working_storage_with_images(world):
    api = client(world)
    with pytest.raises(ResourceException) as info:
        api.nodes("pve").qemu.post(**create_args())
    assert info.value.status_code == 400 and "import-working-storage" in info.value.errors


def test_a_second_create_of_the_same_vmid_is_refused(world):
    api = client(world)
    _create(api)
    with pytest.raises(ResourceException) as info:
        _create(api)
    assert (info.value.status_code, info.value.content) == (
        500, "unable to create VM 100 - VM 100 already exists on node 'pve'")


def test_an_import_from_a_missing_volume_fails_the_task_and_leaves_no_vm(world):
    api = client(world)
    upid = _create(api, scsi0="local-lvm:0,import-from=local:import/other.ova/other-disk1.vmdk")
    status = wait_task(api, "pve", upid)
    assert status["exitstatus"] == ("unable to create VM 100 - cannot import from "
                                    "'local:import/other.ova/other-disk1.vmdk' - could not get size of "
                                    "local:import/other.ova/other-disk1.vmdk")
    assert api.nodes("pve").qemu.get() == []


def test_start_boots_the_guest_with_the_vms_hardware_and_the_agent_answers_once_up(world):
    api = client(world)
    wait_task(api, "pve", _create(api))
    vm = api.nodes("pve").qemu(100)
    assert vm.status.current.get()["status"] == "stopped"
    assert wait_task(api, "pve", vm.status.start.post())["exitstatus"] == "OK"
    status = vm.status.current.get()
    assert status["status"] == "running" and status["cpus"] == 12
    assert {"memhost", "pressurecpusome", "pressurememoryfull"} <= set(status)
    hw = world.guest.hardware[100]
    assert (hw.vcpus, hw.memory_mib, hw.balloon_mib, hw.scsihw, hw.cpu_type) == (12, 119808, 0, "lsi", "host")
    assert (hw.host_cores, hw.host_threads, hw.disk_gib, hw.ip) == (12, 24, 600, "192.168.30.109")

    with pytest.raises(ResourceException) as info:
        vm.agent.ping.post()
    assert (info.value.status_code, info.value.content) == (500, "QEMU guest agent is not running")
    assert api.cluster.sdn.ipams("pve").status.get() == []  # vmbr0 is a plain bridge: no IPAM lease, ever
    world.clock.origin_target += 120  # the guest's boot (60 lab s) is over
    assert vm.agent.ping.post() == {"result": {}}
    addresses = vm.agent("network-get-interfaces").get()["result"]
    assert any(a["ip-address"] == "192.168.30.109" for i in addresses for a in i["ip-addresses"])
    assert vm.agent("get-osinfo").get()["result"]["version-id"] == "8.10"


def test_status_current_on_84_has_no_pressure_keys(tmp_path):
    world = start_world(tmp_path / "big", profile="big")
    try:
        api = client(world)
        wait_task(api, "pve1", api.nodes("pve1").qemu.post(vmid=100, name="a", memory=1024))
        wait_task(api, "pve1", api.nodes("pve1").qemu(100).status.start.post())
        status = api.nodes("pve1").qemu(100).status.current.get()
        assert status["status"] == "running"
        assert not {k for k in status if k.startswith("pressure") or k == "memhost"}
    finally:
        world.stop()


def test_config_changes_of_a_running_vm_wait_as_pending_until_a_cold_start(world):
    api = client(world)
    wait_task(api, "pve", _create(api))
    vm = api.nodes("pve").qemu(100)
    wait_task(api, "pve", vm.status.start.post())
    digest = vm.config.get()["digest"]
    vm.config.put(scsihw="virtio-scsi-single", name="vast54", digest=digest)
    assert vm.config.get()["scsihw"] == "virtio-scsi-single"
    assert vm.config.get(current=1)["scsihw"] == "lsi"
    assert vm.config.get(current=1)["name"] == "vast54"  # a fast-plug option applies at once
    assert {"key": "scsihw", "value": "lsi", "pending": "virtio-scsi-single"} in vm.pending.get()
    with pytest.raises(ResourceException) as info:
        vm.config.put(cores=8, digest=digest)
    assert info.value.content.startswith("detected modified configuration")
    wait_task(api, "pve", vm.status.stop.post())
    wait_task(api, "pve", vm.status.start.post())
    assert vm.config.get(current=1)["scsihw"] == "virtio-scsi-single"
    assert world.guest.hardware[100].scsihw == "virtio-scsi-single"


def test_snapshot_rollback_and_locks(tmp_path):
    world = start_world(tmp_path / "lab", speed=20)  # slow enough to meet the locks
    try:
        api = client(world)
        upid = _create(api, scsi0="local-lvm:32", **{"import-working-storage": None})
        wait_task(api, "pve", upid)
        vm = api.nodes("pve").qemu(100)
        snap = vm.snapshot.post(snapname="pre-install", description="before the install")
        assert vm.config.get()["lock"] == "snapshot"
        with pytest.raises(ResourceException) as info:
            vm.config.put(cores=8)
        assert (info.value.status_code, info.value.content) == (500, "VM is locked (snapshot)")
        second = wait_task(api, "pve", vm.snapshot.post(snapname="other"))
        assert second["exitstatus"] == "VM is locked (snapshot)"
        assert wait_task(api, "pve", snap)["exitstatus"] == "OK"
        names = {s["name"]: s for s in vm.snapshot.get()}
        assert set(names) == {"pre-install", "current"}
        assert names["current"]["parent"] == "pre-install" and names["pre-install"]["description"] == "before the install"
        again = wait_task(api, "pve", vm.snapshot.post(snapname="pre-install"))
        assert again["exitstatus"] == "snapshot name 'pre-install' already used"

        vm.config.put(cores=4)
        rollback = vm.snapshot("pre-install").rollback.post()
        assert vm.config.get()["lock"] == "rollback"
        assert wait_task(api, "pve", rollback)["exitstatus"] == "OK"
        assert vm.config.get()["cores"] == 12 and "lock" not in vm.config.get()
        assert ("snapshot", 100, "pre-install") in world.guest.calls
        assert ("rollback", 100, "pre-install") in world.guest.calls
        missing = wait_task(api, "pve", vm.snapshot("nope").rollback.post())
        assert missing["exitstatus"] == "snapshot 'nope' does not exist"
        assert wait_task(api, "pve", vm.snapshot("pre-install").delete())["exitstatus"] == "OK"
        assert [s["name"] for s in vm.snapshot.get()] == ["current"]
    finally:
        world.stop()


def test_destroy_refuses_a_running_vm_and_removes_a_stopped_one(world):
    api = client(world)
    wait_task(api, "pve", api.nodes("pve").qemu.post(vmid=100, name="a", memory=1024))
    vm = api.nodes("pve").qemu(100)
    wait_task(api, "pve", vm.status.start.post())
    with pytest.raises(ResourceException) as info:
        vm.delete()
    assert info.value.content == "VM 100 is running - destroy failed"
    wait_task(api, "pve", vm.status.stop.post())
    assert wait_task(api, "pve", vm.delete())["exitstatus"] == "OK"
    with pytest.raises(ResourceException) as info:
        vm.config.get()
    assert info.value.content == "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist"
    assert ("destroy", 100) in world.guest.calls


def test_shutdown_of_a_guest_that_is_not_up_times_out_unless_forced(world):
    api = client(world)
    wait_task(api, "pve", api.nodes("pve").qemu.post(vmid=100, name="a", memory=1024))
    vm = api.nodes("pve").qemu(100)
    wait_task(api, "pve", vm.status.start.post())
    failed = wait_task(api, "pve", vm.status.shutdown.post(timeout=30))
    assert failed["exitstatus"] == "VM quit/powerdown failed - got timeout"
    assert vm.status.current.get()["status"] == "running"
    assert wait_task(api, "pve", vm.status.shutdown.post(timeout=30, forceStop=1))["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped"


def test_the_world_continues_after_a_restart_and_finishes_a_task_that_was_running(tmp_path):
    state = tmp_path / "lab"
    world = start_world(state)
    api = client(world)
    upid = _create(api)
    assert api.nodes("pve").tasks(upid).status.get()["status"] == "running"
    world.stop()  # the process "dies" in the middle of the import
    time.sleep(0.8)  # eight lab minutes pass at x600

    again = start_world(state)
    try:
        api = client(again)
        status = api.nodes("pve").tasks(upid).status.get()
        assert (status["status"], status["exitstatus"]) == ("stopped", "OK")
        assert api.nodes("pve").qemu(100).config.get()["scsi0"].startswith("local-lvm:vm-100-disk-0")
        assert api.cluster.nextid.get() == "101"
        creates = [json.loads(line) for line in (state / "pve-requests.jsonl").read_text().splitlines()]
        assert sum(1 for c in creates if c["method"] == "POST" and c["path"] == "/nodes/pve/qemu") == 1
        state_file = json.loads((state / "pve" / "state.json").read_text())
        assert state_file["vms"]["100"]["config"]["scsi0"].endswith("size=600G")
    finally:
        again.stop()


def test_reboot_and_a_poweroff_from_inside_the_guest(world):
    api = client(world)
    wait_task(api, "pve", api.nodes("pve").qemu.post(vmid=100, name="a", memory=1024, cores=2))
    vm = api.nodes("pve").qemu(100)
    with pytest.raises(ResourceException) as info:
        vm.status.reboot.post()
    assert info.value.content == "VM 100 not running"
    wait_task(api, "pve", vm.status.start.post())
    vm.config.put(cores=4)  # pending until the VM is started again; an API reboot is a stop + start
    assert wait_task(api, "pve", vm.status.reboot.post())["exitstatus"] == "OK"
    assert world.guest.hardware[100].vcpus == 4
    assert [c[0] for c in world.guest.calls if c[1] == 100][-2:] == ["power_off", "power_on"]
    world.pve.guest_initiated(100, "poweroff")  # PowerHooks, as the guest side calls it
    assert vm.status.current.get()["status"] == "stopped"
