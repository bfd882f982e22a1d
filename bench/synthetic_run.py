"""A synthetic run directory for benchmarks and tests: a successful install on the field run's
timeline followed by hours of steady state, with tuning checks, faults and recoveries, stalls and
one sampling gap half-way through. Deterministic for a given seed.

    python bench/synthetic_run.py OUT [--hours 24] [--seed 7]

At 24 hours it holds 86,400 samples in the monitoring agent's format (one per second, a two-minute
gap where the monitor was down, made up by running two minutes longer).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import events as ev  # noqa: E402
from backend.model.hostfacts import GIB  # noqa: E402
from backend.run.journal import SAMPLES, Journal, RunDir  # noqa: E402

T0 = 1767571200.0  # 2026-01-05 00:00:00 UTC
TOTAL_GIB = 117.5
CONTAINERS = {  # steady-state GiB, as in the field run's docker stats
    "vast_platform_11.0.0.1-4200": 49.1, "vast_platform_11.0.0.1-4100": 38.4, "vast_platform_11.0.0.1-4300": 8.1,
    "vast_platform_11.0.0.1-4400": 8.1, "vast_vms": 7.1, "mcvms": 0.9, "registry": 0.01,
}
TUNING = (
    ("thp_enabled", "never"), ("thp_defrag", "never"), ("io_scheduler", "mq-deadline"), ("vm.swappiness", "1"),
    ("vm.dirty_ratio", "10"), ("vm.dirty_background_ratio", "5"), ("kernel.sched_migration_cost_ns", "5000000"),
    ("kernel.sched_autogroup_enabled", "0"), ("qemu-guest-agent", "active"), ("vmtoolsd", "inactive"),
    ("docker", "active"),
)


def _events(install: float, end: float, rng: random.Random, gap: tuple[float, float]) -> list[ev.Event]:
    out: list[ev.Event] = [ev.RunStarted(ts=T0, run_id="synthetic", target="synthetic (bench)", vm_name="vast-lb"),
                           ev.MonitorStarted(ts=T0 + 1, agent_version="1", interval_s=1.0, python="3.6.8")]
    facts = {"node": "pve", "online": True, "cpu_model": "AMD Ryzen Threadripper 2920X", "sockets": 1, "cores": 12,
             "threads": 24, "mem_total": int(125.8 * GIB), "mem_used": int(3 * GIB), "hvm": True,
             "pve_version": "9.1.3", "storages": [], "bridges": ["vmbr0"], "running_vms": 0}
    out.append(ev.HostFactsGathered(ts=T0 + 2, node="pve", facts=facts, pve_version="9.1.3"))
    steps = [("connect", "Connect to Proxmox", "provision", T0 + 2, 3), ("create_vm", "Create the VM", "provision", T0 + 5, 60),
             ("first_boot", "First boot", "provision", T0 + 65, 60), ("tune_guest", "Tune the guest", "prepare", T0 + 125, 175),
             ("switch_controller", "Switch to VirtIO SCSI single", "prepare", T0 + 300, 120),
             ("snapshot_pre_install", "Snapshot pre-install", "prepare", T0 + 420, 20)]
    phases = [("system_checks", "System checks", 0), ("docker", "Docker readiness", 0), ("vast_dirs", "VAST directories", 0),
              ("ssh_keys", "SSH keys", 0), ("cleanup", "Cleanup", 0), ("bootstrap", "Bootstrap", 887),
              ("cluster_create", "Create the loopback cluster", 1074), ("wait_online", "Wait for ONLINE", 1),
              ("verify", "Verify", 1)]
    t = install
    for step, title, seconds in phases:
        steps.append((step, title, "install", t, seconds))
        t += seconds
    steps.append(("snapshot_installed", "Snapshot installed", "finish", t, 15))
    for step, title, group, start, seconds in steps:
        out.append(ev.StepStarted(ts=start, step=step, title=title, group=group))
        out.append(ev.StepFinished(ts=start + seconds, step=step, ok=True))
    out.append(ev.VmCreated(ts=T0 + 60, vmid=100, node="pve", name="vast-lb",
                            config={"cores": 12, "sockets": 1, "memory": 120320, "cpu": "host", "balloon": 0,
                                    "scsihw": "virtio-scsi-single"}))
    for after_reboot, base in ((False, T0 + 290), (True, T0 + 415)):
        for i, (tid, value) in enumerate(TUNING):
            out.append(ev.TuningChecked(ts=base + i * 0.1, id=tid, expected=value, observed=value, ok=True,
                                        after_reboot=after_reboot, persisted=True if after_reboot else None))
    create = install + 887
    for offset, state, previous in ((90, "INIT", ""), (99, "ACTIVATING", "INIT"), (740, "ONLINE", "ACTIVATING")):
        out.append(ev.ClusterStateChanged(ts=create + offset, state=state, previous=previous))
    out.append(ev.VtaskChanged(ts=create + 1068, name="cluster_deploy", task_id=2, state="COMPLETED", runtime_s=1064.11))
    out.append(ev.InstallLogAppended(ts=install + 5, source="bootstrap", offset=60,
                                     lines=["unpacking ./vastdata_release_2043819.vast.tar.gz", "starting VMS"]))
    hour = 3600.0
    for k in range(1, int((end - T0) // (2 * hour)) + 1):
        at = T0 + k * 2 * hour + rng.uniform(0, 600)
        out.append(ev.RetryScheduled(ts=at, operation="GET /api/latest/clusters/", attempt=1,
                                     error="HTTP 503 Service Unavailable", delay_s=2.0))
        out.append(ev.RecoveredFromFault(ts=at + 2.5, operation="GET /api/latest/clusters/", attempts=2,
                                         error="HTTP 503 Service Unavailable"))
    out.append(ev.GuestDisconnected(ts=gap[0] - 5, reason="connection reset by peer"))
    out.append(ev.GuestReconnected(ts=gap[1], attempts=3, down_s=gap[1] - gap[0] + 5))
    out.append(ev.SamplingGapped(ts=gap[1], start=gap[0], end=gap[1], reason="SSH connection lost"))
    t = install
    while t < end:
        t += rng.expovariate(1 / 600.0)
        length = 50 + rng.expovariate(1 / 60.0)
        out.append(ev.StallDetected(ts=t, start=t - length / 1000, length_ms=round(length, 1)))
    out.append(ev.RunFinished(ts=end, outcome="online", exit_code=0))
    return out


def _sample(t: float, dt: float, install: float, rng: random.Random, agent_cpu: float) -> dict:
    since = t - install
    create = install + 887
    if since < 0:
        user, used, load = 1.0, 3.0, 0.1
    elif t < create:
        user, used, load = 8 + 4 * rng.random(), 4 + 8 * since / 887, 1.5
    elif t < create + 99:
        user, used, load = 40 + 40 * rng.random(), 12 + 30 * (t - create) / 99, 5.0
    elif t < create + 740:
        user, used, load = 70 + 15 * rng.random(), min(114.0, 44 + 70 * (t - create - 99) / 120), 30 + 50 * rng.random()
    else:
        user, used, load = 60 + 25 * rng.random(), 114.5 + 1.5 * math.sin(t / 5000.0), 28 + 12 * rng.random()
    steal = rng.expovariate(1 / 0.5) if rng.random() < 0.7 else 0.0
    sys_pct = user * 0.3
    idle = max(0.0, 100 - user - sys_pct - steal)
    containers = {}
    if t >= create:
        share = min(1.0, max(0.05, (used - 4) / 110))
        containers = {name: {"mem": int(gib * share * GIB), "limit": int(TOTAL_GIB * GIB)}
                      for name, gib in CONTAINERS.items()}
    total = int(TOTAL_GIB * GIB)
    available = total - int(used * GIB)
    return {
        "t": t, "dt": dt,
        "cpu": {"user": round(user, 2), "nice": 0.0, "sys": round(sys_pct, 2), "iowait": round(rng.random(), 2),
                "irq": 0.0, "soft": 0.5, "steal": round(steal, 2), "idle": round(idle, 2),
                "steal_max_cpu": round(steal * 3, 2), "ncpu": 12},
        "load": [round(load, 2), round(load * 0.9, 2), round(load * 0.7, 2)], "runnable": int(load), "tasks": 3500,
        "mem": {"total": total, "available": available, "used": total - available, "free": available // 2,
                "buffers": 4096, "cached": available // 2},
        "disks": {"sda": {"r_s": round(200 * rng.random(), 1), "w_s": round(150 * rng.random(), 1),
                          "rkb_s": round(4000 * rng.random(), 1), "wkb_s": round(3000 * rng.random(), 1),
                          "r_await": round(rng.expovariate(1 / 0.3), 2), "w_await": round(rng.expovariate(1 / 0.4), 2),
                          "util": round(30 * rng.random(), 1)}},
        "containers": containers, "oom_kill": 0, "agent_cpu_s": round(agent_cpu, 3),
        "hb": {"max_ms": round(rng.expovariate(1 / 1.5), 2), "n": 10},
        "gaps_hist": {"50": 0, "100": 0, "250": 0, "500": 0, "1000": 0, "2000": 0, "5000": 0},
    }


def write_synthetic_run(path: str | Path, hours: float = 24.0, seed: int = 7) -> RunDir:
    """Write the run under `path` (which must not exist or be empty) and return it."""
    rng = random.Random(seed)
    run = RunDir.create(path, vm_name="synthetic")
    install = T0 + 440
    middle = T0 + round(hours * 1800.0)
    gap = (middle, middle + 120)  # two minutes without samples, half-way through
    end = T0 + hours * 3600.0 + 120
    journal = Journal(run)
    try:
        for event in sorted(_events(install, end, rng, gap), key=lambda e: e.ts):
            journal(event)
    finally:
        journal.close()
    with (run.path / SAMPLES).open("w", encoding="utf-8") as handle:
        t, previous, agent_cpu = T0, T0, 0.0
        while t < end:
            if not gap[0] <= t < gap[1]:
                agent_cpu += 0.0005
                sample = _sample(t, round(t - previous, 3) or 1.0, install, rng, agent_cpu)
                handle.write(json.dumps({"type": "SampleTaken", "ts": t, "sample": sample}, separators=(",", ":")))
                handle.write("\n")
                previous = t
            t += 1.0
    run.update_meta(status="finished", outcome="online", synthetic=True)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    run = write_synthetic_run(args.out, args.hours, args.seed)
    print(f"wrote {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
