"""Small recorded runs for the dashboard's tests and bench, generated in code (never copied from
../shared): the three shapes of the field report's attempts, on its timeline compressed `k`-fold.

- success: 12 vCPUs / 120 GiB; steal peaks at 26.7 % in bootstrap, MemAvailable bottoms at 1.2 GiB
  in activation, one stall of 1.21 s, a 20 s sampling gap with an SSH reconnect, an API retry;
  INIT -> ACTIVATING -> ONLINE; exit 0.
- oom: a 100 GiB VM (its guest sees 97.8 GiB: the report's 97 GB); memory runs into the VM's size during activation, the OOM killer strikes twice,
  cluster_deploy FAILED; exit 1.
- overcommit: 24 vCPUs on 12 cores; steal climbs, stalls grow from 100 ms to 5 s, PANIC[P653] in
  vmsg_keepalive_fiber, ACTIVATING -> UNKNOWN -> INIT, cluster_deploy FAILED; exit 1.

Everything is deterministic: fixed start time, seeded noise.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from backend import events as ev
from backend.model.hostfacts import GIB
from backend.run.journal import Journal, RunDir
from tests.conftest import SEED

T0 = 1767031800.0  # 2025-12-29 18:10:00 UTC, the field run's day
SHAPES = ("success", "oom", "overcommit")
CONTAINERS = {"vast_platform_4200": 0.43, "vast_platform_4100": 0.34, "vast_platform_4300": 0.07,
              "vast_platform_4400": 0.07, "vast_vms": 0.065, "mcvms": 0.008}  # share of the containers' memory


@dataclass(frozen=True)
class Timeline:
    """Key times of a recorded run (epoch seconds on the target clock)."""

    monitor: float
    bootstrap: float
    create: float
    init: float
    activating: float
    online: float | None
    failed: float | None  # when the install failed (oom, overcommit)
    end: float
    mem_total: float  # bytes, what the guest sees


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def timeline(shape: str, k: float) -> Timeline:
    prep = [2, 3, 60, 45, 60, 60, 15, 10]
    monitor = T0 + sum(prep[:4]) * k
    bootstrap = T0 + sum(prep) * k
    create = bootstrap + 887 * k
    init, activating = create + 90 * k, create + 99 * k
    if shape == "success":
        online, failed, end = create + 740 * k, None, create + 1074 * k + 15 * k
        total = 117.5
    elif shape == "oom":
        online, failed, end, total = None, activating + 160 * k, activating + 170 * k, 97.8
    else:
        online, failed, end, total = None, activating + 130 * k, activating + 140 * k, 117.5
    return Timeline(monitor, bootstrap, create, init, activating, online, failed, end, total * GIB)


def _steps(shape: str, k: float, tl: Timeline) -> list[ev.Event]:
    out: list[ev.Event] = []
    vcpus = 24 if shape == "overcommit" else 12
    memory_mib = 102400 if shape == "oom" else 122880  # VMs of 100 and 120 GiB: their guests see 97.8 and 117.5
    t = T0
    plan = [("connect", "Connect to Proxmox", "provision", 2), ("check_ova", "Check the OVA", "provision", 3),
            ("create_vm", "Create the VM", "provision", 60), ("first_boot", "First boot", "provision", 45),
            ("tune_guest", "Tune the guest", "prepare", 60),
            ("switch_controller", "Switch to VirtIO SCSI single", "prepare", 60),
            ("verify_tuning", "Verify the tuning", "prepare", 15),
            ("snapshot_pre_install", "Snapshot pre-install", "prepare", 10)]
    for step, title, group, seconds in plan:
        out.append(ev.StepStarted(ts=t, step=step, title=title, group=group))
        end = t + seconds * k
        if step == "create_vm":
            out.append(ev.StepProgressed(ts=t + seconds * k / 2, step=step, message="importing the OVA's disk"))
            out.append(ev.VmCreated(ts=end, vmid=100, node="pve", name="vast-lb",
                                    config={"cores": vcpus, "sockets": 1, "memory": memory_mib, "cpu": "host",
                                            "balloon": 0, "scsihw": "virtio-scsi-single"}))
        if step == "first_boot":
            out.append(ev.GuestAddressResolved(ts=end - 1, address="192.0.2.50", source="dhcp"))
            out.append(ev.GuestConnected(ts=end, address="192.0.2.50", user="vastdata", host_key="SHA256:test"))
            out.append(ev.MonitorStarted(ts=end, agent_version="1", interval_s=1.0, python="3.6.8"))
        if step == "snapshot_pre_install":
            out.append(ev.SnapshotCreated(ts=end, vmid=100, name="pre-install"))
        out.append(ev.StepFinished(ts=end, step=step, ok=True, result={"vmid": 100} if step == "create_vm" else {}))
        t = end
    out.append(ev.StepStarted(ts=tl.bootstrap, step="bootstrap", title="Bootstrap", group="install"))
    for i in range(int((tl.create - tl.bootstrap) // (60 * k))):
        at = tl.bootstrap + i * 60 * k + 1
        out.append(ev.InstallLogAppended(ts=at, source="bootstrap", offset=100 * (i + 1),
                                         lines=[f"[{_clock(at)}] bootstrap: loading image layer {i + 1}"]))
    out.append(ev.StepFinished(ts=tl.create, step="bootstrap", ok=True))
    out.append(ev.StepStarted(ts=tl.create, step="cluster_create", title="Create the loopback cluster",
                              group="install"))
    out.append(ev.VtaskChanged(ts=tl.create + 5 * k, name="cluster_deploy", task_id=2, state="RUNNING"))
    out.append(ev.ClusterStateChanged(ts=tl.init, state="INIT", source="api"))
    out.append(ev.ClusterStateChanged(ts=tl.activating, state="ACTIVATING", previous="INIT", source="api"))
    out.append(ev.InstallLogAppended(ts=tl.activating, source="cluster_create", offset=5000,
                                     lines=[f"[{_clock(tl.activating)}] Cluster state: ACTIVATING"]))
    if shape == "success":
        assert tl.online is not None
        out.append(ev.RetryScheduled(ts=tl.activating + 200 * k, operation="GET /api/latest/clusters/", attempt=1,
                                     error="HTTP 503 Service Unavailable", delay_s=2.0))
        out.append(ev.RecoveredFromFault(ts=tl.activating + 200 * k + 2, operation="GET /api/latest/clusters/",
                                         attempts=2, error="HTTP 503 Service Unavailable"))
        out.append(ev.ClusterStateChanged(ts=tl.online, state="ONLINE", previous="ACTIVATING", source="api"))
        out.append(ev.InstallLogAppended(ts=tl.online, source="cluster_create", offset=6000,
                                         lines=[f"[{_clock(tl.online)}] Cluster state: ONLINE"]))
        done = tl.create + 1068 * k
        out.append(ev.VtaskChanged(ts=done, name="cluster_deploy", task_id=2, state="COMPLETED",
                                   runtime_s=round(1064.11 * k, 2)))
        out.append(ev.StepFinished(ts=tl.create + 1074 * k, step="cluster_create", ok=True))
        out.append(ev.StepStarted(ts=tl.create + 1074 * k, step="snapshot_installed", title="Snapshot installed",
                                  group="finish"))
        out.append(ev.SnapshotCreated(ts=tl.end, vmid=100, name="installed"))
        out.append(ev.StepFinished(ts=tl.end, step="snapshot_installed", ok=True))
        out.append(ev.RunFinished(ts=tl.end, outcome="online", exit_code=0))
        return out
    assert tl.failed is not None
    if shape == "oom":
        for n, at in enumerate((tl.activating + 50 * k, tl.activating + 90 * k), 1):
            text = (f"Out of memory: Killed process {31000 + n} (vms_server) total-vm:{48 + n}000000kB, "
                    f"anon-rss:{40 + n}000000kB")
            out.append(ev.KernelMessageSeen(ts=at, source="kmsg", text=text, level="err", match="oom"))
        message = "cluster_deploy FAILED: VMS lost its containers"
    else:
        panic = tl.activating + 117 * k
        out.append(ev.InstallLogAppended(ts=panic, source="cluster_create", offset=7000, lines=[
            f"[{_clock(panic)}] PANIC[P653] vmsg_keepalive_fiber: keepalive fiber starved (test_if_stuck)"]))
        out.append(ev.ClusterStateChanged(ts=panic + 1, state="UNKNOWN", previous="ACTIVATING", source="api"))
        out.append(ev.ClusterStateChanged(ts=panic + 9 * k, state="INIT", previous="UNKNOWN", source="api"))
        message = "cluster_deploy FAILED: the cluster fell back to INIT"
    out.append(ev.VtaskChanged(ts=tl.failed, name="cluster_deploy", task_id=2, state="FAILED", message=message))
    out.append(ev.StepFinished(ts=tl.failed, step="cluster_create", ok=False, error=message))
    out.append(ev.RunFinished(ts=tl.end, outcome="failed", exit_code=1, message=message))
    return out


def _stalls(shape: str, k: float, tl: Timeline) -> list[tuple[float, float]]:
    """(start, length ms) of the stalls the agent saw."""
    stalls = [(tl.bootstrap + 100 * k, 62.0), (tl.bootstrap + 400 * k, 85.0), (tl.create + 20 * k, 130.0)]
    if shape == "success":
        stalls += [(tl.activating + 150 * k, 310.0), (tl.activating + 300 * k, 1210.0)]
    elif shape == "overcommit":
        first, last = tl.activating + 15 * k, tl.activating + 115 * k
        for i in range(12):
            stalls.append((first + (last - first) * i / 11, round(100.0 * 50 ** (i / 11), 1)))
    return stalls


def _sampling_gap(shape: str, k: float, tl: Timeline) -> tuple[float, float] | None:
    if shape != "success":
        return None
    start = round(tl.bootstrap + 200 * k)
    return float(start), float(start + 20)


def _memory_used_gib(shape: str, k: float, tl: Timeline, t: float) -> float:
    total = tl.mem_total / GIB
    if t < tl.bootstrap:
        return 3.0
    if t < tl.create:
        return 3.0 + 9.0 * (t - tl.bootstrap) / (tl.create - tl.bootstrap)
    if t < tl.activating:
        return 12.0 + 30.0 * (t - tl.create) / (tl.activating - tl.create)
    since = t - tl.activating
    if shape == "success":
        if since < 240 * k:
            return 42.0 + (116.3 - 42.0) * since / (240 * k)
        if since < 300 * k:
            return 116.3
        return 113.0
    if shape == "oom":
        need = 42.0 + (116.3 - 42.0) * min(1.0, since / (60 * k))
        kills = (since >= 50 * k) + (since >= 90 * k)
        return min(need, total - 0.35) - 6.0 * kills
    return 42.0 + 50.0 * min(1.0, since / (120 * k))


def _steal(shape: str, k: float, tl: Timeline, t: float, rng: random.Random) -> float:
    noise = rng.random()
    if tl.bootstrap <= t < tl.create:
        x = (t - tl.bootstrap) / (tl.create - tl.bootstrap)
        peak = 26.7 if shape != "overcommit" else 31.0
        hump = max(0.0, 1.0 - abs(x - 0.6) / 0.25)
        peak_t = tl.bootstrap + 0.6 * (tl.create - tl.bootstrap)
        return peak if abs(t - peak_t) < 0.5 else round(min(peak * hump ** 2 + noise, peak - 0.1), 2)
    if shape == "overcommit" and t >= tl.create:
        return round(min(45.0, 4.0 + 41.0 * (t - tl.create) / (tl.activating + 117 * k - tl.create)) + noise, 2)
    return round(noise * 2.0, 2)


def _samples(shape: str, k: float, tl: Timeline, stalls: list[tuple[float, float]]) -> list[ev.Event]:
    rng = random.Random(f"{shape}:{k}")
    gap = _sampling_gap(shape, k, tl)
    ncpu = 24 if shape == "overcommit" else 12
    out: list[ev.Event] = []
    t, previous, oom_kills = float(int(tl.monitor) + 1), tl.monitor, 0
    while t <= tl.end:
        if gap and gap[0] <= t < gap[1]:
            t += 1
            continue
        used = _memory_used_gib(shape, k, tl, t) * GIB
        available = tl.mem_total - used
        active = tl.activating <= t and (tl.failed is None or t < tl.failed)
        user = (60 + 20 * rng.random()) if active else (15 + 10 * rng.random() if t >= tl.bootstrap else 2.0)
        load1 = (28 + 12 * rng.random()) if active else (3 + rng.random() if t >= tl.bootstrap else 0.3)
        steal = _steal(shape, k, tl, t, rng)
        hist = {str(e): 0 for e in (50, 100, 250, 500, 1000, 2000, 5000)}
        for start, length in stalls:
            if previous < start + length / 1000 <= t:  # the agent counts a gap once it is over
                edge = max(e for e in (50, 100, 250, 500, 1000, 2000, 5000) if length >= e)
                hist[str(edge)] += 1
        if shape == "oom":
            oom_kills = sum(1 for at in (tl.activating + 50 * k, tl.activating + 90 * k) if t >= at)
        containers = {}
        if t >= tl.create:
            box_total = max(0.0, used - 4 * GIB)
            containers = {name: {"mem": int(box_total * share), "limit": int(tl.mem_total)}
                          for name, share in CONTAINERS.items()}
        sample = {
            "t": t, "dt": round(t - previous, 3),
            "cpu": {"user": round(user, 2), "nice": 0.0, "sys": round(user * 0.25, 2), "iowait": 0.5, "irq": 0.0,
                    "soft": 0.4, "steal": steal, "idle": round(max(0.0, 100 - user * 1.25 - steal), 2),
                    "steal_max_cpu": round(min(100.0, steal * 1.8), 2), "ncpu": ncpu},
            "load": [round(load1, 2), round(load1 * 0.8, 2), round(load1 * 0.5, 2)], "runnable": int(load1),
            "tasks": 900,
            "mem": {"total": int(tl.mem_total), "available": int(available), "used": int(used),
                    "free": int(available * 0.4), "buffers": 0, "cached": int(available * 0.5)},
            "disks": {"sda": {"r_s": 40.0, "w_s": 80.0, "rkb_s": 900.0, "wkb_s": 2100.0, "r_await": 0.4,
                              "w_await": 0.7, "util": 12.0}},
            "containers": containers, "oom_kill": oom_kills, "agent_cpu_s": round((t - tl.monitor) * 0.0004, 4),
            "hb": {"max_ms": round(rng.random() * 3, 2), "n": 10}, "gaps_hist": hist,
        }
        out.append(ev.SampleTaken(ts=t, sample=sample))
        previous = t
        t += 1
    return out


def recorded_events(shape: str, k: float = 0.25) -> list[ev.Event]:
    """The run's events, samples included, in time order (as the journal would hand them back)."""
    assert shape in SHAPES, shape
    tl = timeline(shape, k)
    out: list[ev.Event] = [
        ev.RunStarted(ts=T0, run_id=f"recorded-{shape}", target="lab (seed host, speed 30)", vm_name="vast-lb",
                      clock={"scale": 30.0, "origin_wall": T0, "origin_target": T0}, version="0.1.0"),
        ev.HostFactsGathered(ts=T0 + 0.5, node="pve", facts=SEED.to_dict(), pve_version="9.1.3"),
    ]
    out += _steps(shape, k, tl)
    stalls = _stalls(shape, k, tl)
    out += [ev.StallDetected(ts=start + length / 1000, start=start, length_ms=length) for start, length in stalls]
    gap = _sampling_gap(shape, k, tl)
    if gap:
        out += [ev.GuestDisconnected(ts=gap[0], reason="connection reset by peer"),
                ev.GuestReconnected(ts=gap[1], attempts=3, down_s=gap[1] - gap[0]),
                ev.SamplingGapped(ts=gap[1], start=gap[0], end=gap[1], reason="SSH connection lost")]
    out += _samples(shape, k, tl, stalls)
    return sorted(out, key=lambda e: e.ts)


def write_recorded_run(path: str | Path, shape: str, k: float = 0.25) -> RunDir:
    """The recorded run written as a run directory, through the journal (events and samples)."""
    run = RunDir.create(path, vm_name="vast-lb")
    journal = Journal(run)
    try:
        for event in recorded_events(shape, k):
            journal(event)
    finally:
        journal.close()
    return run
