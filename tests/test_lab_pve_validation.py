"""Every request is checked against the official schema, with Proxmox's own 400/501 answers."""

from __future__ import annotations

import pytest
import requests
from proxmoxer import ResourceException

from backend.lab.pve.schema import ApiSchema, validate
from tests.conftest import shared_path
from tests.lab_pve_support import SECRET, client, create_args, start_world

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def api(tmp_path):
    shared_path("pve-api", "apidata.json")
    world = start_world(tmp_path / "lab")
    yield client(world)
    world.stop()


def _refused(call) -> ResourceException:
    with pytest.raises(ResourceException) as info:
        call()
    return info.value


def test_python_booleans_are_refused_and_1_0_accepted(api):
    error = _refused(lambda: api.nodes("pve").qemu.post(vmid=100, name="a", numa=True))
    assert error.status_code == 400
    assert error.content == "Parameter verification failed."
    assert error.errors == {"numa": "type check ('boolean') failed - got 'True'"}
    error = _refused(lambda: api.nodes("pve").storage.get(enabled=False))
    assert error.errors == {"enabled": "type check ('boolean') failed - got 'False'"}
    assert api.nodes("pve").qemu.post(vmid=100, name="a", numa=1, onboot=0).startswith("UPID:")
    assert api.nodes("pve").storage.get(enabled=1)


def test_unknown_parameter_is_refused(api):
    error = _refused(lambda: api.nodes("pve").qemu.post(vmid=100, name="a", memmory=4096))
    assert error.errors == {
        "memmory": "property is not defined in schema and the schema does not allow additional properties"}


def test_formats_ranges_enums_and_property_strings(api):
    error = _refused(lambda: api.nodes("pve").qemu.post(
        vmid=99, name="bad_name", cores=0, scsihw="virtio", memory=8,
        scsi0="local-lvm:0,iothread=sure,speed=9", net0="virtio,bridge=vmbr0,firewall=maybe"))
    assert error.errors == {
        "vmid": "invalid format - value does not look like a valid VM ID\n",
        "name": "invalid format - value does not look like a valid DNS name\n",
        "cores": "value must have a minimum value of 1",
        "scsihw": "value 'virtio' does not have a value in the enumeration "
                  "'lsi, lsi53c810, virtio-scsi-pci, virtio-scsi-single, megasas, pvscsi'",
        "memory": "invalid format - format error\nmemory.current: value must have a minimum value of 16\n",
        "scsi0": "invalid format - invalid key in comma-separated list property: speed\n",
        "net0": "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\n",
    }


def test_snapshot_names_and_tags_follow_their_formats(api):
    api.nodes("pve").qemu.post(vmid=100, name="a", tags="vlb;loopback")
    error = _refused(lambda: api.nodes("pve").qemu(100).snapshot.post(snapname="1st"))
    assert error.errors == {"snapname": "invalid format - invalid configuration ID '1st'\n"}
    error = _refused(lambda: api.nodes("pve").qemu.post(vmid=101, tags="ok,not ok!"))
    assert error.errors == {"tags": "invalid format - invalid characters in tag\n"}


def test_import_from_needs_the_zero_size_syntax(api):
    error = _refused(lambda: api.nodes("pve").qemu.post(**create_args(scsi0=(
        "local-lvm:600,import-from=local:import/vast-5.4.0-loopback.ova/vast-5.4.0-loopback-disk1.vmdk"))))
    assert error.status_code == 400
    assert error.errors == {"scsi0": "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"}


def test_unknown_path_and_missing_method_are_501(api, tmp_path):
    error = _refused(lambda: api.nodes("pve").frobnicate.get())
    assert (error.status_code, error.content) == (501, "Method 'GET /nodes/pve/frobnicate' not implemented")
    error = _refused(lambda: api.version.post())
    assert (error.status_code, error.content) == (501, "Method 'POST /version' not implemented")


def test_path_parameters_are_verified_too(api):
    error = _refused(lambda: api.nodes("pve").qemu("abc").config.get())
    assert error.errors == {"vmid": "type check ('integer') failed - got 'abc'"}


def test_schema_documented_ranges_expand_indexed_keys():
    schema = ApiSchema.load(shared_path("pve-api", "apidata.json"))
    info = schema.route("/nodes/pve/qemu").methods["POST"]
    assert validate(info, {"node": "pve", "vmid": "100", "scsi30": "local-lvm:1"}) == {}
    assert "scsi31" in validate(info, {"node": "pve", "vmid": "100", "scsi31": "local-lvm:1"})


def test_without_the_schema_the_lab_serves_unvalidated_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("VLB_SHARED", str(tmp_path / "empty"))
    world = start_world(tmp_path / "lab")
    try:
        assert "NOT validated" in world.endpoints()["proxmox"]["schema"]
        api = client(world)
        assert api.nodes("pve").status.get()["cpuinfo"]["cores"] == 12
        assert api.nodes("pve").qemu.post(vmid=100, name="a", numa=True, whatever=1).startswith("UPID:")
        answer = requests.get(world.pve.url + "/api2/json/nodes/pve/nothing", verify=False, timeout=5,
                              headers={"Authorization": f"PVEAPIToken=root@pam!vlb={SECRET}"})
        assert answer.status_code == 501
    finally:
        world.stop()
