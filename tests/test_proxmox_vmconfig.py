"""The VM configuration the field report requires, for the first boot and after preparation."""

from __future__ import annotations

import pytest

from backend.model import vmconfig
from backend.model.hostfacts import GIB, StorageFacts
from backend.model.vmconfig import VmSpec

SEED_SPEC = VmSpec(name="vast-loopback", vcpus=12, memory_gib=120, storage="local-lvm", bridge="vmbr0")
OVA_DISK = "local:import/vast-5.4.0-loopback.ova/vast-5.4.0-loopback-disk1.vmdk"


def test_first_boot_config_is_exactly_what_the_ova_needs():
    config = vmconfig.first_boot_config(SEED_SPEC, [OVA_DISK])
    assert config == {
        "name": "vast-loopback",
        "machine": "q35",
        "ostype": "l26",
        "scsihw": "pvscsi",  # VMware PVSCSI: what an initramfs built on VMware holds (no virtio drivers yet)
        "cpu": "host",
        "sockets": 1,
        "cores": 12,
        "memory": 120 * 1024,
        "balloon": 0,
        "numa": 0,
        "agent": "1",
        "net0": "virtio,bridge=vmbr0",
        "scsi0": f"local-lvm:0,import-from={OVA_DISK}",
        "boot": "order=scsi0",
        "tags": "vast-loopback",
    }


@pytest.mark.parametrize(
    ("spec", "disks", "working", "expected"),
    [
        (VmSpec("a", 24, 160, "local-lvm", "vmbr1", numa=True, sockets=2), [OVA_DISK], None,
         {"sockets": 2, "cores": 12, "memory": 163840, "numa": 1, "net0": "virtio,bridge=vmbr1"}),
        (VmSpec("b", 12, 128, "fast", "vmbr0", vmid=4242), [OVA_DISK], None, {"vmid": 4242, "scsi0":
         f"fast:0,import-from={OVA_DISK}"}),
        (SEED_SPEC, [OVA_DISK, "local:import/x.ova/data.vmdk"], "scratch",
         {"scsi1": "local-lvm:0,import-from=local:import/x.ova/data.vmdk", "import-working-storage": "scratch"}),
    ],
)
def test_first_boot_config_variants(spec, disks, working, expected):
    config = vmconfig.first_boot_config(spec, disks, working)
    for key, value in expected.items():
        assert config[key] == value
    assert all(not isinstance(v, bool) for v in config.values()), "booleans must go out as 1/0"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bridge", "vmbr0,firewall=1"),
        ("storage", "local-lvm,cache=unsafe"),
        ("storage", "bad storage"),
        ("name", "no_underscores"),
        ("name", "-leading"),
    ],
)
def test_values_that_would_change_a_property_string_are_refused(field, value):
    spec = VmSpec(**{**SEED_SPEC.__dict__, field: value})
    with pytest.raises(ValueError):
        vmconfig.first_boot_config(spec, [OVA_DISK])


@pytest.mark.parametrize("volid", [
    "local:import/x.ova/disk.vmdk,iothread=0",
    "local:import/x.ova/disk 1.vmdk",
    "local:../../etc/passwd",
    "noprefix.vmdk",
    "local:import/x.ova/disk=1.vmdk",
])
def test_unsafe_disk_volids_are_refused(volid):
    with pytest.raises(ValueError):
        vmconfig.first_boot_config(SEED_SPEC, [volid])


def test_vcpus_that_do_not_split_over_the_sockets_are_refused():
    with pytest.raises(ValueError, match="do not split over 2 sockets"):
        vmconfig.first_boot_config(VmSpec("a", 25, 160, "local-lvm", "vmbr0", numa=True, sockets=2), [OVA_DISK])


def test_an_ova_without_disks_is_refused():
    with pytest.raises(ValueError, match="no disk"):
        vmconfig.first_boot_config(SEED_SPEC, [])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"machine": "q35", "scsihw": "pvscsi", "scsi0": "local-lvm:vm-100-disk-0,size=600G"},
         {"scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,size=600G,iothread=1"}),
        ({"machine": "q35", "scsihw": "pvscsi", "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=1000G"},
         {"scsihw": "virtio-scsi-single"}),
        ({"machine": "q35", "scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,size=1000G"},
         {"scsi0": "local-lvm:vm-100-disk-0,size=1000G,iothread=1"}),
        ({"machine": "q35", "scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=1000G"},
         {}),
        ({"machine": "q35", "scsihw": "lsi", "scsi0": "file=local-lvm:vm-7-disk-0,discard=on"},
         {"scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-7-disk-0,discard=on,iothread=1"}),
        # a first boot on SATA (q35) or IDE (i440fx): the volume moves to scsi0, the boot order with it
        ({"machine": "q35", "sata0": "local-lvm:vm-100-disk-0,size=1000G", "boot": "order=sata0"},
         {"scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,size=1000G,iothread=1",
          "delete": "sata0", "boot": "order=scsi0"}),
        ({"machine": "pc", "ide0": "local-lvm:vm-100-disk-0,size=1000G", "boot": "order=ide0"},
         {"machine": "q35", "scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,size=1000G,iothread=1",
          "delete": "ide0", "boot": "order=scsi0"}),
    ],
)
def test_second_stage_switches_to_virtio_scsi_single_with_an_io_thread_on_the_same_volume(config, expected):
    assert vmconfig.final_controller_changes(config) == expected


def test_second_stage_refuses_a_disk_still_being_imported():
    with pytest.raises(ValueError, match="still being imported"):
        vmconfig.final_controller_changes({"scsi0": f"local-lvm:0,import-from={OVA_DISK}"})


@pytest.mark.parametrize(
    ("bus", "preferred", "expected"),
    [
        ("scsi", "auto", ["pvscsi", "sata", "ide", "virtio-scsi-single"]),  # a VMware RHEL 8 disk: PVSCSI
        ("sata", "auto", ["sata", "pvscsi", "ide", "virtio-scsi-single"]),
        ("ide", "auto", ["ide", "sata", "pvscsi", "virtio-scsi-single"]),
        ("scsi", "virtio-scsi-single", ["virtio-scsi-single", "pvscsi", "sata", "ide"]),
        ("nvme", "auto", ["pvscsi", "sata", "ide", "virtio-scsi-single"]),
    ],
)
def test_first_boot_candidates_follow_the_ova_disk_bus_and_never_include_lsi(bus, preferred, expected):
    assert vmconfig.boot_candidates(bus, preferred) == expected
    assert not set(expected) & set(vmconfig.EL8_UNBOOTABLE)


def test_the_ova_disk_bus_comes_from_the_import_metadata_disk_key():
    assert vmconfig.ova_disk_bus(["scsi0"]) == "scsi"
    assert vmconfig.ova_disk_bus(["efidisk0", "sata0"]) == "sata"
    assert vmconfig.ova_disk_bus(["ide0", "ide1"]) == "ide"
    assert vmconfig.ova_disk_bus([]) == "scsi"


@pytest.mark.parametrize(
    ("controller", "expected"),
    [
        ("pvscsi", {"machine": "q35", "scsihw": "pvscsi", "scsi0": f"local-lvm:0,import-from={OVA_DISK}",
                    "boot": "order=scsi0"}),
        ("virtio-scsi-single", {"machine": "q35", "scsihw": "virtio-scsi-single",
                                "scsi0": f"local-lvm:0,import-from={OVA_DISK},iothread=1", "boot": "order=scsi0"}),
        ("sata", {"machine": "q35", "sata0": f"local-lvm:0,import-from={OVA_DISK}", "boot": "order=sata0"}),
        ("ide", {"machine": "pc", "ide0": f"local-lvm:0,import-from={OVA_DISK}", "boot": "order=ide0"}),
    ],
)
def test_first_boot_config_on_each_controller(controller, expected):
    config = vmconfig.first_boot_config(SEED_SPEC, [OVA_DISK], controller=controller)
    for key, value in expected.items():
        assert config[key] == value
    assert ("scsihw" in config) == (controller in ("pvscsi", "virtio-scsi-single"))
    assert vmconfig.controller_of({k: v.split(",import-from")[0] for k, v in config.items() if isinstance(v, str)}
                                  | {"scsihw": config.get("scsihw")}) == controller


def test_lsi_is_never_a_first_boot_controller():
    with pytest.raises(ValueError, match="cannot boot"):
        vmconfig.first_boot_config(SEED_SPEC, [OVA_DISK], controller="lsi")
    assert vmconfig.controller_of({"scsi0": "local-lvm:vm-100-disk-0", "machine": "q35"}) == "lsi"  # Proxmox's default


def test_falling_back_from_pvscsi_to_sata_and_ide_moves_the_volume():
    config = {"machine": "q35", "scsihw": "pvscsi", "scsi0": "local-lvm:vm-100-disk-0,size=1000G",
              "boot": "order=scsi0", "ide2": "none,media=cdrom"}
    sata = vmconfig.controller_changes(config, "sata")
    assert sata == {"sata0": "local-lvm:vm-100-disk-0,size=1000G", "delete": "scsi0", "boot": "order=sata0"}
    moved = {**{k: v for k, v in config.items() if k != "scsi0"}, **{k: v for k, v in sata.items() if k != "delete"}}
    assert vmconfig.controller_of(moved) == "sata"
    ide = vmconfig.controller_changes(moved, "ide")
    assert ide == {"machine": "pc", "ide0": "local-lvm:vm-100-disk-0,size=1000G", "delete": "sata0",
                   "boot": "order=ide0"}  # ide2 holds the CD drive: the disk takes ide0
    assert vmconfig.controller_changes(moved, "sata") == {}


@pytest.mark.parametrize(
    ("drive", "disk_gib", "expected"),
    [
        ("local-lvm:vm-100-disk-0,size=600G", 1000, "1000G"),
        ("local-lvm:vm-100-disk-0,size=1000G", 1000, None),
        ("local-lvm:vm-100-disk-0,size=1T", 1000, None),
        ("local-lvm:vm-100-disk-0,size=1T", 1200, "1200G"),
        ("local-lvm:vm-100-disk-0,size=600G", 500, None),  # never shrinks
        ("local-lvm:vm-100-disk-0,size=614400M", 600, None),
        ("local-lvm:vm-100-disk-0", 600, "600G"),  # no size known: ask for the absolute size
    ],
)
def test_resize_only_grows(drive, disk_gib, expected):
    assert vmconfig.resize_to({"scsi0": drive}, disk_gib) == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [("vast-loopback", True), ("prod;vast-loopback", True), ("vast-loopback,x", True),
     ("vast-loopback-old", False), ("", False), (None, False)],
)
def test_tag_matching(tags, expected):
    assert vmconfig.has_tag(tags) is expected


@pytest.mark.parametrize(
    ("net", "mac"),
    [("virtio=BC:24:11:aa:bb:cc,bridge=vmbr0", "BC:24:11:AA:BB:CC"),
     ("model=virtio,macaddr=bc:24:11:00:00:01,bridge=vmbr0", "BC:24:11:00:00:01"),
     ("virtio,bridge=vmbr0", None), (None, None)],
)
def test_mac_of_a_nic(net, mac):
    assert vmconfig.mac_of(net) == mac


def _st(name, type_, content, avail_gib=100, active=True):
    return StorageFacts(name, type_, tuple(content), int(500 * GIB), int(avail_gib * GIB), active=active)


@pytest.mark.parametrize(
    ("storages", "expected"),
    [
        # the usual host: 'local' holds the OVA but not images; no other file storage -> enable images on it
        ([_st("local", "dir", ["iso", "import"]), _st("local-lvm", "lvmthin", ["images"])], (None, "local")),
        # the OVA's own storage can hold images: nothing to pass
        ([_st("local", "dir", ["import", "images"]), _st("local-lvm", "lvmthin", ["images"])], (None, None)),
        # another file-based storage with images: use it as the working storage
        ([_st("local", "dir", ["import"]), _st("scratch", "dir", ["images"], 50), _st("nfs", "nfs", ["images"], 900)],
         ("nfs", None)),
        # an inactive one does not count
        ([_st("local", "dir", ["import"]), _st("scratch", "dir", ["images"], active=False)], (None, "local")),
    ],
)
def test_where_the_ova_is_extracted(storages, expected):
    assert vmconfig.working_storage_for("local", storages) == expected
