"""Boot semantics of the lab guest: runtime values come back to Rocky's defaults at every boot,
persisted ones (sysctl.d, tuned profile, udev rules, enabled units) are applied again, and the
controller switch needs VirtIO drivers in the initramfs."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import dataclasses

from tests.lab_fixtures import connect, fresh_guest, reboot_over_ssh  # noqa: F401


async def _values(conn) -> dict[str, str]:
    script = ("sysctl -n vm.swappiness vm.dirty_ratio kernel.sched_autogroup_enabled; "
              "cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag "
              "/sys/block/sda/queue/scheduler")
    lines = (await conn.run(script, check=True)).stdout.splitlines()
    return dict(zip(("swappiness", "dirty_ratio", "autogroup", "thp", "defrag", "scheduler"), lines, strict=True))


async def test_a_fresh_guest_shows_rockys_defaults_under_tuned_virtual_guest(fresh_guest):
    async with connect(fresh_guest) as conn:
        values = await _values(conn)
        profile = (await conn.run("tuned-adm active")).stdout
    assert values == {"swappiness": "30", "dirty_ratio": "30", "autogroup": "1", "thp": "[always] madvise never",
                      "defrag": "always defer defer+madvise [madvise] never",
                      "scheduler": "[mq-deadline] kyber bfq none"}
    assert profile == "Current active profile: virtual-guest\n"


async def test_runtime_changes_are_lost_at_reboot_and_persisted_ones_survive(fresh_guest):
    async with connect(fresh_guest) as conn:
        # Persisted: a sysctl.d file and a tuned profile.
        await conn.run("echo 'vm.swappiness = 1' | sudo tee /etc/sysctl.d/90-vast.conf && sudo sysctl --system",
                       check=True)
        await conn.run("sudo mkdir -p /etc/tuned/vast && printf '[main]\\ninclude=virtual-guest\\n[vm]\\n"
                       "transparent_hugepages=never\\n' | sudo tee /etc/tuned/vast/tuned.conf && "
                       "sudo tuned-adm profile vast", check=True)
        # Runtime only: what a forgetful tuning step would do.
        await conn.run("sudo sysctl -w kernel.sched_autogroup_enabled=0 vm.dirty_ratio=10", check=True)
        await conn.run("echo never | sudo tee /sys/kernel/mm/transparent_hugepage/defrag", check=True)
        await conn.run("echo none | sudo tee /sys/block/sda/queue/scheduler", check=True)
        before = await _values(conn)
    assert before == {"swappiness": "1", "dirty_ratio": "10", "autogroup": "0", "thp": "always madvise [never]",
                      "defrag": "always defer defer+madvise madvise [never]",
                      "scheduler": "mq-deadline kyber bfq [none]"}

    assert await reboot_over_ssh(fresh_guest) == "up"

    async with connect(fresh_guest) as conn:
        after = await _values(conn)
    assert after == {"swappiness": "1", "dirty_ratio": "30", "autogroup": "1", "thp": "always madvise [never]",
                     "defrag": "always defer defer+madvise [madvise] never",
                     "scheduler": "[mq-deadline] kyber bfq none"}


async def test_a_udev_rule_brings_the_scheduler_back_after_a_reboot(fresh_guest):
    rule = 'ACTION=="add|change", KERNEL=="sd[a-z]", ATTR{queue/scheduler}="none"'
    async with connect(fresh_guest) as conn:
        await conn.run(f"echo '{rule}' | sudo tee /etc/udev/rules.d/60-io-scheduler.rules >/dev/null && "
                       "sudo udevadm control --reload && sudo udevadm trigger", check=True)
        assert (await conn.run("cat /sys/block/sda/queue/scheduler")).stdout == "mq-deadline kyber bfq [none]\n"
    assert await reboot_over_ssh(fresh_guest, "sudo systemctl reboot") == "up"
    async with connect(fresh_guest) as conn:
        assert (await conn.run("cat /sys/block/sda/queue/scheduler")).stdout == "mq-deadline kyber bfq [none]\n"


async def test_services_come_back_as_enabled_not_as_they_were(fresh_guest):
    async with connect(fresh_guest) as conn:
        await conn.run("sudo dnf install -y qemu-guest-agent && sudo systemctl start qemu-guest-agent", check=True)
        await conn.run("sudo systemctl disable qemu-guest-agent && sudo systemctl stop crond", check=True)
        assert fresh_guest.lab.agent_running(fresh_guest.vmid)
    assert await reboot_over_ssh(fresh_guest) == "up"
    async with connect(fresh_guest) as conn:
        states = (await conn.run("systemctl is-active qemu-guest-agent crond vmtoolsd")).stdout.split()
    assert states == ["inactive", "active", "inactive"]  # vmtoolsd never runs on KVM
    assert not fresh_guest.lab.agent_running(fresh_guest.vmid)


async def test_the_controller_switch_needs_virtio_in_the_initramfs(fresh_guest):
    lab, vmid = fresh_guest.lab, fresh_guest.vmid
    virtio = dataclasses.replace(fresh_guest.hw, scsihw="virtio-scsi-single", disk_iothread=True)

    lab.power_off(vmid, graceful=True)
    lab.power_on(virtio)
    assert lab.wait_state(vmid, ("up", "unbootable")) == "unbootable"
    assert not lab.agent_running(vmid)
    assert "virtio_scsi" in lab.guest(vmid).error

    lab.power_off(vmid, graceful=False)  # back to PVSCSI, add the drivers, rebuild the initramfs
    lab.power_on(fresh_guest.hw)
    assert lab.wait_state(vmid, ("up", "unbootable")) == "up"
    async with connect(fresh_guest) as conn:
        await conn.run("echo 'add_drivers+=\" virtio_scsi virtio_blk \"' | sudo tee /etc/dracut.conf.d/virtio.conf"
                       " && sudo dracut -f", check=True)
        listing = (await conn.run("sudo lsinitrd | grep -c virtio_scsi.ko")).stdout
    assert listing == "1\n"
    lab.power_off(vmid, graceful=True)
    lab.power_on(virtio)
    assert lab.wait_state(vmid, ("up", "unbootable")) == "up"
    async with connect(fresh_guest) as conn:
        scheduler = (await conn.run("cat /sys/block/sda/queue/scheduler")).stdout
    assert scheduler == "mq-deadline kyber bfq [none]\n"  # multi-queue VirtIO SCSI: none by default
