"""The host half of the preflight checklist, read from a VM configuration as Proxmox returns it:
the field report's working configuration passes, its failed ones are caught item by item."""

from __future__ import annotations

from backend.steps.preflight import host_items, release_tarball

WORKING = {  # attempt 3: 12 vCPUs, 120 GiB, VirtIO SCSI single + IO thread, cpu host, no ballooning
    "sockets": 1, "cores": 12, "memory": "122880", "balloon": 0, "cpu": "host",
    "scsihw": "virtio-scsi-single", "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=600G",
}
FAILED = {  # attempt 2: 2 x 12 vCPUs, 112 GiB (its guest saw 109Gi), qemu64, ballooning on, no IO thread
    "sockets": 2, "cores": 12, "memory": "114688", "cpu": "qemu64",
    "scsihw": "virtio-scsi-pci", "scsi0": "local-lvm:vm-100-disk-0,size=600G",
}


def by_id(items):
    return {item.id: item for item in items}


def test_the_working_configuration_passes_every_host_check():
    items = by_id(host_items(WORKING, host_cores=12, agent_answers=True))
    assert all(item.ok for item in items.values()), [i for i in items.values() if not i.ok]
    assert items["memory_vm"].observed == "120 GiB (the guest sees ≈117.5 GiB)"
    for item in items.values():
        assert set(item.to_dict()) == {"id", "title", "expected", "observed", "ok", "severity"}


def test_the_failed_configuration_is_caught_item_by_item():
    items = by_id(host_items(FAILED, host_cores=12, agent_answers=False))
    assert not items["vcpus_le_cores"].ok and items["vcpus_le_cores"].observed.startswith("24")
    assert items["vcpus_le_cores"].forceable
    assert not items["ballooning_off"].ok and "ballooning on" in items["ballooning_off"].observed
    assert not items["iothread"].ok and items["iothread"].observed == "virtio-scsi-pci, iothread=0"
    assert not items["cpu_host"].ok and items["cpu_host"].observed == "qemu64"
    assert not items["guest_agent"].ok
    assert not items["memory_vm"].ok  # its guest sees 109.6 GiB < the field run's peak use of 116.3 GiB
    assert "119 GiB (the guest sees ≈116.5 GiB)" in items["memory_vm"].expected


def test_cpu_host_with_flags_still_counts_as_host():
    items = by_id(host_items({**WORKING, "cpu": "host,flags=+aes"}, host_cores=12, agent_answers=True))
    assert items["cpu_host"].ok


def test_release_tarball_named_as_the_bootstrap_prints_it():
    assert release_tarball("release-5-4-0-2043819") == "vastdata_release_2043819.vast.tar.gz"


def test_force_overrides_sizing_blockers_only():
    from backend.steps.preflight import judge

    items = host_items(FAILED, host_cores=12, agent_answers=True)
    assert {i.id for i in judge(items, force=False)} == {
        "vcpus_le_cores", "ballooning_off", "iothread", "cpu_host", "memory_vm"}
    items = host_items(FAILED, host_cores=12, agent_answers=True)
    assert {i.id for i in judge(items, force=True)} == {"ballooning_off", "iothread", "cpu_host"}
    overridden = {i.id for i in items if i.overridden}
    assert overridden == {"vcpus_le_cores", "memory_vm"}
    assert all(i.to_dict().get("overridden") for i in items if i.id in overridden)
