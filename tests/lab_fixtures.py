"""Reusable fixtures for tests that need a lab guest (import the ones you use into your test module).

    # ruff: noqa: F811  (at the top of the test module: fixtures are parameters by design)
    from tests.lab_fixtures import guest_lab, running_guest, connect, hardware  # noqa: F401

- `guest_lab` (module scope): a `GuestLab` on a fresh state directory, lab clock at speed 600
  (a 40 s boot takes ~0.1 s), shut down (every guest powered off) at the end of the module.
- `running_guest` (module scope): VM 100 of `guest_lab` booted and up: a `RunningGuest` with
  its lab, vmid, SSH host/port (through `lab.route`), known_hosts path and hardware.
- `fresh_guest` (function scope): its own lab and booted guest, for tests that reboot, power off
  or change the disk; `resized_guest` likewise on a 1000 GiB disk (the OVA's root not grown yet).
- `connect(guest, user="centos", password="centos", **kw)`: an asyncssh connection to the guest
  that checks the lab's host key (`async with connect(g) as conn: await conn.run(...)`).
- `hardware(vmid=100, **changes)`: the field run's VM (12 vCPUs, 120 GiB, cpu host, PVSCSI controller,
  600 GiB disk) on the seed host, with changes.

Every test using these is skipped with the lab's own one-sentence reason where the lab guest
cannot run (no unprivileged user namespaces).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from backend.lab.guest.lab import GuestLab
from backend.lab.guest.support import guest_unavailable_reason
from backend.lab.world import GuestHardware
from backend.lab.worldclock import WorldClock

SPEED = 600.0

SEED_VM = GuestHardware(
    vmid=100, name="vast-loopback", vcpus=12, sockets=1, cores=12, memory_mib=122880, balloon_mib=0,
    cpu_type="host", scsihw="pvscsi", disk_iothread=False, disk_gib=600, host_cores=12, host_threads=24,
    host_cpu_model="AMD Ryzen Threadripper 2920X 12-Core Processor", mac="BC:24:11:5A:3C:09",
    ip="192.168.30.109",
)


def hardware(vmid: int = 100, **changes: object) -> GuestHardware:
    return dataclasses.replace(SEED_VM, vmid=vmid, **changes)


def require_lab_guest() -> None:
    reason = guest_unavailable_reason()
    if reason:
        pytest.skip(reason)


@dataclass
class RunningGuest:
    lab: GuestLab
    vmid: int
    hw: GuestHardware

    @property
    def address(self) -> tuple[str, int]:
        return self.lab.route(self.hw.ip, 22)

    @property
    def known_hosts(self) -> Path:
        return self.lab.known_hosts_path()

    def run(self, command: str, user: str = "root"):
        """Run a command in the guest without SSH (to set up or inspect state)."""
        return self.lab.exec(self.vmid, command, user=user)


def boot(lab: GuestLab, hw: GuestHardware, timeout: float = 30.0) -> RunningGuest:
    lab.power_on(hw)
    state = lab.wait_state(hw.vmid, ("up", "unbootable"), timeout)
    assert state == "up", f"guest {hw.vmid} did not come up: {state} {lab.guest(hw.vmid).error}"
    return RunningGuest(lab, hw.vmid, hw)


def open_lab(path: Path, speed: float = SPEED, **kwargs: object) -> GuestLab:
    require_lab_guest()
    return GuestLab(path, WorldClock.scaled(speed), **kwargs).start()


@pytest.fixture(scope="module")
def guest_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestLab]:
    lab = open_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield lab
    finally:
        lab.shutdown()


@pytest.fixture(scope="module")
def running_guest(guest_lab: GuestLab) -> RunningGuest:
    return boot(guest_lab, hardware(100))


@pytest.fixture
def fresh_guest(tmp_path: Path) -> Iterator[RunningGuest]:
    lab = open_lab(tmp_path / "lab")
    try:
        yield boot(lab, hardware(100))
    finally:
        lab.shutdown()


RESIZED_DISK_GIB = 1000  # the run's disk, resized through the API from the OVA's 600 GiB


@pytest.fixture
def resized_guest(tmp_path: Path) -> Iterator[RunningGuest]:
    """Its own lab and a guest of the OVA whose VM disk was resized to 1000 GiB before its first boot
    (its partition and filesystem still the OVA's)."""
    lab = open_lab(tmp_path / "lab")
    try:
        yield boot(lab, hardware(100, disk_gib=RESIZED_DISK_GIB))
    finally:
        lab.shutdown()


def connect(guest: RunningGuest, user: str = "centos", password: str | None = "centos",
            **kwargs: object) -> asyncssh.SSHClientConnection:
    host, port = guest.address
    options: dict = {"username": user, "known_hosts": str(guest.known_hosts)}
    if password is not None:
        options["password"] = password
    options.update(kwargs)
    return asyncssh.connect(host, port, **options)


def wait_for_new_boot(guest: RunningGuest, since_boot_wall: float, timeout: float = 30.0) -> str:
    """Wait until the guest has booted again (after a reboot asked from inside) and is up or unbootable."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lab_guest = guest.lab.guest(guest.vmid)
        if lab_guest.state in ("up", "unbootable") and lab_guest.boot_wall != since_boot_wall:
            return lab_guest.state
        if lab_guest.state == "unbootable":
            return "unbootable"
        time.sleep(0.02)
    return guest.lab.boot_state(guest.vmid)


async def reboot_over_ssh(guest: RunningGuest, command: str = "sudo reboot") -> str:
    """Ask the guest to reboot over SSH, as a user would; the connection drops. Returns the new state."""
    import asyncio
    import contextlib

    booted = guest.lab.guest(guest.vmid).boot_wall
    async with connect(guest) as conn:
        # The guest goes down under the command, as a real reboot does.
        with contextlib.suppress(asyncssh.Error, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(conn.run(command), timeout=20)
    return await asyncio.to_thread(wait_for_new_boot, guest, booted)
