"""The guest's disk layout: its MBR partitions and the size of its root filesystem, kept on its disk.

The layout is the field guest's (`backend.lab.facts`, disk section): sda1 /boot, sda2 swap, sda3 /
(XFS, no LVM). It lives in the guest's own disk as `/var/lib/lab/disk.env` (shell assignments the
stub tools source), because on a real VM the partition table and the filesystem are on the disk:
they survive reboots, come back with a snapshot, and do not follow the VM's disk size. An OVA
imported onto a bigger disk keeps its 600 GiB sda3 and root filesystem until `growpart` and
`xfs_growfs` grow them; `df`, `lsblk` and the guest's /sys/block show what the layout says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.lab import facts
from backend.lab.guest import rocky
from backend.lab.guest.fsutil import read_beneath

LAYOUT = "var/lib/lab/disk.env"


@dataclass(frozen=True)
class Layout:
    """The partitions (start, sectors) and the root filesystem's size in XFS blocks."""

    boot: tuple[int, int]
    swap: tuple[int, int]
    root: tuple[int, int]
    root_fs_blocks: int

    def env(self) -> str:
        values = {
            "SDA1_START": self.boot[0], "SDA1_SECTORS": self.boot[1],
            "SDA2_START": self.swap[0], "SDA2_SECTORS": self.swap[1],
            "SDA3_START": self.root[0], "SDA3_SECTORS": self.root[1],
            "ROOT_FS_BLOCKS": self.root_fs_blocks, "XFS_LOG_BLOCKS": facts.XFS_LOG_BLOCKS,
            "XFS_BLOCK_BYTES": facts.XFS_BLOCK_BYTES, "ROOT_UUID": facts.ROOT_UUID, "SWAP_UUID": facts.SWAP_UUID,
            "BOOT_UUID": rocky.BOOT_UUID, "SWAP_KIB": facts.SWAP_KIB,
            "MBR_MAX_SECTORS": facts.MBR_MAX_SECTORS,
        }
        return "# the lab guest's partition table and root filesystem (what is on its disk)\n" + \
            "".join(f"{key}={value}\n" for key, value in values.items())

    @classmethod
    def parse(cls, text: str) -> Layout:
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and value.strip().isdigit():
                values[key.strip()] = int(value)
        return cls((values["SDA1_START"], values["SDA1_SECTORS"]), (values["SDA2_START"], values["SDA2_SECTORS"]),
                   (values["SDA3_START"], values["SDA3_SECTORS"]), values["ROOT_FS_BLOCKS"])


def ova_layout(disk_bytes: int = facts.OVA_DISK_BYTES) -> Layout:
    """The OVA's disk: sda3 and its XFS reach the end of a `disk_bytes` disk."""
    sectors = disk_bytes // facts.SECTOR_BYTES
    root = (facts.ROOT_START, sectors - facts.ROOT_START)
    return Layout((facts.BOOT_START, facts.BOOT_SECTORS), (facts.SWAP_START, facts.SWAP_SECTORS), root,
                  root[1] * facts.SECTOR_BYTES // facts.XFS_BLOCK_BYTES)


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
