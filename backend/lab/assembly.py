"""The whole lab guest: the Rocky guest (backend/lab/guest) with the VAST side plugged in.

At every boot the VAST tools, the lab clock and this boot's scenario are written into the guest
(`backend.lab.scenarios.on_boot`); the guest's /proc follows the scenario's curves
(`VastGuestLoad`); a `StallDriver` pauses the guest's processes for the scenario's stalls; and each
guest gets its VMS (`backend.lab.vms.VmsServer`), reached at the guest's address port 443 through
the lab's routes. A guest found running after a lab restart gets the same again.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from backend.clock import Clock
from backend.lab import scenarios
from backend.lab.facts import VMS_CERT_PATH
from backend.lab.faults import FaultPlan
from backend.lab.guest.lab import GuestLab
from backend.lab.guest.machine import LabGuest
from backend.lab.vast import CLOCK_PATH, GuestPaths, write_guest_clock, write_guest_vms_address
from backend.lab.vast.guestload import StallDriver, VastGuestLoad
from backend.lab.vms.server import VmsServer
from backend.lab.world import GuestFactory, GuestHardware, PowerHooks
from backend.lab.worldclock import publish, subscribe

log = logging.getLogger(__name__)

VMS_PORT = 443
# The guest's /proc counters advance at every tick of the lab; the monitoring agent samples up to
# 20 times a wall second, so the lab ticks faster than that (a kernel's counters never stand still).
TICK_WALL_S = 0.02


class VastGuestLab(GuestLab):
    """Lab guests running the VAST scenarios, each with its VMS and stall driver."""

    def __init__(self, state_dir: Path, clock: Clock, power: PowerHooks | None = None, *,
                 vms_user: str = "admin", vms_password: str = "123456", faults: FaultPlan | None = None,
                 behaviour: scenarios.VastBehaviour | None = None,
                 vms_cert_path: str | None = None, **options: Any) -> None:
        options.setdefault("tick_seconds", TICK_WALL_S)
        super().__init__(state_dir, clock, power=power, load_factory=self._load, on_boot=self._on_boot,
                         faults=faults, **options)
        self.vms_user, self.vms_password = vms_user, vms_password
        self.behaviour = behaviour or scenarios.VastBehaviour()
        self.vms_cert_path = vms_cert_path or VMS_CERT_PATH  # where the guest's VMS keeps its certificate
        self.vms: dict[int, VmsServer] = {}
        self.stalls: dict[int, StallDriver] = {}
        self._vast_lock = threading.Lock()
        self._unsubscribe = subscribe(clock, self._clock_changed)

    def paths(self, vmid: int) -> GuestPaths:
        folder = self.guests_dir / str(vmid)
        return GuestPaths(folder / "disk", folder / "runtime")

    # --- hooks of GuestLab --------------------------------------------------------------------

    def _load(self, hw: GuestHardware) -> VastGuestLoad:
        return VastGuestLoad(self.paths(hw.vmid))

    def _on_boot(self, disk: Path, runtime: Path, hw: GuestHardware) -> None:
        scenarios.on_boot(GuestPaths(disk, runtime), hw, self.clock, behaviour=self.behaviour,
                          vms_cert_path=self.vms_cert_path)
        self._attach(hw)

    def _adopt(self, guest: LabGuest) -> None:
        super()._adopt(guest)
        paths = self.paths(guest.vmid)
        if guest.state == "up" and paths.runtime is not None and paths.runtime.is_dir():
            # The VAST tools still running in it keep the lab's time, also when a resumed lab runs at
            # another speed (its clock was re-based): they read the clock file, never the lab.
            publish(self.clock, lambda state: write_guest_clock(paths, state))
        if guest.state in ("booting", "up"):
            self._attach(guest.hw)

    def _attach(self, hw: GuestHardware) -> None:
        """This guest's VMS (route: its address, port 443) and stall driver, once per lab process."""
        with self._vast_lock:
            vmid = hw.vmid
            if vmid not in self.vms:
                server = VmsServer(self.state_dir, self.clock, self.paths(vmid), user=self.vms_user,
                                   password=self.vms_password, faults=self.faults,
                                   guest_up=lambda: self.boot_state(vmid) == "up").start()
                self.vms[vmid] = server
                self.add_route(hw.ip, VMS_PORT, server.address)
            paths = self.paths(vmid)
            if paths.runtime is not None and paths.runtime.is_dir():  # vcli logs in there (in memory)
                write_guest_vms_address(paths, *self.vms[vmid].address)
            if vmid not in self.stalls:
                self.stalls[vmid] = StallDriver(self.paths(vmid), self.clock,
                                                pause=lambda lab_ms: self.pause(vmid, lab_ms)).start()

    def _clock_changed(self, state: dict) -> None:
        """The lab clock changed (a hold, a release): every running guest's tools learn it. Called
        under the clock's lock: reads the guests without taking the lab's lock."""
        for guest in list(self._guests.values()):
            paths = self.paths(guest.vmid)
            if guest.state in ("booting", "up") and paths.host(CLOCK_PATH).exists():
                write_guest_clock(paths, state)

    def close(self) -> None:
        self._unsubscribe()
        with self._vast_lock:
            drivers, self.stalls = list(self.stalls.values()), {}
            servers, self.vms = list(self.vms.values()), {}
        for driver in drivers:
            driver.stop()
        for server in servers:
            server.stop()
        super().close()


def vast_guest_factory(*, vms_user: str = "admin", vms_password: str = "123456",
                       faults: FaultPlan | None = None, behaviour: scenarios.VastBehaviour | None = None,
                       vms_cert_path: str | None = None,
                       **options: Any) -> GuestFactory:
    """A `backend.lab.world.GuestFactory` serving VAST lab guests."""

    def factory(state_dir: Path, clock: Clock, power: PowerHooks) -> VastGuestLab:
        return VastGuestLab(state_dir, clock, power, vms_user=vms_user, vms_password=vms_password,
                            faults=faults, behaviour=behaviour, vms_cert_path=vms_cert_path, **options).start()

    return factory
