"""`vast-loopback probe --guest` on the lab guest over real SSH: kernel release, storage drivers
loaded, in the kernel and in the initramfs, disk layout, MemTotal against the VM's memory, free, OS
release and NICs; and a guest recording loaded back as the lab OVA's initramfs (`lab: {ova:
file:PATH}`), which then decides what the guest can boot from."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import dataclasses
import json

import pytest

from backend.lab import facts
from backend.lab.guest import rocky
from backend.model import recording
from backend.run import probe
from tests.guest_lab_support import client
from tests.lab_fixtures import boot, fresh_guest, hardware, open_lab  # noqa: F401
from tui.cli import main


async def test_the_guest_is_recorded_over_ssh(fresh_guest, tmp_path):
    guest = await client(fresh_guest)
    try:
        found = await probe.record_guest(guest, vm_memory=fresh_guest.hw.memory_mib, vmid=fresh_guest.vmid)
    finally:
        await guest.close()
    assert found.kernel_release == rocky.KERNEL_RELEASE and found.os_release["ID"] == "rocky"
    assert set(found.initramfs_modules) == set(facts.OVA_INITRAMFS["host-only"])  # PVSCSI, no VirtIO
    assert "vmw_pvscsi" in found.kernel_storage_modules and "virtio_scsi" not in found.kernel_storage_modules
    # the controllers' drivers the kernel has (modinfo: the lab guest has no modules.dep), loaded or not
    assert {"virtio_scsi", "virtio_blk", "vmw_pvscsi", "ahci", "ata_piix"} <= set(found.kernel_modules)
    assert "sym53c8xx" not in found.kernel_modules  # CONFIG_SCSI_SYM53C8XX_2 is not set
    (disk,) = [d for d in found.disks if d.type == "disk"]
    assert [(p.name, p.fstype, p.mountpoint) for p in disk.children] == [
        ("sda1", "xfs", "/boot"), ("sda2", "swap", "[SWAP]"), ("sda3", "xfs", "/")]
    assert disk.size == facts.OVA_DISK_BYTES
    assert found.mem_total_kib == facts.guest_memtotal_kib(fresh_guest.hw.memory_mib)
    assert found.memory_overhead_kib == fresh_guest.hw.memory_mib * 1024 - found.mem_total_kib > 0
    assert found.free_bytes["total"] == found.mem_total_kib * 1024
    assert "eth0" in found.nics
    out = tmp_path / "guest.json"
    recording.write(out, found)
    assert recording.load(out, kind="guest") == found
    text = json.dumps(recording.to_dict(found)).lower()
    assert "password" not in text and "private key" not in text and "ssh-" not in text


def _boot_state(lab, hw) -> str:
    lab.power_on(hw)
    return lab.wait_state(hw.vmid, ("up", "unbootable"), 30.0)


async def test_a_guest_recording_is_the_lab_ovas_initramfs(fresh_guest, tmp_path):
    guest = await client(fresh_guest)
    try:
        found = await probe.record_guest(guest, vm_memory=fresh_guest.hw.memory_mib, vmid=fresh_guest.vmid)
    finally:
        await guest.close()
    as_found, with_virtio = tmp_path / "host-only.json", tmp_path / "virtio.json"
    recording.write(as_found, found)
    recording.write(with_virtio, dataclasses.replace(
        found, initramfs_modules=tuple(sorted({*found.initramfs_modules, "virtio_scsi", "virtio_pci",
                                               "virtio_ring", "virtio"}))))
    virtio = {"scsihw": "virtio-scsi-single", "disk_iothread": True}
    lab = open_lab(tmp_path / "replayed", ova=f"file:{as_found}")
    try:  # the recorded initramfs has no VirtIO driver: such a guest cannot boot on VirtIO SCSI
        assert _boot_state(lab, hardware(101, **virtio)) == "unbootable"
        assert _boot_state(lab, hardware(102)) == "up"
        image = lab.exec(102, f"lsinitrd {rocky.INITRAMFS}", user="root").stdout
        assert "vmw_pvscsi.ko" in image and "virtio_scsi.ko" not in image
    finally:
        lab.shutdown()
    lab = open_lab(tmp_path / "with-virtio", ova=f"file:{with_virtio}")
    try:
        assert _boot_state(lab, hardware(103, **virtio)) == "up"
    finally:
        lab.shutdown()


def test_a_host_recording_is_not_a_guest_recording(tmp_path, capsys):
    from backend.lab.profiles import HOSTS_DIR

    answers = tmp_path / "answers.yaml"
    answers.write_text(f"proxmox: {{url: lab}}\nlab: {{ova: 'file:{HOSTS_DIR / 'seed.json'}'}}\n")
    assert main(["check", str(answers)]) == 2
    assert "a host recording, not a guest recording" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_probe_guest_records_a_lab_runs_guest(tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text("proxmox: {url: lab}\nvm: {memory_gib: 120}\n")
    run_dir = tmp_path / "run"
    assert main(["--auto", str(answers), "--run-dir", str(run_dir), "--until", "first_boot",
                 "--speed", "600"]) == 0
    out = tmp_path / "guest.json"
    assert main(["probe", "--guest", str(run_dir), "--record", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    found = recording.load(out, kind="guest")
    assert found.vm_memory_mib == 120 * 1024 and found.mem_total_kib == facts.guest_memtotal_kib(120 * 1024)
    assert found.kernel_release == rocky.KERNEL_RELEASE and found.vmid > 0
