"""Host keys against the lab guest's fixed key over real SSH: the lab's known_hosts is trusted, a
wrong pin is refused naming both fingerprints, an unknown key is refused headless and shown for
confirmation when someone can be asked."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import asyncssh
import pytest

from backend.clients.guestssh import GuestClient, GuestCredentials
from backend.errors import RunFailed
from backend.secrets import Secret
from tests.lab_fixtures import guest_lab, running_guest  # noqa: F401

CENTOS = GuestCredentials("centos", password=Secret("centos", public=True))


async def connect(guest, **kwargs) -> GuestClient:
    return await GuestClient.connect(guest.hw.ip, 22, CENTOS, route=guest.lab.route, clock=guest.lab.clock,
                                     label=f"centos@{guest.hw.ip}", **kwargs)


async def test_the_labs_known_hosts_is_trusted(running_guest):
    guest = await connect(running_guest, known_hosts=running_guest.known_hosts)
    assert guest.host_key == running_guest.lab.host_key_fingerprint().rstrip("=")
    await guest.close()


async def test_a_wrong_pin_is_refused_naming_both(running_guest):
    wrong = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256").rstrip("=")
    with pytest.raises(RunFailed) as caught:
        await connect(running_guest, pinned_host_key=wrong)
    assert wrong in str(caught.value)
    assert running_guest.lab.host_key_fingerprint().rstrip("=") in str(caught.value)


async def test_an_unknown_key_is_refused_headless_and_asked_otherwise(running_guest, tmp_path):
    empty = tmp_path / "known_hosts"
    with pytest.raises(RunFailed, match="unknown host key"):
        await connect(running_guest, known_hosts=empty)
    shown = []

    async def ask(fingerprint: str) -> bool:
        shown.append(fingerprint)
        return True

    guest = await connect(running_guest, known_hosts=empty, confirm_new_host_key=ask)
    assert shown == [guest.host_key] == [running_guest.lab.host_key_fingerprint().rstrip("=")]
    await guest.close()
