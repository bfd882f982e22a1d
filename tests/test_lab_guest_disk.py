"""The lab guest's disk is the field's (backend.lab.facts, disk section): sda MBR, sda1 /boot,
sda2 swap, sda3 / on XFS, no LVM. Resizing the VM's disk does not grow what is inside: `df` shows
the OVA's root until `growpart` and `xfs_growfs` grow it, as on a real guest, and the tools answer
as the real ones do (exit codes, output, root only)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

from backend.lab import facts
from backend.lab.guest.blockdev import ova_layout
from tests.lab_fixtures import RESIZED_DISK_GIB as DISK_GIB
from tests.lab_fixtures import resized_guest  # noqa: F401

OVA_ROOT_KIB = facts.root_df_kib(facts.OVA_DISK_BYTES // facts.SECTOR_BYTES - facts.ROOT_START)
GROWN_ROOT_KIB = facts.root_df_kib(DISK_GIB * 1024**3 // facts.SECTOR_BYTES - facts.ROOT_START)


def _df_kib(guest) -> int:
    return int(guest.run("df -P -k /").stdout.splitlines()[1].split()[1])


def test_the_layout_reproduces_the_field_root_size():
    # the field's 1 TiB disk: df showed 1071842284 1K-blocks on / (ground-truth §6)
    assert facts.root_df_kib(2147483648 - facts.ROOT_START) == 1071842284
    layout = ova_layout()
    assert layout.swap[1] * 512 // 1024 == facts.SWAP_KIB + 4 and layout.root[0] == facts.ROOT_START
    assert (layout.root[0] + layout.root[1]) * 512 == facts.OVA_DISK_BYTES


def test_without_growing_df_shows_the_ovas_root_on_a_bigger_disk(resized_guest):
    assert _df_kib(resized_guest) == OVA_ROOT_KIB  # ~598 GiB, not the 1000 GiB disk
    assert resized_guest.run("cat /sys/block/sda/size").stdout.strip() == str(DISK_GIB * 2097152)
    assert resized_guest.run("findmnt -n -o SOURCE,FSTYPE /").stdout.split() == ["/dev/sda3", "xfs"]
    assert resized_guest.run("lsblk -n -o TYPE /dev/sda3").stdout.strip() == "part"
    assert resized_guest.run("lsblk -n -d -o PKNAME /dev/sda3").stdout.strip() == "sda"
    assert resized_guest.run("findmnt /home").returncode == 1  # not a mount point
    assert resized_guest.run("findmnt -n -o SOURCE -T /home").stdout.strip() == "/dev/sda3"
    lsblk = resized_guest.run("lsblk").stdout.splitlines()
    assert lsblk[1].split()[:4] == ["sda", "8:0", "0", "1000G"]
    assert lsblk[4].split() == ["└─sda3", "8:3", "0", "598.2G", "0", "part", "/"]
    assert "mapper" not in resized_guest.run("cat /etc/fstab /proc/cmdline /proc/swaps").stdout


def test_growpart_and_xfs_growfs_grow_the_root_as_the_real_tools_do(resized_guest):
    missing = resized_guest.run("growpart /dev/sda 3")
    assert missing.returncode == 127  # the OVA does not ship cloud-utils-growpart
    assert resized_guest.run("dnf install -y cloud-utils-growpart").returncode == 0
    user = resized_guest.run("growpart /dev/sda 3", user="centos")
    assert user.returncode == 2 and user.stdout.startswith("FAILED:")
    assert resized_guest.run("growpart /dev/sda 2").returncode == 1  # sda3 follows it: NOCHANGE
    changed = resized_guest.run("growpart /dev/sda 3")
    assert changed.returncode == 0 and changed.stdout.startswith("CHANGED: partition=3 start=3778560")
    again = resized_guest.run("growpart /dev/sda 3")
    assert again.returncode == 1 and again.stdout.startswith("NOCHANGE: partition 3")
    assert _df_kib(resized_guest) == OVA_ROOT_KIB  # the partition grew, the filesystem not yet
    assert "Operation not permitted" in resized_guest.run("xfs_growfs /", user="centos").stderr
    grown = resized_guest.run("xfs_growfs /")
    assert grown.returncode == 0 and "data blocks changed from" in grown.stdout
    assert _df_kib(resized_guest) == GROWN_ROOT_KIB
    assert "data blocks changed" not in resized_guest.run("xfs_growfs /").stdout  # nothing left to grow
    assert resized_guest.run("xfs_growfs /home").returncode == 1


def test_a_grown_root_stays_grown_across_a_reboot(resized_guest):
    assert resized_guest.run("dnf install -y cloud-utils-growpart && growpart /dev/sda 3 && xfs_growfs /").returncode == 0
    lab = resized_guest.lab
    lab.power_off(100, graceful=True)
    lab.power_on(resized_guest.hw)
    assert lab.wait_state(100, ("up", "unbootable")) == "up"
    assert _df_kib(resized_guest) == GROWN_ROOT_KIB
    assert resized_guest.run("cat /sys/block/sda/sda3/size").stdout.strip() == str(DISK_GIB * 2097152 - facts.ROOT_START)
