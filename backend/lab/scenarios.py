"""The lab's three scenarios: how a VAST install goes on the VM the wizard actually created.

The scenario follows from the VM's hardware and the world's facts (backend/lab/facts.py), never
from a flag the client passes nor from the product's rules:
- `oom` when the containers' demand exceeds what this VM's guest has. The demand replays the field
  run's used memory (MemTotal - MemAvailable, memory.log); the guest's MemTotal follows from the VM's
  RAM as the EL8 kernel on its disk leaves it (facts.guest_memtotal_kib, or the overhead of the guest
  recording the OVA was loaded from: backend/lab/guest/image.py). The kill comes at the moment the demand
  crosses it: during activation for a 112 GiB VM (the field's ramp to 112 GiB at 18:49:33), just
  after ONLINE for a 117 GiB one, after the deploy finished for a 118 GiB one (the field's peak,
  116.3 GiB, came 17 min after it); a 120 GiB VM (MemTotal 117.5 GiB) never meets it.
- `overcommit` when the VM has more vCPUs than the host has physical cores (the field's 24 on 12
  died of a P653 PANIC in vmsg_keepalive_fiber), and its guest holds the overcommitted world's
  demand (facts.OVERCOMMIT_DEMANDS: attempt 2's 109Gi guest held it, and panicked; in the
  "field-ramp" reading the activation's ramp comes first and a guest below it meets the OOM killer).
- `success` otherwise (12 vCPUs / 120 GiB on the seed host: the field run's timeline, 32 min 41 s).

`build(hw, boot_t)` returns the scenario as a JSON-able dict: the tools' timelines (see
backend/lab/vast/timeline.py), the key times, the stall schedule and what the load model needs.
The lab writes it into the guest at power-on (`write_guest_scenario`).
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path

from backend.clock import Clock
from backend.lab import facts
from backend.lab.facts import VMS_CERT_DAYS, VMS_CERT_PATH
from backend.lab.guest.image import read_kernel
from backend.lab.vast import (
    BUILD,
    SCENARIO_PATH,
    GuestPaths,
    as_paths,
    install_guest_files,
    timeline,
    write_guest_clock,
)
from backend.lab.vast.curves import GIB, demand_at, demand_crossing, guest_mem_total
from backend.lab.world import GuestHardware
from backend.lab.worldclock import publish

SUCCESS, OOM, OVERCOMMIT = "success", "oom", "overcommit"
SCENARIOS = (SUCCESS, OOM, OVERCOMMIT)  # the demo's scenarios, by name (listed here only)
DEFAULT_OVERCOMMIT_DEMAND = facts.OVERCOMMIT_DEMANDS[0]


def _when(since: float) -> str:
    if since < timeline.ONLINE_AT:
        return "during activation"
    if since < timeline.DEPLOY_DONE_AT:
        return f"{since - timeline.ONLINE_AT:.0f} s after ONLINE"
    return f"{since - timeline.DEPLOY_DONE_AT:.0f} s after the deploy finished"


def choose(hw: GuestHardware, overcommit_demand: str = DEFAULT_OVERCOMMIT_DEMAND,
           mem_total: int | None = None) -> tuple[str, str, float | None]:
    """(scenario, the reason in one sentence, seconds into cluster create of the first OOM kill);
    `mem_total` (bytes) is the guest's MemTotal when its kernel is not the lab's own."""
    mem_total = mem_total or guest_mem_total(hw.memory_mib)
    guest = f"the {mem_total / GIB:.1f} GiB MemTotal of a {hw.memory_mib / 1024:g} GiB VM's guest"
    overcommitted = hw.vcpus > hw.host_cores
    model = overcommit_demand if overcommitted else None
    until = timeline.ACTIVATING_AT + timeline.PANIC_AFTER if overcommitted else None
    crossing = demand_crossing(mem_total, model, until)
    if crossing is not None:
        return OOM, (f"the containers' demand reaches {demand_at(crossing, model):.1f} GiB {_when(crossing)}, "
                     f"more than {guest}: the OOM killer strikes"), crossing
    if overcommitted:
        return OVERCOMMIT, (f"{hw.vcpus} vCPUs on {hw.host_cores} physical cores: steal and stalls grow under "
                            f"the activation load until VAST panics ({guest} holds the starved activation)"), None
    return SUCCESS, (f"{hw.vcpus} vCPUs on {hw.host_cores} cores, and {guest} holds the field run's peak use "
                     f"of {facts.FIELD_PEAK_USED_KIB / 2**20:.1f} GiB: the field run"), None


def select(hw: GuestHardware, overcommit_demand: str = DEFAULT_OVERCOMMIT_DEMAND) -> tuple[str, str]:
    """(scenario, the reason in one sentence) for a VM's hardware."""
    name, reason, _ = choose(hw, overcommit_demand)
    return name, reason


def overcommit_stalls() -> list[tuple[float, float]]:
    """Stalls (seconds after cluster create started, lab ms) of the overcommitted guest: from
    ACTIVATING on, one every 20 s, lengths rising from 100 ms by 25 % each to 5 s, until the PANIC.
    Modelled (the field had no stall detector on that run): the keepalive fiber's PANIC says it was
    starved, and the UNKNOWN state 117 s into activation marks when the leader lost its heartbeat."""
    stalls, at, length = [], timeline.ACTIVATING_AT + 15, 100.0
    while at < timeline.ACTIVATING_AT + timeline.PANIC_AFTER:
        stalls.append((at, round(length, 1)))
        at += 20
        length = min(length * 1.25, 5000.0)
    return stalls


def oom_stalls(oom_at: float) -> list[tuple[float, float]]:
    """Direct-reclaim stalls in the 20 s before the kill (modelled)."""
    return [(oom_at - 18, 150.0), (oom_at - 9, 450.0), (oom_at - 2, 900.0)]


def vms_tls_paths(cert_path: str = VMS_CERT_PATH) -> dict[str, str]:
    """Where the guest's VMS keeps its certificate and key (the key beside it, `.key`)."""
    return {"cert": cert_path, "key": posixpath.splitext(cert_path)[0] + ".key", "days": VMS_CERT_DAYS}


@dataclass(frozen=True)
class VastBehaviour:
    """How this lab's VAST answers where nobody knows the real answer (backend/lab/facts.py, chosen in
    the lab's answers): start_vms.sh after a reboot, the shape of a VTask's messages, and the
    overcommitted activation's memory demand."""

    start_vms_after_reboot: str = facts.START_VMS_AFTER_REBOOT_DEFAULT
    vtask_messages: str = facts.VTASK_MESSAGES_DEFAULT
    overcommit_demand: str = DEFAULT_OVERCOMMIT_DEMAND

    def __post_init__(self) -> None:
        if self.start_vms_after_reboot not in facts.START_VMS_AFTER_REBOOT:
            raise ValueError(f"start_vms_after_reboot: one of {facts.START_VMS_AFTER_REBOOT}")
        if self.vtask_messages not in facts.VTASK_MESSAGES:
            raise ValueError(f"vtask_messages: one of {facts.VTASK_MESSAGES}")
        if self.overcommit_demand not in facts.OVERCOMMIT_DEMANDS:
            raise ValueError(f"overcommit_demand: one of {facts.OVERCOMMIT_DEMANDS}")


def build(hw: GuestHardware, boot_t: float, *, build_name: str = BUILD,
          behaviour: VastBehaviour | None = None, vms_cert_path: str = VMS_CERT_PATH,
          mem_total: int | None = None) -> dict:
    """The scenario of a guest booted at lab time `boot_t` with hardware `hw` (and MemTotal
    `mem_total` in bytes, when its kernel is not the lab's own)."""
    behaviour = behaviour or VastBehaviour()
    restart = facts.PLATFORM_RESTART_POLICY[behaviour.start_vms_after_reboot]
    overcommit_demand = behaviour.overcommit_demand
    mem_total = mem_total or guest_mem_total(hw.memory_mib)
    name, reason, crossing = choose(hw, overcommit_demand, mem_total)
    times: dict[str, float] = {"activating": timeline.ACTIVATING_AT, "init": timeline.INIT_AT}
    if name == OOM:
        # the timeline models kills from activation on (a guest too small for what comes before is no VM
        # anyone sizes for the cluster)
        oom_at = round(max(float(crossing or 0.0), timeline.ACTIVATING_AT + 10), 1)
        create = timeline.create_oom(oom_at, restart)
        times.update(oom=oom_at, oom_second_after=timeline.OOM_SECOND_KILL_AFTER)
        if oom_at >= timeline.ONLINE_AT:
            times.update(online=timeline.ONLINE_AT)
        if oom_at >= timeline.DEPLOY_DONE_AT:
            times.update(deploy_done=timeline.DEPLOY_DONE_AT)
        else:
            times.update(deploy_failed=oom_at + timeline.OOM_FAILED_AFTER)
        stalls = oom_stalls(oom_at)
    elif name == OVERCOMMIT:
        create = timeline.create_overcommit(restart)
        a = timeline.ACTIVATING_AT
        times.update(unknown=a + timeline.UNKNOWN_AFTER, panic=a + timeline.PANIC_AFTER,
                     deploy_failed=a + timeline.FAILED_AFTER)
        stalls = overcommit_stalls()
    else:
        create = timeline.create_success(restart)
        times.update(online=timeline.ONLINE_AT, deploy_done=timeline.DEPLOY_DONE_AT)
        stalls = []
    return {
        "version": 1,
        "name": name,
        "reason": reason,
        "boot_t": boot_t,
        "ip": hw.ip,
        "interface": "eth0",
        "build": build_name,
        "hardware": hw.to_dict(),
        "mem_total": mem_total,
        "overcommit_demand": overcommit_demand if hw.vcpus > hw.host_cores else None,
        "vms_tls": vms_tls_paths(vms_cert_path),
        "times": times,  # seconds after cluster create started
        "stalls": [[at, ms] for at, ms in stalls],
        "behaviour": asdict(behaviour),
        "texts": {"extra_mounts_warning": facts.EXTRA_VOLUME_MOUNTS_WARNING},
        "tools": {
            "bootstrap": timeline.bootstrap(),
            "cluster_create": create,
            "start_deployed": timeline.start(True, facts.RESTART_VMS_UP_S, facts.RESTART_ONLINE_S, restart),
            "start_fresh": timeline.start(False, facts.RESTART_VMS_UP_S, facts.RESTART_ONLINE_S, restart),
            "bringup": timeline.bringup(facts.RESTART_VMS_UP_S, facts.RESTART_ONLINE_S),
        },
    }


def write_guest_scenario(guest: GuestPaths | Path, hw: GuestHardware, boot_t: float, **options: object) -> dict:
    """Write the scenario into the guest (at every boot: it lives in /run); returns it. The guest's
    MemTotal is what the kernel on its disk leaves of the VM's RAM."""
    mem_total = read_kernel(as_paths(guest).disk).memtotal_kib(hw.memory_mib) * 1024
    scenario = build(hw, boot_t, mem_total=mem_total, **options)
    target = as_paths(guest).host(SCENARIO_PATH)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(scenario))
    os.replace(tmp, target)
    return scenario


def read_guest_scenario(guest: GuestPaths | Path) -> dict | None:
    try:
        return json.loads(as_paths(guest).host(SCENARIO_PATH).read_text())
    except (FileNotFoundError, ValueError):
        return None


def on_boot(guest: GuestPaths, hw: GuestHardware, clock: Clock, *, behaviour: VastBehaviour | None = None,
            vms_cert_path: str = VMS_CERT_PATH) -> dict:
    """Everything the VAST side needs when a lab guest boots: the current tools on its disk, the lab
    clock and this boot's scenario in its /run. Returns the scenario."""
    install_guest_files(guest.disk)
    publish(clock, lambda state: write_guest_clock(guest, state))
    return write_guest_scenario(guest, hw, clock.now(), behaviour=behaviour, vms_cert_path=vms_cert_path)
