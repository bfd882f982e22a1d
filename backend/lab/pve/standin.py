"""A stand-in for the lab's guest side: in memory, no SSH, no files. For the Proxmox side alone.

`StandInGuests` implements `GuestHooks` just enough for the Proxmox API to be exercised (and
served by `vast-loopback lab` until the real guest side is wired in): a powered-on VM boots in
`boot_s` lab seconds, its agent runs once it is up if `agent_installed`, it answers the agent's
network query with the VM's DHCP address. It keeps no disk state; snapshots are names only.
"""

from __future__ import annotations

import threading

from backend.clock import Clock
from backend.lab.world import GuestHardware


class StandInGuests:
    """In-memory guests; thread-safe."""

    def __init__(self, clock: Clock, *, boot_s: float = 60.0, agent_installed: bool = True,
                 unbootable_scsihw: tuple[str, ...] = ()) -> None:
        self.clock = clock
        self.boot_s = boot_s
        self.agent_installed = agent_installed
        self.unbootable_scsihw = unbootable_scsihw
        self.hardware: dict[int, GuestHardware] = {}
        self.powered_at: dict[int, float] = {}
        self.snapshots: dict[int, list[str]] = {}
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def power_on(self, hw: GuestHardware) -> None:
        with self._lock:
            self.hardware[hw.vmid] = hw
            self.powered_at[hw.vmid] = self.clock.now()
            self.calls.append(("power_on", hw.vmid))

    def power_off(self, vmid: int, graceful: bool) -> None:
        with self._lock:
            self.powered_at.pop(vmid, None)
            self.calls.append(("power_off", vmid, graceful))

    def boot_state(self, vmid: int) -> str:
        with self._lock:
            started = self.powered_at.get(vmid)
            if started is None:
                return "off"
            if self.hardware[vmid].scsihw in self.unbootable_scsihw:
                return "unbootable"
            return "up" if self.clock.now() - started >= self.boot_s else "booting"

    def agent_running(self, vmid: int) -> bool:
        return self.agent_installed and self.boot_state(vmid) == "up"

    def agent_interfaces(self, vmid: int) -> list[dict]:
        hw = self.hardware.get(vmid)
        interfaces = [{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
            {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
            {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]}]
        if hw is not None:
            interfaces.append({"name": "ens18", "hardware-address": hw.mac.lower(), "ip-addresses": [
                {"ip-address": hw.ip, "ip-address-type": "ipv4", "prefix": hw.prefix}]})
        return interfaces

    def snapshot(self, vmid: int, name: str) -> None:
        with self._lock:
            self.snapshots.setdefault(vmid, []).append(name)
            self.calls.append(("snapshot", vmid, name))

    def rollback(self, vmid: int, name: str) -> None:
        with self._lock:
            self.calls.append(("rollback", vmid, name))

    def destroy(self, vmid: int) -> None:
        with self._lock:
            self.hardware.pop(vmid, None)
            self.powered_at.pop(vmid, None)
            self.snapshots.pop(vmid, None)
            self.calls.append(("destroy", vmid))
