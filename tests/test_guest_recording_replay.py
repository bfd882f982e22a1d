"""A guest recording replayed as the lab's OVA (`lab: {ova: file:PATH}`) sets the lab guest's kernel
drivers, initramfs, disk layout and memory overhead, as the guest's own tools show them over SSH,
and the product follows: a lab guest recorded with the product's probe comes back as itself; the
same recording changed (a kernel without virtio_scsi, 2 GiB more kept by the kernel, an ext4 root
after bigger /boot and swap partitions) gives a guest whose /proc/meminfo, lsblk, findmnt, modinfo,
dracut and lsinitrd say so, whose preflight memory check fails, whose root grows with resize2fs and
whose initramfs cannot take the VirtIO drivers. Every assertion on the replayed guest is checked to
fail against the default lab guest (the negative control)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from backend.errors import RunFailed
from backend.lab import scenarios
from backend.lab.guest.image import read_kernel
from backend.lab.vast.curves import GIB
from backend.model import recording
from backend.model.recording import DiskRecord, GuestRecording
from backend.run import probe
from backend.steps import rootgrow, tuning
from backend.steps.preflight import guest_items
from tests.guest_lab_support import client
from tests.lab_fixtures import RunningGuest, boot, fresh_guest, hardware, open_lab  # noqa: F401
from tests.proxmox_lab_support import lab_answers, run_provision
from tests.proxmox_lab_support import open_lab as open_lab_target

pytestmark = [pytest.mark.lab]

BUILD = "release-5-4-0-2043819"
MORE_OVERHEAD_KIB = 2 * 1024**2  # the changed kernel keeps 2 GiB more of the VM's RAM
VIRTIO = {"scsihw": "virtio-scsi-single", "disk_iothread": True}


async def _record(guest: RunningGuest) -> GuestRecording:
    connection = await client(guest)
    try:
        return await probe.record_guest(connection, vm_memory=guest.hw.memory_mib, vmid=guest.vmid)
    finally:
        await connection.close()


def _without(names: tuple[str, ...], dropped: str) -> tuple[str, ...]:
    return tuple(n for n in names if n != dropped)


def _changed(found: GuestRecording) -> GuestRecording:
    """The recording of another guest: no virtio_scsi in its kernel, 2 GiB more overhead, a 2 GiB
    /boot, a 4 GiB swap and an ext4 root of the recorded size."""
    (disk,) = [d for d in found.disks if d.type == "disk"]
    boot_part, swap_part, root_part = disk.children
    parts = (dataclasses.replace(boot_part, size=2 * GIB), dataclasses.replace(swap_part, size=4 * GIB),
             dataclasses.replace(root_part, fstype="ext4"))
    disks = tuple(dataclasses.replace(d, children=parts) if d is disk else d for d in found.disks)
    return dataclasses.replace(
        found, kernel_modules=_without(found.kernel_modules, "virtio_scsi"),
        kernel_storage_modules=_without(found.kernel_storage_modules, "virtio_scsi"),
        initramfs_modules=_without(found.initramfs_modules, "virtio_scsi"),
        mem_total_kib=found.mem_total_kib - MORE_OVERHEAD_KIB, disks=disks)


def _write(path: Path, found: GuestRecording) -> str:
    recording.write(path, found)
    return f"file:{path}"


def _partitions(guest: RunningGuest) -> dict[str, tuple[str, int]]:
    shown = json.loads(guest.run("lsblk -J -b -o NAME,SIZE,FSTYPE").stdout)["blockdevices"]
    sda = next(d for d in shown if d["name"] == "sda")
    return {d["name"]: (d["fstype"] or "", int(d["size"])) for d in [sda, *sda.get("children", [])]}


def _seen(guest: RunningGuest) -> dict[str, object]:
    """What the guest's own tools show of its kernel, initramfs, disk and memory."""
    meminfo = guest.run("cat /proc/meminfo").stdout
    return {
        "memtotal_kib": int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:"))),
        "partitions": _partitions(guest),
        "root": guest.run("findmnt -n -o SOURCE,FSTYPE /").stdout.split(),
        "modinfo_virtio_scsi": guest.run("modinfo -n virtio_scsi").returncode,
        "dracut_virtio": guest.run("dracut -f --add-drivers 'virtio_scsi virtio_blk'").returncode,
        "swap_kib": int(guest.run("cat /proc/swaps").stdout.splitlines()[1].split()[2]),
    }


async def test_a_lab_guest_recorded_and_replayed_is_recorded_the_same(fresh_guest, tmp_path):
    found = await _record(fresh_guest)
    assert "virtio_scsi" in found.kernel_modules and "vmw_pvscsi" in found.kernel_storage_modules
    lab = open_lab(tmp_path / "replay", ova=_write(tmp_path / "guest.json", found))
    try:
        again = await _record(boot(lab, hardware(101)))
    finally:
        lab.shutdown()
    for name in ("kernel_release", "kernel_storage_modules", "kernel_builtin_modules", "kernel_modules",
                 "initramfs_modules", "disks", "mem_total_kib", "vm_memory_mib", "nics", "os_release"):
        assert getattr(again, name) == getattr(found, name), name


async def test_a_changed_recording_is_what_the_lab_guest_shows_and_the_product_follows(fresh_guest, tmp_path):
    found = await _record(fresh_guest)
    changed = _changed(found)
    overhead = changed.vm_memory_mib * 1024 - changed.mem_total_kib
    assert changed.memory_overhead_kib == found.memory_overhead_kib + MORE_OVERHEAD_KIB == overhead
    lab = open_lab(tmp_path / "replay", ova=_write(tmp_path / "changed.json", changed))
    try:
        replayed = boot(lab, hardware(101, disk_gib=1000))
        disk_of_600 = boot(lab, hardware(103))  # the recorded root does not fit: it ends at the disk's end
        root_start = (2 + 4) * 2097152 + 2048
        expected = {
            "memtotal_kib": 120 * 1024**2 - overhead,  # the VM's memory less the recorded overhead
            "partitions": {"sda": ("", 1000 * GIB), "sda1": ("xfs", 2 * GIB), "sda2": ("swap", 4 * GIB),
                           "sda3": ("ext4", changed.disks[0].children[2].size)},  # as recorded, not grown
            "root": ["/dev/sda3", "ext4"],
            "modinfo_virtio_scsi": 1,  # the kernel has no virtio_scsi...
            "dracut_virtio": 1,  # ...so no initramfs of it can hold it
            "swap_kib": 4 * 1024**2 - 4,
        }
        shown, default = _seen(replayed), _seen(fresh_guest)
        for key, value in expected.items():
            assert shown[key] == value, key
            assert default[key] != value, f"{key}: the default lab guest shows it too"
        assert _partitions(disk_of_600)["sda3"] == ("ext4", 600 * GIB - root_start * 512)
        assert "virtio_scsi" not in replayed.run("lsmod").stdout
        image = replayed.run("lsinitrd").stdout
        assert "vmw_pvscsi.ko" in image and "virtio_scsi.ko" not in image
        assert lab.boot_state(101) == "up"
        lab.power_on(hardware(102, **VIRTIO))  # no VirtIO SCSI driver in this kernel at all
        assert lab.wait_state(102, ("up", "unbootable"), 30.0) == "unbootable"
        assert "virtio_scsi is not in the initramfs" in lab.guest(102).error
        # the lab's VAST side sees the same MemTotal: the field's peak (116.3 GiB) no longer fits
        mem_total = read_kernel(lab.guest(101).disk).memtotal_kib(replayed.hw.memory_mib) * 1024
        assert mem_total == expected["memtotal_kib"] * 1024
        assert scenarios.choose(replayed.hw, mem_total=mem_total)[0] == scenarios.OOM
        assert scenarios.choose(fresh_guest.hw)[0] == scenarios.SUCCESS

        # the product: its preflight's memory check fails on the replayed guest and passes on the default
        for guest, ok in ((replayed, False), (fresh_guest, True)):
            connection = await client(guest)
            try:
                env = tuning.TuningEnv(guest=connection, user="centos")
                items = {i.id: i for i in await guest_items(connection, env, BUILD, guest.hw.memory_mib, 12)}
                assert items["memory_guest"].ok is ok, items["memory_guest"].observed
                if guest is replayed:  # its root is ext4: resize2fs grows it to the 1000 GiB disk
                    grown = await rootgrow.grow_root(connection, disk_gib=1000, progress=lambda _: None)
                    assert (grown["fstype"], grown["grown"]) == ("ext4", True) and grown["size_gib"] > 970
                    with pytest.raises(RunFailed, match="dracut"):  # the VirtIO drivers cannot be added
                        await tuning.InitramfsDrivers().apply(env)
            finally:
                await connection.close()
    finally:
        lab.shutdown()


@pytest.mark.slow
async def test_the_first_boot_falls_back_from_a_controller_the_recorded_kernel_lacks(fresh_guest, tmp_path):
    found = await _record(fresh_guest)
    without_pvscsi = dataclasses.replace(  # a kernel built without PVSCSI: no initramfs of it can hold it
        found, kernel_modules=_without(found.kernel_modules, "vmw_pvscsi"),
        kernel_storage_modules=_without(found.kernel_storage_modules, "vmw_pvscsi"),
        initramfs_modules=_without(found.initramfs_modules, "vmw_pvscsi"))
    booted = {}
    for name, replayed in (("as-recorded", found), ("without-pvscsi", without_pvscsi)):
        ova = _write(tmp_path / f"{name}.json", replayed)
        target = await open_lab_target(tmp_path / name / "lab", ova=ova)
        try:
            answers = lab_answers("seed", lab={"host_profile": "seed", "ova": ova})
            code, rec, ctx = await run_provision(tmp_path / name, target, answers)
        finally:
            await target.close()
        assert code == 0, [e.to_dict() for e in rec.of("RunFinished")]
        booted[name] = (ctx.facts.boot_controller, [(e.controller, e.next_controller)
                                                    for e in rec.of("BootAttemptFailed")])
    assert booted["as-recorded"] == ("pvscsi", [])  # the negative control: the recorded guest's own
    # pvscsi fails, then sata (the host-only initramfs has no ahci), then IDE's ata_piix, which dracut always adds
    assert booted["without-pvscsi"] == ("ide", [("pvscsi", "sata"), ("sata", "ide")])


def test_a_recording_whose_disk_the_lab_cannot_show_is_refused(tmp_path):
    lvm = GuestRecording(kernel_release="4.18.0", disks=(DiskRecord("sda", "disk", 100 * GIB, children=(
        DiskRecord("sda1", "part", GIB, "xfs", "/boot"),
        DiskRecord("sda2", "part", 99 * GIB, "LVM2_member", children=(
            DiskRecord("rl-root", "lvm", 90 * GIB, "xfs", "/"),))),),))
    with pytest.raises(recording.RecordingError, match="three partitions, /boot, swap and /"):
        open_lab(tmp_path / "lab", ova=_write(tmp_path / "lvm.json", lvm))
