"""Which disk controllers the lab's Rocky 8.10 guest boots from, as the real kernel and dracut decide
it (backend.lab.facts): the kernel builds no driver for QEMU's LSI 53C895A, the OVA's host-only
initramfs (built on VMware) holds PVSCSI and no VirtIO, the generic one holds every storage driver,
and a guest whose initramfs lacks its controller's driver ends in dracut's emergency shell: no
network, no SSH, no agent."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from backend.lab import facts
from backend.lab.guest.rootfs import STUBS, read_table
from tests.lab_fixtures import connect, fresh_guest, hardware, open_lab  # noqa: F401


def _refused(lab, hw) -> bool:
    host, port = lab.route(hw.ip, 22)
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_the_kernel_facts_come_from_the_rocky_8_10_config():
    assert "sym53c8xx" in facts.KERNEL_NOT_BUILT  # CONFIG_SCSI_SYM53C8XX_2 is not set
    assert {"virtio_scsi", "vmw_pvscsi", "ahci", "ata_piix"} <= facts.KERNEL_STORAGE_MODULES
    assert facts.controller_module("scsi", "lsi", "q35") == "sym53c8xx"
    assert facts.controller_module("scsi", None, "q35") == "sym53c8xx"  # Proxmox's default scsihw
    assert facts.controller_module("scsi", "pvscsi", "q35") == "vmw_pvscsi"
    assert facts.controller_module("sata", None, "q35") == "ahci"
    assert facts.controller_module("ide", None, "q35") == "ahci"  # q35's IDE is its AHCI
    assert facts.controller_module("ide", None, "pc") == "ata_piix"
    # the guest's dracut knows only modules that kernel builds
    known = {row[0] for row in read_table("kmods.tsv")}
    assert not known & facts.KERNEL_NOT_BUILT
    assert set(facts.OVA_INITRAMFS["generic"]) <= known
    assert "virtio_scsi" not in facts.OVA_INITRAMFS["host-only"]
    assert (STUBS / "bin" / "dracut").exists()


def test_lsi_never_boots_not_even_after_asking_dracut_for_its_driver(tmp_path: Path):
    lab = open_lab(tmp_path / "lab")
    try:
        lsi = hardware(100, scsihw="lsi")
        lab.power_on(lsi)
        assert lab.wait_state(100, ("up", "unbootable")) == "unbootable"
        error = lab.guest(100).error
        assert "Entering emergency mode" in error and "sym53c8xx is not in the initramfs" in error
        assert f"/dev/disk/by-uuid/{facts.ROOT_UUID} does not exist" in error
        assert not lab.agent_running(100) and lab.agent_interfaces(100) == []
        assert _refused(lab, lsi)  # no sshd: nothing listens

        lab.power_off(100, graceful=False)  # on PVSCSI it boots; dracut cannot add what the kernel lacks
        lab.power_on(hardware(100))
        assert lab.wait_state(100, ("up", "unbootable")) == "up"
        result = lab.exec(100, "dracut -f --add-drivers sym53c8xx; echo rc=$?; lsinitrd | grep -c sym53c8xx")
        assert "Failed to find module 'sym53c8xx'" in result.stderr
        assert "rc=1" in result.stdout and result.stdout.strip().endswith("0")
        lab.power_off(100, graceful=True)
        lab.power_on(lsi)
        assert lab.wait_state(100, ("up", "unbootable")) == "unbootable"
    finally:
        lab.shutdown()


@pytest.mark.parametrize(("ova", "changes", "boots"), [
    ("host-only", {"scsihw": "pvscsi"}, True),
    ("host-only", {"scsihw": "virtio-scsi-single"}, False),
    ("host-only", {"disk_bus": "sata", "scsihw": "lsi"}, False),  # no SATA controller on the VMware VM
    ("host-only", {"disk_bus": "ide", "machine": "pc", "scsihw": "lsi"}, True),  # ata_piix: dracut always adds it
    ("generic", {"scsihw": "virtio-scsi-single", "disk_iothread": True}, True),
    ("generic", {"disk_bus": "sata", "scsihw": "lsi"}, True),
    ("generic", {"scsihw": "lsi"}, False),
])
def test_the_ovas_initramfs_decides_the_first_boot(tmp_path: Path, ova, changes, boots):
    lab = open_lab(tmp_path / "lab", ova=ova)
    try:
        lab.power_on(hardware(100, **changes))
        assert lab.wait_state(100, ("up", "unbootable")) == ("up" if boots else "unbootable")
        assert lab.agent_running(100) is False  # the OVA has no guest agent yet, booted or not
    finally:
        lab.shutdown()


def test_lsinitrd_lists_the_host_only_image_and_dracut_adds_what_add_drivers_names(fresh_guest):
    listing = fresh_guest.run("lsinitrd").stdout
    assert "vmw_pvscsi.ko.xz" in listing and "ata_piix.ko.xz" in listing and "xfs.ko.xz" in listing
    assert "virtio_scsi.ko.xz" not in listing and "sym53c8xx" not in listing
    result = fresh_guest.run("echo 'add_drivers+=\" virtio_scsi virtio_blk \"' > /etc/dracut.conf.d/virtio.conf"
                             " && dracut -f && lsinitrd -m >/dev/null && lsinitrd")
    assert result.returncode == 0, result.stderr
    rebuilt = result.stdout
    # host-only on this VM: its controller (PVSCSI) and q35's AHCI, plus what the configuration names
    for module in ("vmw_pvscsi", "ahci", "virtio_scsi", "virtio_blk", "ata_piix", "sd_mod"):
        assert f"/{module}.ko.xz" in rebuilt, module
    lab, vmid = fresh_guest.lab, fresh_guest.vmid
    lab.power_off(vmid, graceful=True)
    lab.power_on(dataclasses.replace(fresh_guest.hw, scsihw="virtio-scsi-single", disk_iothread=True))
    assert lab.wait_state(vmid, ("up", "unbootable")) == "up"
