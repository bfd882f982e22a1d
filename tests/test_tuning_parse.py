"""How the tuning catalog reads what the guest says: sysfs choice files, the sysctl files the boot
applies, dracut, tuned and udev configuration. Pure functions, against the formats the real tools
write."""

from __future__ import annotations

from backend.steps import tuning


def test_sysfs_choice_files_in_bracket_and_plain_form():
    assert tuning.bracketed("always madvise [never]") == "never"
    assert tuning.bracketed("[always] madvise never\n") == "always"
    assert tuning.bracketed("[mq-deadline] kyber bfq none") == "mq-deadline"
    assert tuning.bracketed("none [mq-deadline]") == "mq-deadline"
    assert tuning.bracketed("never\n") == "never"
    assert tuning.bracketed("mq-deadline") == "mq-deadline"


def test_effective_sysctl_follows_systemd_sysctl_order():
    files = {
        "/usr/lib/sysctl.d/50-default.conf": "vm.swappiness = 60\nkernel.sched_autogroup_enabled=1\n",
        "/usr/lib/sysctl.d/99-vast-loopback.conf": "vm.swappiness = 30\n",  # hidden by /etc's file
        "/etc/sysctl.d/99-sysctl.conf": "# nothing\n; nothing either\n",
        "/etc/sysctl.d/99-vast-loopback.conf": "vm.swappiness = 1\n-kernel/sched_autogroup_enabled = 0\n",
        "/etc/sysctl.d/10-early.conf": "vm.dirty_ratio = 40\n",
    }
    values = tuning.effective_sysctl(files)
    assert values["vm.swappiness"] == "1"
    assert values["kernel.sched_autogroup_enabled"] == "0"
    assert values["vm.dirty_ratio"] == "40"


def test_a_later_file_overrides_ours_and_is_noticed():
    files = {
        "/etc/sysctl.d/99-vast-loopback.conf": "vm.swappiness = 1\n",
        "/etc/sysctl.d/99-zz-local.conf": "vm.swappiness = 10\n",
    }
    assert tuning.effective_sysctl(files)["vm.swappiness"] == "10"


def test_set_assignment_replaces_once_and_keeps_the_rest():
    text = "# header\nvm.swappiness = 30\nvm.dirty_ratio=20\nvm.swappiness=40\n"
    updated = tuning.set_assignment(text, "vm.swappiness", "1")
    assert updated == "# header\nvm.swappiness = 1\nvm.dirty_ratio=20\n"
    assert tuning.set_assignment(updated, "vm.swappiness", "1") == updated
    assert tuning.set_assignment("", "kernel.sched_autogroup_enabled", "0") == "kernel.sched_autogroup_enabled = 0\n"


def test_dracut_drivers_as_the_field_report_wrote_them():
    assert tuning.drivers_in('add_drivers+=" virtio_scsi virtio_blk "\n') == {"virtio_scsi", "virtio_blk"}
    assert tuning.drivers_in("force_drivers+='virtio_blk'\n# add_drivers+=\" virtio_scsi \"") == {"virtio_blk"}
    assert tuning.drivers_in("hostonly=yes\n") == set()


def test_udev_rule_matches_the_disk():
    rule = tuning.udev_rule("sda", "mq-deadline")
    assert tuning.udev_sets_scheduler(rule, "sda", "mq-deadline")
    assert not tuning.udev_sets_scheduler(rule, "sdb", "mq-deadline")
    assert not tuning.udev_sets_scheduler(rule, "sda", "bfq")
    generic = 'ACTION=="add|change", KERNEL=="sd[a-z]|vd[a-z]", ATTR{queue/scheduler}="mq-deadline"\n'
    assert tuning.udev_sets_scheduler(generic, "vda", "mq-deadline")
    assert not tuning.udev_sets_scheduler("# " + generic, "vda", "mq-deadline")


def test_tuned_profile_sets_both_thp_files():
    profile = tuning.tuned_profile()
    assert tuning.ini_value(profile, "vm", "transparent_hugepages") == "never"
    assert tuning.ini_value(profile, "vm", "transparent_hugepage.defrag") == "never"
    assert tuning.ini_value(profile, "main", "include") is None  # virtual-guest would bring its own sysctls


def test_catalog_ids_are_the_ones_the_report_looks_for():
    ids = [step.id for step in tuning.catalog()]
    assert len(ids) == len(set(ids))
    for needle in ("thp", "io_scheduler", "vm.swappiness", "vm.dirty_ratio", "vm.dirty_background_ratio",
                   "kernel.sched_migration_cost_ns", "kernel.sched_autogroup_enabled", "qemu-guest-agent",
                   "vmtoolsd", "docker"):
        assert any(needle in step_id for step_id in ids), needle
    assert [s.id for s in tuning.stage(tuning.catalog(), 1)] == ["qemu-guest-agent", "vmtoolsd", "virtio-initramfs"]
    without = [step.id for step in tuning.catalog(limits=False)]
    assert not [i for i in without if i.startswith("limits")]
    for step in tuning.catalog():
        assert step.reason and step.evidence and step.expected and step.persisted_by


def test_probe_output_is_parsed_into_values_and_files():
    values, files = tuning.parse_probe("runtime=always madvise [never]\ntuned=enabled\n==> profile <==\n[main]\nx=1\n\n")
    assert values == {"runtime": "always madvise [never]", "tuned": "enabled"}
    assert files["profile"].startswith("[main]\nx=1\n")
