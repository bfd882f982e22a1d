"""The lab's world: its clock, its Proxmox host and VMs, the guests inside them, and the VMS.

Everything the world knows lives under one state directory (a run's `lab/` folder), so the world
outlives the process that served it: after a SIGKILL, `LabWorld.open` on the same directory finds
the same VMs, snapshots and guest files, and the clock continues where it was (lab time kept
running while the process was dead, as it would on a real host).

Layout of the state directory:
    clock.json              origin of the lab clock and its speed
    pve/state.json          the Proxmox side: VMs, configs, snapshots, tasks (backend/lab/pve)
    pve-requests.jsonl      every API request: {"method", "path", "params"}
    vms-requests.jsonl      every VMS request
    guests/<vmid>/          one guest per VM: its root filesystem and runtime files (backend/lab/guest)
    tls/, ssh/              the lab's certificate and host keys, fixed for the life of the lab

The Proxmox side and the guest side talk only through the two protocols below.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from backend.clock import Clock
from backend.lab.worldclock import WorldClock
from backend.run.safefiles import write_private

if TYPE_CHECKING:
    from backend.lab.faults import FaultPlan


@dataclass(frozen=True)
class GuestHardware:
    """What a booting guest sees of its VM (and what the scenarios read: vCPUs vs host cores, RAM)."""

    vmid: int
    name: str
    vcpus: int
    sockets: int
    cores: int
    memory_mib: int
    balloon_mib: int
    cpu_type: str
    scsihw: str  # "lsi" | "virtio-scsi-single" | ...
    disk_iothread: bool
    disk_gib: int
    host_cores: int
    host_threads: int
    host_cpu_model: str
    mac: str
    ip: str  # the address DHCP gives the guest's NIC ("" when nothing serves DHCP on its bridge)
    prefix: int = 24  # the prefix length of that address's subnet
    bridge: str = "vmbr0"  # the bridge (or SDN VNet) the NIC is on
    disk_bus: str = "scsi"  # the boot disk's bus: "scsi" | "sata" | "ide" | "virtio"
    machine: str = "q35"  # "q35" | "pc" (i440fx, Proxmox's default machine)

    def to_dict(self) -> dict:
        return asdict(self)


class GuestHooks(Protocol):
    """What the Proxmox side asks of the guest side."""

    def power_on(self, hw: GuestHardware) -> None:
        """The VM was started: boot the guest (it comes up after a boot delay on the lab clock)."""

    def power_off(self, vmid: int, graceful: bool) -> None:
        """The VM was shut down (graceful) or stopped: every guest process ends."""

    def boot_state(self, vmid: int) -> str:
        """"off" | "booting" | "up" | "unbootable" (e.g. virtio controller without drivers)."""

    def agent_running(self, vmid: int) -> bool:
        """Whether qemu-guest-agent runs in the guest (enabled, installed, booted)."""

    def agent_interfaces(self, vmid: int) -> list[dict]:
        """The guest agent's network-get-interfaces reply."""

    def snapshot(self, vmid: int, name: str) -> None:
        """Keep the guest's disk state under `name`."""

    def rollback(self, vmid: int, name: str) -> None:
        """Put the guest's disk state back to snapshot `name` (VM is stopped)."""

    def destroy(self, vmid: int) -> None:
        """Forget the guest entirely."""


class PowerHooks(Protocol):
    """What the guest side asks of the Proxmox side (a reboot or poweroff from inside the guest)."""

    def guest_initiated(self, vmid: int, action: str) -> None:
        """action: "reboot" | "poweroff"."""


def load_clock(state_dir: Path, speed: float) -> WorldClock:
    """The lab clock of this state directory; created on first use, continued afterwards.

    A resumed world keeps its origin, so lab time = origin + speed x wall time since the origin,
    including the time the process was dead; a new speed re-bases the clock at the current lab time.
    The file follows the clock at every change (a hold, its release: backend/lab/worldclock.py).
    """
    path = state_dir / "clock.json"
    if path.exists():
        clock = WorldClock.from_snapshot(json.loads(path.read_text()), speed)
    else:
        now = time.time()
        clock = WorldClock(speed, now, now)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(clock.snapshot()))
    clock.subscribe(lambda snapshot: write_private(path, json.dumps(snapshot)))
    return clock


# --- the composed lab ----------------------------------------------------------------------------

GuestFactory = Callable[[Path, Clock, PowerHooks], GuestHooks]


def standin_guest_factory(state_dir: Path, clock: Clock, power: PowerHooks) -> GuestHooks:
    """The in-memory stand-in guest (no SSH): what the lab uses until the real guest side is wired in."""
    from backend.lab.pve.standin import StandInGuests

    return StandInGuests(clock)


class LabWorld:
    """The lab composed: state directory, lab clock, host profile, Proxmox API, guest side (and later
    the VMS). `start()` serves it in background threads; `stop()` ends them; the state stays on disk.
    """

    def __init__(self, state_dir: Path, profile: str = "seed", speed: float = 1.0, *,
                 token_id: str = "root@pam!vlb", token_secret: str | None = None,
                 faults: FaultPlan | None = None, guest_factory: GuestFactory | None = None,
                 port: int = 0) -> None:
        from backend.lab.profiles import load_profile

        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.speed = float(speed)
        self.clock = load_clock(self.state_dir, self.speed)
        self.faults = faults
        if faults is not None and faults.clock_now is None:
            faults.clock_now = self.clock.now
        self._token = (token_id, token_secret)
        self._guest_factory = guest_factory or standin_guest_factory
        self._port = port
        self.guest: GuestHooks | None = None
        self.pve = None  # backend.lab.pve.server.PveServer once started

    def start(self) -> LabWorld:
        from backend.lab.pve.server import PveServer

        power = _LatePowerHooks()
        self.guest = self._guest_factory(self.state_dir, self.clock, power)
        token_id, token_secret = self._token
        self.pve = PveServer(self.state_dir, self.profile, self.clock, self.guest, token_id=token_id,
                             token_secret=token_secret, port=self._port, faults=self.faults).start()
        power.target = self.pve
        return self

    def stop(self) -> None:
        if self.pve is not None:
            self.pve.stop()
            self.pve = None
        closer = getattr(self.guest, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> LabWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoints(self) -> dict:
        """What a client needs: the Proxmox URL, token id, TLS fingerprint, node names, schema note."""
        if self.pve is None:
            raise RuntimeError("the lab is not started")
        return {"profile": self.profile.name, "speed": self.speed, "state_dir": str(self.state_dir),
                "proxmox": self.pve.endpoints()}

    @property
    def token_secret(self) -> str:
        if self.pve is None:
            raise RuntimeError("the lab is not started")
        return self.pve.token_secret


class _LatePowerHooks:
    """PowerHooks handed to the guest side before the Proxmox side exists; forwards once it does."""

    def __init__(self) -> None:
        self.target: PowerHooks | None = None

    def guest_initiated(self, vmid: int, action: str) -> None:
        if self.target is not None:
            self.target.guest_initiated(vmid, action)
