"""Growing the guest's root to its disk (backend/steps/rootgrow.py) over real SSH on the lab guest, whose
disk is the field's layout imported from the 600 GiB OVA onto a 1000 GiB disk: the root device is
found (never assumed), growpart is installed when the OVA lacks it and used as it is when present,
the filesystem is grown and verified with df, and a second run changes nothing. Also the VirtIO
drivers step on an OVA whose initramfs holds them already: no dracut run."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

from pathlib import Path

from backend.lab import facts
from backend.steps import rootgrow, tuning
from tests.guest_lab_support import client
from tests.lab_fixtures import RESIZED_DISK_GIB as DISK_GIB
from tests.lab_fixtures import boot, hardware, open_lab, resized_guest  # noqa: F401


async def test_the_root_grows_to_the_disk_once_and_growpart_is_installed_when_missing(resized_guest):
    said: list[str] = []
    guest = await client(resized_guest)
    try:
        root = await rootgrow.find_root(guest)
        assert (root.source, root.fstype, root.disk, root.partition, root.number, root.lvm) == \
            ("/dev/sda3", "xfs", "sda", "sda3", 3, False)
        grown = await rootgrow.grow_root(guest, disk_gib=DISK_GIB, progress=said.append)
        again = await rootgrow.grow_root(guest, disk_gib=DISK_GIB, progress=said.append)
    finally:
        await guest.close()
    ova_root = facts.root_df_kib(facts.OVA_DISK_BYTES // 512 - facts.ROOT_START) / 1024**2
    assert grown == {"device": "/dev/sda3", "fstype": "xfs", "before_gib": round(ova_root, 1),
                     "size_gib": 998.2, "disk_gib": 1000.0, "grown": True}
    assert again == {**grown, "before_gib": 998.2, "grown": False}  # NOCHANGE: nothing done twice
    assert sum("installing cloud-utils-growpart" in line for line in said) == 1
    assert any(line.startswith("growpart: CHANGED: partition=3") for line in said)
    assert "cloud-utils-growpart" in resized_guest.run("rpm -q cloud-utils-growpart").stdout


async def test_an_ova_that_ships_growpart_uses_it(resized_guest):
    assert resized_guest.run("dnf install -y cloud-utils-growpart").returncode == 0
    said: list[str] = []
    guest = await client(resized_guest)
    try:
        grown = await rootgrow.grow_root(guest, disk_gib=DISK_GIB, progress=said.append)
    finally:
        await guest.close()
    assert grown["grown"] and grown["size_gib"] == 998.2
    assert not any("installing" in line for line in said)


async def test_virtio_drivers_already_in_a_generic_initramfs_need_no_dracut(tmp_path: Path):
    lab = open_lab(tmp_path / "lab", ova="generic")
    try:
        running = boot(lab, hardware(100))
        image = running.run("lsinitrd | head -n 5").stdout
        guest = await client(running)
        try:
            env = tuning.TuningEnv(guest=guest, user="centos")
            step = tuning.InitramfsDrivers()
            before = await step.check(env)
            assert before.ok and before.persisted is False  # in the image, named in no dracut.conf.d
            assert await step.apply(env) is True  # writes the configuration only
            after = await step.check(env)
        finally:
            await guest.close()
        assert after.good
        assert running.run("lsinitrd | head -n 5").stdout == image  # the same image: dracut never ran
        assert "--no-hostonly" in image
    finally:
        lab.shutdown()
