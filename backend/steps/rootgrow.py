"""Grow the guest's root filesystem to its disk, after the VM's disk was resized through the API.

The resize makes the disk bigger; the partition table and the filesystem inside stay as the OVA
made them, so `/` keeps the OVA's size until they are grown in the guest:

1. find the root device (`findmnt` on `/`, `lsblk` for its type and parent disk): a partition, or
   an LVM logical volume on a partition (never assumed to be sda3);
2. let the kernel see the disk's new size when it is smaller than Proxmox's (a live resize needs a
   SCSI rescan: `/sys/block/<disk>/device/rescan`);
3. `growpart <disk> <n>` (cloud-utils-growpart, installed with dnf when the OVA lacks it): exit 0
   CHANGED, 1 NOCHANGE (nothing to grow), 2 FAILED;
4. the filesystem: `xfs_growfs /` (XFS grows only mounted), `resize2fs` for ext4; on LVM
   `pvresize` then `lvextend -r -l +100%FREE` (which grows the filesystem too);
5. verified with `df`: the filesystem must fill its partition (or logical volume).

Every step checks before it changes anything, so running it again (a resumed run) changes nothing.
Every command is built with `backend.clients.commands.sh`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient
from backend.errors import RunFailed

GROWPART_PACKAGE = "cloud-utils-growpart"
SECTOR = 512
KIB_PER_GIB = 1024**2
# What a filesystem may fall short of its device's size and still count as filling it: XFS keeps
# its internal log out of df's size (10 MiB on the OVA's root, up to 2 GiB), ext4 its inode tables.
FILL_TOLERANCE = 0.03
DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.:+-]+$")


@dataclass(frozen=True)
class RootDevice:
    source: str  # /dev/sda3, /dev/mapper/rl-root
    fstype: str  # xfs, ext4
    disk: str  # sda
    partition: str  # the partition that holds it (sda3; the PV's partition on LVM)
    number: int  # the partition's number
    lvm: bool


async def _out(guest: GuestClient, command: str, *, sudo: bool = False) -> str:
    return (await guest.run(command, sudo=sudo)).stdout.strip()


def _name(word: str) -> str:
    name = word.strip().removeprefix("/dev/").lstrip("|`-└├─ ")
    if not DEVICE_NAME.match(name):
        raise RunFailed(f"the guest reports an unexpected block device name: {word!r}")
    return name


async def find_root(guest: GuestClient) -> RootDevice:
    """The device mounted on `/`, its type and the partition and disk beneath it."""
    mount = (await _out(guest, sh("findmnt", "-n", "-o", "SOURCE,FSTYPE", "/"))).split()
    if len(mount) < 2:
        raise RunFailed("findmnt does not show what is mounted on / in the guest")
    source, fstype = mount[0], mount[1]
    kind = await _out(guest, sh("lsblk", "-n", "-d", "-o", "TYPE", source))
    lvm = kind == "lvm"
    partition = _name(source)
    if lvm:  # the partition under the logical volume (lsblk -s lists what it is made of)
        rows = [line.split() for line in (await _out(guest, sh("lsblk", "-n", "-l", "-s", "-o", "NAME,TYPE",
                                                                source))).splitlines()]
        parts = [row[0] for row in rows if len(row) == 2 and row[1] == "part"]
        if len(parts) != 1:
            raise RunFailed(f"the root logical volume {source} is not on exactly one partition ({parts})",
                            hint="grow it by hand (pvresize, lvextend -r), then run again")
        partition = _name(parts[0])
    elif kind != "part":
        raise RunFailed(f"the guest's root {source} is a {kind or 'unknown device'}, not a partition or LVM volume")
    disk = _name(await _out(guest, sh("lsblk", "-n", "-d", "-o", "PKNAME", f"/dev/{partition}")))
    number = await _out(guest, sh("cat", f"/sys/block/{disk}/{partition}/partition"))
    if not number.isdigit():
        raise RunFailed(f"cannot tell which partition of {disk} {partition} is")
    return RootDevice(source, fstype, disk, partition, int(number), lvm)


async def _sectors(guest: GuestClient, path: str) -> int:
    text = await _out(guest, sh("cat", path))
    return int(text) if text.isdigit() else 0


async def device_kib(guest: GuestClient, root: RootDevice) -> int:
    """The size of the device the root filesystem is on: its partition, or its logical volume."""
    if root.lvm:
        text = await _out(guest, sh("lsblk", "-b", "-n", "-d", "-o", "SIZE", root.source))
        return int(text) // 1024 if text.isdigit() else 0
    return await _sectors(guest, f"/sys/block/{root.disk}/{root.partition}/size") * SECTOR // 1024


async def df_kib(guest: GuestClient) -> int:
    """The size of the filesystem on `/` as df shows it (1K-blocks)."""
    lines = (await _out(guest, sh("df", "-P", "-k", "/"))).splitlines()
    fields = lines[-1].split() if len(lines) >= 2 else []
    if len(fields) < 2 or not fields[1].isdigit():
        raise RunFailed("df does not show the size of / in the guest")
    return int(fields[1])


async def _growpart(guest: GuestClient, root: RootDevice, progress: Callable[[str], None]) -> bool:
    if not (await guest.run("command -v growpart >/dev/null 2>&1")).ok:
        progress(f"installing {GROWPART_PACKAGE} (growpart is not on the OVA)")
        await guest.run(sh("dnf", "install", "-y", GROWPART_PACKAGE), sudo=True, check=True, timeout=1800)
    result = await guest.run(sh("growpart", f"/dev/{root.disk}", root.number), sudo=True, timeout=600)
    said = (result.stdout.strip() or result.stderr.strip()).splitlines()[-1:] or [""]
    if result.exit_status == 0:
        progress(f"growpart: {said[0]}")
        return True
    if result.exit_status == 1:  # NOCHANGE: the partition already fills the disk
        return False
    raise RunFailed(f"growpart could not grow {root.partition}: {said[0]}",
                    hint="look at the partition table (sudo sfdisk -l) and grow it by hand, then run again")


async def _grow_filesystem(guest: GuestClient, root: RootDevice) -> None:
    if root.lvm:
        await guest.run(sh("pvresize", f"/dev/{root.partition}"), sudo=True, check=True, timeout=600)
        free = await _out(guest, sh("lvs", "--noheadings", "-o", "vg_free", "--units", "b", "--nosuffix",
                                    root.source), sudo=True)
        if free.strip() not in ("", "0"):
            await guest.run(sh("lvextend", "-r", "-l", "+100%FREE", root.source), sudo=True, check=True, timeout=1800)
    elif root.fstype == "xfs":
        await guest.run(sh("xfs_growfs", "/"), sudo=True, check=True, timeout=1800)
    elif root.fstype in ("ext4", "ext3", "ext2"):
        await guest.run(sh("resize2fs", root.source), sudo=True, check=True, timeout=1800)
    else:
        raise RunFailed(f"the guest's root filesystem is {root.fstype}: vast-loopback grows xfs and ext4 only")


async def grow_root(guest: GuestClient, *, disk_gib: float | None, progress: Callable[[str], None]) -> dict:
    """Grow `/` to fill the guest's disk; returns what df shows before and after."""
    root = await find_root(guest)
    before = await df_kib(guest)
    seen = await _sectors(guest, f"/sys/block/{root.disk}/size")
    if disk_gib and seen * SECTOR < disk_gib * 1024**3:  # a live resize the kernel has not seen yet
        progress(f"rescanning {root.disk}: the guest sees {seen * SECTOR / 1024**3:.0f} GiB of {disk_gib:.0f} GiB")
        await guest.run(f"echo 1 > {sh(f'/sys/block/{root.disk}/device/rescan')}", sudo=True)
        seen = await _sectors(guest, f"/sys/block/{root.disk}/size")
    changed = await _growpart(guest, root, progress)
    if root.lvm or before < await device_kib(guest, root) * (1 - FILL_TOLERANCE):
        await _grow_filesystem(guest, root)
    after = await df_kib(guest)
    device = await device_kib(guest, root)
    if after < device * (1 - FILL_TOLERANCE):
        raise RunFailed(f"the root filesystem ({after / KIB_PER_GIB:.1f} GiB) does not fill {root.source} "
                        f"({device / KIB_PER_GIB:.1f} GiB) after growing it", hint="look at df and lsblk in the guest")
    return {"device": root.source, "fstype": root.fstype, "before_gib": round(before / KIB_PER_GIB, 1),
            "size_gib": round(after / KIB_PER_GIB, 1), "disk_gib": round(seen * SECTOR / 1024**3, 1),
            "grown": changed or after > before}
