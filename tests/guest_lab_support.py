"""Helpers for the guest client's tests on the lab guest: a GuestClient connected to a
`RunningGuest` (host key checked against the lab's known_hosts), a bus that records, a reboot."""

from __future__ import annotations

from backend.clients.guestssh import GuestClient, GuestCredentials
from backend.run.bus import EventBus
from backend.secrets import Secret
from tests.lab_fixtures import RunningGuest, boot, hardware


async def client(guest: RunningGuest, bus: EventBus | None = None) -> GuestClient:
    password = Secret("centos", public=True)  # the OVA's documented default, not a secret
    return await GuestClient.connect(guest.hw.ip, 22, GuestCredentials("centos", password=password),
                                     known_hosts=guest.known_hosts, route=guest.lab.route,
                                     bus=bus, clock=guest.lab.clock, label=f"centos@{guest.hw.ip}")


def recording_bus(guest: RunningGuest) -> EventBus:
    bus = EventBus(guest.lab.clock)
    bus.seen = []  # type: ignore[attr-defined]
    bus.subscribe(bus.seen.append)  # type: ignore[attr-defined]
    return bus


def reboot(guest: RunningGuest, **hardware_changes: object) -> RunningGuest:
    """Power the guest off and boot it again (optionally on changed hardware, e.g. VirtIO SCSI)."""
    guest.lab.power_off(guest.vmid, graceful=True)
    guest.lab.wait_state(guest.vmid, "off")
    return boot(guest.lab, hardware(guest.vmid, **hardware_changes) if hardware_changes else guest.hw)
