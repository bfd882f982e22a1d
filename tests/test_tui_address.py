"""The wizard's Storage & network step says up front when `dhcp` cannot work from where vast-loopback
runs (check's own finding, backend.steps.provision.evaluate) and asks for the guest's address."""

from __future__ import annotations

import dataclasses

from textual.widgets import Input

from backend.model.hostfacts import BridgeFacts, HostInventory
from backend.steps.guestaddr import LocalNetworks
from tests.conftest import SEED
from tests.tui_helpers import FINGERPRINT, Opener, make_app, to_step
from tui.widgets.wizard.findings import FindingsList

NODE = dataclasses.replace(SEED, networks=(BridgeFacts("vmbr0", "bridge", cidr="192.168.30.10/24"),))
ON_LAN = LocalNetworks(({"iface": "eth0", "address": "192.168.30.5", "cidr": "192.168.30.0/24"},))
ELSEWHERE = LocalNetworks(({"iface": "wlan0", "address": "10.77.0.5", "cidr": "10.77.0.0/24"},))


@dataclasses.dataclass
class LocalOpener(Opener):
    """Probes that also say what this machine's networks are."""

    local: LocalNetworks | None = None

    async def __call__(self, answers):  # noqa: ANN001, ANN204 - Opener's signature
        probe = await super().__call__(answers)
        probe.local_networks = self.local
        return probe


def _opener(local: LocalNetworks) -> LocalOpener:
    return LocalOpener(facts=HostInventory("9.1.3", (NODE,), FINGERPRINT), local=local)


async def test_dhcp_this_machine_cannot_see_is_refused_and_the_address_asked_for():
    app = make_app(opener=_opener(ELSEWHERE))
    async with app.run_test(size=(100, 40)) as pilot:
        await to_step(pilot, app, "storage_network")
        screen = app.screen
        shown = str(screen.query_one(FindingsList).render())
        assert "guest.address is 'dhcp'" in shown and "Set guest.address" in shown
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen"
        address = screen.query_one("#address", Input)
        assert address.has_focus
        address.value = "192.168.30.109"
        await pilot.pause()
        assert "guest.address is 'dhcp'" not in str(screen.query_one(FindingsList).render())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen"
        assert app.state.answers.guest.address == "192.168.30.109"


async def test_dhcp_on_the_bridges_layer_2_goes_through():
    app = make_app(opener=_opener(ON_LAN))
    async with app.run_test(size=(100, 40)) as pilot:
        await to_step(pilot, app, "storage_network")
        assert "guest.address" not in str(app.screen.query_one(FindingsList).render())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen" and app.state.answers.guest.address == "dhcp"
