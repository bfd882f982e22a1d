"""The lab's three scenarios: how a VAST install goes on the VM the wizard actually created.

The scenario follows from the VM's hardware, never from a flag the client passes:
- `oom` when the VM's RAM is below what activation needs. The field's 97 GB VM died of the OOM
  killer during activation; the 117 GiB one worked, with its guest using 112.7-113.0 GiB
  (MemTotal - MemAvailable, of which ~107.5 GiB in the containers) for the first ten minutes of
  activation and MemAvailable down to 4.5 GiB. The threshold is the sizing rule's minimum,
  `backend.sizing.MEMORY_MIN_GIB` (112 GiB), so the lab and the wizard's blocker agree: a smaller VM
  cannot hold that peak next to what the kernel keeps (see curves.guest_mem_total). Checked first:
  the field's OOM run also had 24 vCPUs, and the kill comes ~50 s into activation, long before the
  overcommit's trouble.
- `overcommit` when the VM has more vCPUs than the host has physical cores (the field's 24 on 12
  died of a P653 PANIC in vmsg_keepalive_fiber).
- `success` otherwise (12 vCPUs / 117 GiB on the seed host: the field run's timeline, 32 min 41 s).

`build(hw, boot_t)` returns the scenario as a JSON-able dict: the tools' timelines (see
backend/lab/vast/timeline.py), the key times, the stall schedule and what the load model needs.
The lab writes it into the guest at power-on (`write_guest_scenario`).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path

from backend.clock import Clock
from backend.lab.facts import VMS_CERT_DAYS, VMS_CERT_PATH
from backend.lab.vast import (
    BUILD,
    SCENARIO_PATH,
    GuestPaths,
    as_paths,
    install_guest_files,
    timeline,
    write_guest_clock,
)
from backend.lab.vast.curves import FIELD_CREATE_START, activation_crossing, guest_mem_total
from backend.lab.world import GuestHardware
from backend.sizing import MEMORY_MIN_GIB

SUCCESS, OOM, OVERCOMMIT = "success", "oom", "overcommit"
OOM_BELOW_MIB = MEMORY_MIN_GIB * 1024


def select(hw: GuestHardware) -> tuple[str, str]:
    """(scenario, the reason in one sentence) for a VM's hardware."""
    if hw.memory_mib < OOM_BELOW_MIB:
        return OOM, (f"{hw.memory_mib / 1024:.0f} GiB of RAM is below the {MEMORY_MIN_GIB} GiB that activation "
                     "needs: the OOM killer strikes during activation")
    if hw.vcpus > hw.host_cores:
        return OVERCOMMIT, (f"{hw.vcpus} vCPUs on {hw.host_cores} physical cores: steal and stalls grow under "
                            "the activation load until VAST panics")
    return SUCCESS, f"{hw.vcpus} vCPUs on {hw.host_cores} cores and {hw.memory_mib / 1024:.0f} GiB: the field run"


def _oom_at(mem_total: int) -> float:
    """Seconds after cluster create started at which the first OOM kill comes."""
    crossing = activation_crossing(mem_total)
    field_t = crossing if crossing is not None else FIELD_CREATE_START + timeline.ACTIVATING_AT + 45
    return round(max(field_t - FIELD_CREATE_START, timeline.ACTIVATING_AT + 10), 1)


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


def build(hw: GuestHardware, boot_t: float, *, vms_user: str = "admin", vms_password: str = "123456",
          build_name: str = BUILD, vms_cert_path: str = VMS_CERT_PATH) -> dict:
    """The scenario of a guest booted at lab time `boot_t` with hardware `hw`."""
    name, reason = select(hw)
    mem_total = guest_mem_total(hw.memory_mib)
    times: dict[str, float] = {"activating": timeline.ACTIVATING_AT, "init": timeline.INIT_AT}
    if name == OOM:
        oom_at = _oom_at(mem_total)
        create = timeline.create_oom(oom_at)
        times.update(oom=oom_at, oom_second_after=timeline.OOM_SECOND_KILL_AFTER,
                     deploy_failed=oom_at + timeline.OOM_FAILED_AFTER)
        stalls = oom_stalls(oom_at)
    elif name == OVERCOMMIT:
        create = timeline.create_overcommit()
        a = timeline.ACTIVATING_AT
        times.update(unknown=a + timeline.UNKNOWN_AFTER, panic=a + timeline.PANIC_AFTER,
                     deploy_failed=a + timeline.FAILED_AFTER)
        stalls = overcommit_stalls()
    else:
        create = timeline.create_success()
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
        "vms_auth": {"user": vms_user, "password_sha256": hashlib.sha256(vms_password.encode()).hexdigest()},
        "vms_tls": vms_tls_paths(vms_cert_path),
        "times": times,  # seconds after cluster create started
        "stalls": [[at, ms] for at, ms in stalls],
        "tools": {
            "bootstrap": timeline.bootstrap(),
            "cluster_create": create,
            "start_deployed": timeline.start(cluster_deployed=True),
            "start_fresh": timeline.start(cluster_deployed=False),
        },
    }


def write_guest_scenario(guest: GuestPaths | Path, hw: GuestHardware, boot_t: float, **options: str) -> dict:
    """Write the scenario into the guest (at every boot: it lives in /run); returns it."""
    scenario = build(hw, boot_t, **options)
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


def on_boot(guest: GuestPaths, hw: GuestHardware, clock: Clock, *, vms_user: str = "admin",
            vms_password: str = "123456", vms_cert_path: str = VMS_CERT_PATH) -> dict:
    """Everything the VAST side needs when a lab guest boots: the current tools on its disk, the lab
    clock and this boot's scenario in its /run. Returns the scenario."""
    install_guest_files(guest.disk)
    write_guest_clock(guest, clock.to_dict())
    return write_guest_scenario(guest, hw, clock.now(), vms_user=vms_user, vms_password=vms_password,
                                vms_cert_path=vms_cert_path)
