"""Testing a connection from the Connect screen: open the target, show its certificate, and only
after the user trusted it send the token and read the host's facts.

The order matters: a real host's certificate is fetched without credentials, shown for
confirmation, pinned, and only then does the API token travel. A provider that pins its own
certificate (the lab does) hands its pin over instead of a fetched one, and nothing is saved for
it in the answers. No Textual here: the screen runs these coroutines in a worker.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from backend.errors import VlbError
from backend.model.answers import Answers
from backend.model.hostfacts import HostInventory
from backend.secrets import redact
from backend.steps.guestaddr import LocalNetworks, local_networks
from backend.target import Target, TargetOptions, default_speed, fetch_certificate_fingerprint, open_target


class Probe:
    """An opened target whose certificate awaits the user's trust.

    `fingerprint` is what the user is asked to confirm; `pin_to_save` is the value that goes into
    the answers' `proxmox.fingerprint` once trusted (None when the target pins its own);
    `local_networks` is this machine's own networks as the target's probes see them (read with the
    inventory: where the guest's address can be learnt from depends on it)."""

    label: str = ""
    url: str = ""
    fingerprint: str = ""
    pin_to_save: str | None = None
    local_networks: LocalNetworks | None = None  # this machine's own networks, once `inventory()` ran

    async def inventory(self) -> HostInventory:
        """Authenticate with the token and read every node's facts (after the user trusted the certificate)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the target (stops a lab started for the test)."""


ProbeOpener = Callable[[Answers], Awaitable[Probe]]


class TargetProbe(Probe):
    """The real thing: a target from the provider registry and backend.clients.proxmox's client."""

    def __init__(self, target: Target, fingerprint: str, pin_to_save: str | None,
                 workdir: tempfile.TemporaryDirectory | None = None) -> None:
        self.target = target
        self.label = target.label
        self.url = target.proxmox_url
        self.fingerprint = fingerprint
        self.pin_to_save = pin_to_save
        self._workdir = workdir

    async def inventory(self) -> HostInventory:
        from backend.clients.proxmox import ProxmoxClient

        self.target.fingerprint = self.target.fingerprint or self.fingerprint  # trusted: pin it
        client = await ProxmoxClient.connect(self.target)
        try:
            inventory = await client.inventory()
        finally:
            await client.close()
        self.local_networks = await local_networks(self.target)
        if not inventory.fingerprint:
            inventory = HostInventory(inventory.pve_version, inventory.nodes, self.fingerprint,
                                      inventory.cluster_name)
        return inventory

    async def close(self) -> None:
        try:
            await self.target.close()
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None


def target_opener(speed: float | None) -> ProbeOpener:
    """The default opener: any provider registered in backend.target (https, or lab once imported)."""

    async def open_probe(answers: Answers) -> Probe:
        workdir = tempfile.TemporaryDirectory(prefix="vlb-connect-")
        try:
            target = await open_target(answers, TargetOptions(speed=speed or default_speed(answers.proxmox.url),
                                                              state_dir=Path(workdir.name)))
        except BaseException:
            workdir.cleanup()
            raise
        try:
            if target.fingerprint:
                return TargetProbe(target, target.fingerprint, None, workdir)
            presented = await asyncio.to_thread(fetch_certificate_fingerprint, target.proxmox_url)
            return TargetProbe(target, presented, presented, workdir)
        except BaseException:
            await target.close()
            workdir.cleanup()
            raise

    return open_probe


def describe_error(error: BaseException, url: str = "") -> str:
    """One clear line for any failure of a connection test; secrets scrubbed."""
    where = f" {url}" if url else ""
    if isinstance(error, VlbError):
        text = str(error)
    elif isinstance(error, ssl.SSLError | ssl.CertificateError):
        text = f"TLS handshake with{where} failed: {getattr(error, 'reason', None) or error}"
    elif isinstance(error, TimeoutError | asyncio.TimeoutError):
        text = f"no answer from{where} in time; check the address and port"
    elif isinstance(error, ConnectionRefusedError):
        text = f"connection to{where} refused; is pveproxy listening on that port?"
    elif isinstance(error, OSError):
        text = f"cannot reach{where}: {error.strerror or error.__class__.__name__}"
    elif isinstance(error, NotImplementedError):
        text = "the Proxmox client is not available in this version"
    else:
        text = f"connection test failed: {error.__class__.__name__}: {error}"
    text = redact(text).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
