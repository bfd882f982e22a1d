"""A recorded guest preparation for the dashboard's tests, generated in code: the prepare steps of
the plan with every tuning checked as the lab's guest reads it back (before and after the reboot)
and the preflight checklist, optionally with a tuning that was applied at run time only (lost
across the reboot) and failing preflight items."""

from __future__ import annotations

from backend import events as ev
from tests.recorded_runs import T0

TUNINGS = (  # (id, expected, observed), as the lab's guest answers
    ("qemu-guest-agent", "active", "active"),
    ("vmtoolsd", "inactive, disabled", "inactive, disabled"),
    ("virtio-initramfs", "virtio_blk virtio_scsi", "virtio_blk virtio_scsi"),
    ("docker", "active", "active"),
    ("docker-group", "member of docker", "member of docker"),
    ("thp-enabled", "never", "never"),
    ("thp-defrag", "never", "never"),
    ("io_scheduler", "mq-deadline", "mq-deadline"),
    ("sysctl:vm.swappiness", "1", "1"),
    ("sysctl:vm.dirty_ratio", "10", "10"),
    ("sysctl:vm.dirty_background_ratio", "5", "5"),
    ("sysctl:kernel.sched_migration_cost_ns", "5000000", "5000000"),
    ("sysctl:kernel.sched_autogroup_enabled", "0", "0"),
    ("limits:fs.inotify.max_user_watches", ">= 1048576", "1048576"),
    ("limits:fs.inotify.max_user_instances", ">= 8192", "8192"),
    ("limits:nofile", ">= 1048576", "1048576"),
)
STAGE1 = 3  # the first three: tune_stage1 (guest agent, vmtoolsd, VirtIO drivers)

PREFLIGHT = (  # (id, title, expected, observed, severity)
    ("vcpus_le_cores", "vCPUs not above the host's physical cores", "<= 12", "12 (1 socket x 12 cores)", "blocker"),
    ("ballooning_off", "Memory ballooning disabled", "balloon=0", "balloon=0", "blocker"),
    ("iothread", "VirtIO SCSI single with an IO thread on the OS disk", "virtio-scsi-single, iothread=1",
     "virtio-scsi-single, iothread=1", "blocker"),
    ("cpu_host", "CPU type host", "host", "host", "blocker"),
    ("memory_vm", "VM memory", ">= 119 GiB (the guest sees ≈116.5 GiB)", "120 GiB (the guest sees ≈117.5 GiB)",
     "blocker"),
    ("guest_agent", "QEMU guest agent answering", "answers", "answers", "blocker"),
    ("kvm", "Running under KVM", "kvm", "kvm", "blocker"),
    ("memory_guest", "Memory the guest sees (MemTotal)", ">= 116.3 GiB (the field run's peak use; VM 120 GiB)",
     "117.5 GiB total, 114.1 GiB available", "blocker"),
    ("cpus_guest", "CPUs the guest sees", "12", "12", "warning"),
    ("disk", "OS disk", ">= 500 GiB", "sda 1000 GiB", "blocker"),
    ("bundle_bootstrap", "VAST bootstrap script", "/vast/bundles/vast_bootstrap.sh", "present", "blocker"),
    ("bundle_tarball", "VAST release tarball", "/vast/bundles/vastdata_release_2043819.vast.tar.gz", "present",
     "blocker"),
    ("thp-enabled", "Transparent huge pages: never", "never", "never", "warning"),
    ("io_scheduler", "I/O scheduler mq-deadline on the OS disk", "mq-deadline", "mq-deadline", "warning"),
    ("sysctl:vm.swappiness", "vm.swappiness = 1", "1", "1", "warning"),
)

PREP_STEPS = (  # (id, title, seconds)
    ("guest_connect", "Connect to the guest over SSH", 20),
    ("grow_root", "Grow the root filesystem to the disk", 40),
    ("tune_stage1", "Guest agent, vmtoolsd off, VirtIO drivers", 60),
    ("tune_stage2", "Docker, THP, I/O scheduler, sysctls, limits", 240),
    ("shutdown_for_switch", "Shut down for the controller switch", 30),
    ("switch_controller", "Switch to VirtIO SCSI single with an IO thread", 5),
    ("second_boot", "Boot on VirtIO SCSI (the reboot that proves the tuning persists)", 90),
    ("verify_after_reboot", "Verify every tuning after the reboot", 20),
    ("preflight", "Preflight checklist", 10),
    ("snapshot_pre_install", "Snapshot pre-install", 10),
)


def plan() -> list[tuple[str, str, str]]:
    return [(step, title, "prepare") for step, title, _ in PREP_STEPS]


def preparation_events(*, lost: tuple[str, ...] = (), failing: dict[str, str] | None = None,
                       until: str | None = None) -> list[ev.Event]:
    """The prepare group from T0: `lost` tunings read back wrong after the reboot (applied at run
    time only), `failing` preflight items (id -> observed) fail; stops after the step `until`."""
    failing = failing or {}
    out: list[ev.Event] = [ev.RunStarted(ts=T0, run_id="recorded-prep", target="lab seed x30", vm_name="vast-lb",
                                         clock={"scale": 30.0, "origin_wall": T0, "origin_target": T0},
                                         version="0.1.0")]
    t = T0 + 1
    for step, title, seconds in PREP_STEPS:
        out.append(ev.StepStarted(ts=t, step=step, title=title, group="prepare"))
        checks: list[tuple[str, str, str]] = []
        after = False
        if step == "tune_stage1":
            checks = list(TUNINGS[:STAGE1])
        elif step == "tune_stage2":
            checks = list(TUNINGS[STAGE1:])
        elif step == "verify_after_reboot":
            checks, after = list(TUNINGS), True
        for n, (tuning_id, expected, observed) in enumerate(checks):
            bad = after and tuning_id in lost
            out.append(ev.TuningChecked(ts=t + n + 1, id=tuning_id, expected=expected,
                                        observed="none" if bad else observed, ok=not bad, after_reboot=after,
                                        persisted=not bad, reason="applied at run time only" if bad else ""))
        if step == "preflight":
            items = [{"id": i, "title": title_, "expected": expected, "observed": failing.get(i, observed),
                      "ok": i not in failing, "severity": severity}
                     for i, title_, expected, observed, severity in PREFLIGHT]
            ok = not any(not item["ok"] and item["severity"] == "blocker" for item in items)
            out.append(ev.PreflightChecked(ts=t + 5, items=items, ok=ok))
        t += seconds
        out.append(ev.StepFinished(ts=t, step=step, ok=True))
        if step == until:
            break
    return out
