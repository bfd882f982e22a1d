"""The guest's disk layout: its MBR partitions and the size of its root filesystem, kept on its disk.

The layout is the field guest's (`backend.lab.facts`, disk section): sda1 /boot, sda2 swap, sda3 /
(XFS, no LVM), or a guest recording's (`from_disks`): the same three partitions with its sizes and
filesystem types (xfs or ext4). It lives in the guest's own disk as `/var/lib/lab/disk.env` (shell
assignments the stub tools source), because on a real VM the partition table and the filesystem are
on the disk: they survive reboots, come back with a snapshot, and do not follow the VM's disk size.
An OVA imported onto a bigger disk keeps its 600 GiB sda3 and root filesystem until `growpart` and
`xfs_growfs` (or `resize2fs`) grow them; `df`, `lsblk` and the guest's /sys/block show what the
layout says. A layout is always made to fit the VM's disk (`fit`): a root partition recorded on a
bigger disk ends at this disk's end, as an image made for it would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from backend.lab import facts
from backend.lab.guest import rocky
from backend.lab.guest.fsutil import read_beneath
from backend.model.recording import DiskRecord, RecordingError

LAYOUT = "var/lib/lab/disk.env"
TEXT_KEYS = ("ROOT_FSTYPE", "BOOT_FSTYPE")


@dataclass(frozen=True)
class Layout:
    """The partitions (start, sectors), the root filesystem's size in 4 KiB blocks and its log (XFS)
    or journal (ext4), and the filesystem types of / and /boot."""

    boot: tuple[int, int]
    swap: tuple[int, int]
    root: tuple[int, int]
    root_fs_blocks: int
    root_fstype: str = "xfs"
    boot_fstype: str = "xfs"
    root_log_blocks: int = facts.XFS_LOG_BLOCKS

    @property
    def swap_kib(self) -> int:
        """The swap area's size (/proc/swaps): its partition less the page mkswap keeps for its header."""
        return self.swap[1] * facts.SECTOR_BYTES // 1024 - 4

    @property
    def boot_df_kib(self) -> int:
        blocks = self.boot[1] * facts.SECTOR_BYTES // facts.XFS_BLOCK_BYTES
        return facts.df_kib(self.boot_fstype, blocks, facts.fs_log_blocks(self.boot_fstype, blocks)
                            if self.boot_fstype == "ext4" else facts.BOOT_XFS_LOG_BLOCKS)

    def fit(self, disk_sectors: int) -> Layout:
        """This layout on a disk of `disk_sectors`: the root partition (and its filesystem, which
        fills it) ends at the disk's end when it would reach past it; otherwise unchanged, the rest of
        a bigger disk left free until growpart."""
        start, sectors = self.root
        if start + sectors <= disk_sectors or disk_sectors <= start:
            return self
        sectors = disk_sectors - start
        blocks = sectors * facts.SECTOR_BYTES // facts.XFS_BLOCK_BYTES
        return dataclasses.replace(self, root=(start, sectors), root_fs_blocks=blocks,
                                   root_log_blocks=facts.fs_log_blocks(self.root_fstype, blocks))

    def env(self) -> str:
        values = {
            "SDA1_START": self.boot[0], "SDA1_SECTORS": self.boot[1],
            "SDA2_START": self.swap[0], "SDA2_SECTORS": self.swap[1],
            "SDA3_START": self.root[0], "SDA3_SECTORS": self.root[1],
            "ROOT_FS_BLOCKS": self.root_fs_blocks, "ROOT_LOG_BLOCKS": self.root_log_blocks,
            "XFS_LOG_BLOCKS": facts.XFS_LOG_BLOCKS, "XFS_BLOCK_BYTES": facts.XFS_BLOCK_BYTES,
            "EXT4_INODE_TABLE_FRACTION": facts.EXT4_INODE_TABLE_FRACTION,
            "ROOT_FSTYPE": self.root_fstype, "BOOT_FSTYPE": self.boot_fstype, "BOOT_DF_KIB": self.boot_df_kib,
            "ROOT_UUID": facts.ROOT_UUID, "SWAP_UUID": facts.SWAP_UUID, "BOOT_UUID": rocky.BOOT_UUID,
            "SWAP_KIB": self.swap_kib, "MBR_MAX_SECTORS": facts.MBR_MAX_SECTORS,
        }
        return "# the lab guest's partition table and root filesystem (what is on its disk)\n" + \
            "".join(f"{key}={value}\n" for key, value in values.items())

    @classmethod
    def parse(cls, text: str) -> Layout:
        values: dict[str, int] = {}
        names: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and value.strip().isdigit():
                values[key.strip()] = int(value)
            elif sep and key.strip() in TEXT_KEYS:
                names[key.strip()] = value.strip()
        return cls((values["SDA1_START"], values["SDA1_SECTORS"]), (values["SDA2_START"], values["SDA2_SECTORS"]),
                   (values["SDA3_START"], values["SDA3_SECTORS"]), values["ROOT_FS_BLOCKS"],
                   root_fstype=names.get("ROOT_FSTYPE", "xfs"), boot_fstype=names.get("BOOT_FSTYPE", "xfs"),
                   root_log_blocks=values.get("ROOT_LOG_BLOCKS", facts.XFS_LOG_BLOCKS))


def ova_layout(disk_bytes: int = facts.OVA_DISK_BYTES) -> Layout:
    """The OVA's disk: sda3 and its XFS reach the end of a `disk_bytes` disk."""
    sectors = disk_bytes // facts.SECTOR_BYTES
    root = (facts.ROOT_START, sectors - facts.ROOT_START)
    return Layout((facts.BOOT_START, facts.BOOT_SECTORS), (facts.SWAP_START, facts.SWAP_SECTORS), root,
                  root[1] * facts.SECTOR_BYTES // facts.XFS_BLOCK_BYTES)


def _root_disk(disks: tuple[DiskRecord, ...]) -> DiskRecord | None:
    def holds_root(device: DiskRecord) -> bool:
        return device.mountpoint == "/" or any(holds_root(child) for child in device.children)

    return next((d for d in disks if d.type == "disk" and holds_root(d)), None)


def from_disks(disks: tuple[DiskRecord, ...], source: str = "recording") -> Layout:
    """The layout a guest recording's `lsblk` shows: the disk holding / with the OVA's three
    partitions, /boot, swap and / in that order (no LVM), each its recorded size, / and /boot on
    xfs or ext4. The partitions follow one another from 1 MiB on, as anaconda lays them out; each
    filesystem fills its partition. RecordingError for a layout the lab's guest cannot show."""
    disk = _root_disk(disks)
    if disk is None:
        raise RecordingError(f"{source}: its disks hold no partition mounted on / (lsblk)")
    parts = [c for c in disk.children if c.type == "part"]
    roles = [("/boot" if p.mountpoint == "/boot" else "swap" if p.fstype == "swap" else p.mountpoint or p.type)
             for p in parts]
    if roles != ["/boot", "swap", "/"] or any(p.children for p in parts):
        shown = ", ".join(f"{p.name} {role}" for p, role in zip(parts, roles, strict=True)) or "no partition"
        raise RecordingError(f"{source}: the lab's guest disk has three partitions, /boot, swap and / (no LVM), "
                             f"as the OVA has; this recording's {disk.name} has {shown}")
    boot, swap, root = parts
    for part in (boot, root):
        if part.fstype not in facts.ROOT_FSTYPES:
            raise RecordingError(f"{source}: {part.mountpoint} is {part.fstype or 'of no known type'}; the lab's "
                                 f"guest shows {' or '.join(facts.ROOT_FSTYPES)}")
    sector = facts.SECTOR_BYTES
    boot_at = (facts.BOOT_START, boot.size // sector)
    swap_at = (boot_at[0] + boot_at[1], swap.size // sector)
    root_at = (swap_at[0] + swap_at[1], root.size // sector)
    if min(boot_at[1], swap_at[1], root_at[1]) <= 8:
        raise RecordingError(f"{source}: a partition of {disk.name} has no size (lsblk -b SIZE)")
    blocks = root.size // facts.XFS_BLOCK_BYTES
    return Layout(boot_at, swap_at, root_at, blocks, root_fstype=root.fstype, boot_fstype=boot.fstype,
                  root_log_blocks=facts.fs_log_blocks(root.fstype, blocks))


def read_layout(disk: Path) -> Layout:
    """The layout on a guest's disk (the OVA's for a disk seeded before layouts were kept)."""
    text = read_beneath(disk, LAYOUT, "")
    try:
        return Layout.parse(text or "")
    except KeyError:
        return ova_layout()


def sysfs_files(layout: Layout) -> dict[str, str]:
    """/sys/block/sda/sdaN/{partition,start,size,dev} as the kernel shows the partitions."""
    files = {}
    for number, (start, sectors) in enumerate((layout.boot, layout.swap, layout.root), start=1):
        base = f"sys/block/sda/sda{number}"
        files.update({f"{base}/partition": f"{number}\n", f"{base}/start": f"{start}\n",
                      f"{base}/size": f"{sectors}\n", f"{base}/dev": f"8:{number}\n"})
    return files
