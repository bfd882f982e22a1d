"""Trust in the VMS's TLS certificate, settled before any VMS credential leaves this machine.

The VMS's certificate first exists during the bootstrap, inside the guest, minutes after the run
started: on a fresh install nobody can know it beforehand, so a headless run cannot be asked for a
pin. The run already trusts the guest, though: its SSH host key is pinned, known or confirmed by
the user (backend/clients/hostkeys.py). So the certificate the VMS keeps on the guest's disk
(`vast.cert_path`), read over that SSH connection, is the guest's own, and the trust in the host
key carries over to it: the VMS client (backend/clients/vms.py) then accepts exactly that certificate (its
SHA-256, and the certificate itself as the only trust anchor, CERT_REQUIRED) and anything else
answering on the guest's address gets no password. The file is read rather than the VMS asked from
inside the guest (`openssl s_client` to its own address) because that would take whatever listens
there and a TLS client on the guest; the price is a path no public source names for VAST 5.4: a
guess, configurable, with the fallbacks below for a guest that keeps it elsewhere.

In order:
1. `vast.ca_file`: the certificate must chain to that CA and carry `vast.server_name` (default the
   guest's address), through vastpy's own `cert_file` / `cert_server_name`.
2. The guest's certificate file, read over SSH; `vast.fingerprint`, when given, must match it.
3. No certificate there: `vast.fingerprint` pins what the VMS presents (fetched with nothing but a
   handshake); without one a UI asks the user (trust on first use:
   `ctx.services[CONFIRM_VMS_CERTIFICATE]`, `(fingerprint) -> bool`), whose "yes" the journal
   keeps (`VmsCertificateTrusted`) so a resume of that attempt, in the wizard or headless, trusts
   the same certificate without asking; headless refuses any other, showing the fingerprint and how
   to check it on the guest.
Never CERT_NONE: `VmsTrust` has no way to say "anything goes".
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from dataclasses import dataclass
from typing import Any

from backend.clients.commands import sh
from backend.clients.vms import VmsUnreachable
from backend.errors import RunFailed
from backend.events import SnapshotRolledBack, VmsCertificateTrusted
from backend.target import certificate_fingerprint, fetch_certificate

CONFIRM_VMS_CERTIFICATE = "confirm_vms_certificate"
CONFIRMED = "confirmed by the user"
PINNED_IN_ANSWERS = "vast.fingerprint in the answers"
MAX_CERT_FILE = 64 * 1024  # bytes read from the guest's file
FETCH_RETRY_S = 5.0  # target seconds between looks at a VMS that does not answer yet
FETCH_GIVE_UP_S = 600.0  # as the VMS client: its restarts take about a minute
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
CHECK_ON_GUEST = "openssl s_client -connect 127.0.0.1:443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"


@dataclass(frozen=True)
class VmsTrust:
    """How the VMS's certificate is checked: a pinned certificate, or a CA (and the name it vouches for)."""

    source: str  # how the trust was established, as the journal says it
    fingerprint: str = ""  # AA:BB:... of the pinned certificate
    pem: str = ""  # that certificate, the one trust anchor
    ca_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if not self.ca_file and not (self.fingerprint and self.pem):
            raise ValueError("a VMS trust needs a pinned certificate or a CA file")

    @classmethod
    def pinned(cls, der: bytes, source: str) -> VmsTrust:
        return cls(source=source, fingerprint=certificate_fingerprint(der), pem=ssl.DER_cert_to_PEM_cert(der))

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False  # the pin names the certificate; urllib3 checks its digest
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the pinned leaf is the anchor, self-signed or not
        context.load_verify_locations(cadata=self.pem)
        return context

    def pool_options(self) -> dict[str, Any]:
        """urllib3 PoolManager arguments that enforce this trust (they replace vastpy's CERT_NONE)."""
        if self.ca_file:
            return {"cert_reqs": "CERT_REQUIRED", "ca_certs": self.ca_file, "server_hostname": self.server_name}
        return {"cert_reqs": "CERT_REQUIRED", "ssl_context": self._context,
                "assert_fingerprint": self.fingerprint.replace(":", "").lower()}

    def describe(self) -> str:
        return f"CA {self.ca_file}" if self.ca_file else f"pinned {self.fingerprint}"


def first_certificate(text: str) -> bytes | None:
    """The first PEM certificate in `text` (a key or anything else beside it is ignored), as DER."""
    match = _PEM.search(text)
    if match is None:
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(match.group(0))
    except ValueError:
        return None


async def establish(ctx: Any, guest: Any, guest_ip: str) -> VmsTrust:
    """The trust for the run's VMS client at `guest_ip` (port 443), as the module docstring orders it;
    `guest` is the run's GuestClient (its host key already trusted). Emits VmsCertificateTrusted."""
    vast = ctx.answers.vast
    if vast.ca_file:
        trust = VmsTrust(source=f"the CA in {vast.ca_file}", ca_file=vast.ca_file, server_name=vast.server_name)
        return _trusted(ctx, trust, guest_ip)
    der, why = await _guest_certificate(guest, vast.cert_path)
    if der is not None:
        trust = VmsTrust.pinned(der, f"the guest's own: {vast.cert_path} read over SSH, host key {guest.host_key}")
        if vast.fingerprint and trust.fingerprint != vast.fingerprint:
            raise RunFailed(
                f"the VMS certificate on the guest ({vast.cert_path}) is {trust.fingerprint}, but "
                f"vast.fingerprint pins {vast.fingerprint}; refusing to send the VMS password",
                hint="if the VMS's certificate was replaced on purpose, update vast.fingerprint (or leave it out: "
                     "the guest's own certificate is pinned then)")
        return _trusted(ctx, trust, guest_ip)
    ctx.progress(f"no VMS certificate read from the guest: {why}")
    presented = await _presented_certificate(ctx, guest_ip)
    shown = certificate_fingerprint(presented)
    if vast.fingerprint:
        if shown != vast.fingerprint:
            raise RunFailed(f"the VMS at {guest_ip}:443 presents certificate {shown}, but vast.fingerprint pins "
                            f"{vast.fingerprint}; refusing to send the VMS password",
                            hint="check it on the guest: " + CHECK_ON_GUEST)
        return _trusted(ctx, VmsTrust.pinned(presented, PINNED_IN_ANSWERS), guest_ip)
    earlier = confirmed_earlier(ctx)
    if earlier == shown:  # a resume: the user trusted this very certificate in this attempt already
        return _trusted(ctx, VmsTrust.pinned(presented, CONFIRMED), guest_ip)
    changed = f" (not {earlier}, which was trusted earlier in this run)" if earlier else ""
    confirm = ctx.services.get(CONFIRM_VMS_CERTIFICATE)
    if confirm is None:
        raise RunFailed(
            f"the VMS at {guest_ip}:443 presents certificate {shown}{changed}, which nothing vouches for "
            f"({why}); refusing to send the VMS password to it",
            hint=f"compare it on the guest ({CHECK_ON_GUEST}) and pin it: vast.fingerprint: {shown}; or set "
                 "vast.cert_path to where the guest keeps the VMS's certificate")
    if not await confirm(shown):
        raise RunFailed(f"the VMS certificate {shown} at {guest_ip}:443 was not trusted; the VMS password is not sent")
    return _trusted(ctx, VmsTrust.pinned(presented, CONFIRMED), guest_ip)


def confirmed_earlier(ctx: Any) -> str | None:
    """The VMS certificate the user trusted earlier in this attempt, as the journal says (a rollback
    to pre-install goes back to before the VMS existed: its certificate is new after it)."""
    found = None
    for event in ctx.run.events():
        if isinstance(event, SnapshotRolledBack):
            found = None
        elif isinstance(event, VmsCertificateTrusted) and event.source == CONFIRMED:
            found = event.fingerprint
    return found


def _trusted(ctx: Any, trust: VmsTrust, guest_ip: str) -> VmsTrust:
    ctx.emit(VmsCertificateTrusted(address=f"{guest_ip}:443", fingerprint=trust.fingerprint,
                                   ca_file=trust.ca_file or "", source=trust.source))
    return trust


async def _guest_certificate(guest: Any, path: str) -> tuple[bytes | None, str]:
    """(DER, '') of the certificate at `path` on the guest, or (None, why not)."""
    result = await guest.run(sh("head", "-c", str(MAX_CERT_FILE), "--", path), sudo=True, timeout=60.0)
    if not result.ok:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.exit_status}"])[-1]
        return None, f"{path}: {detail[:200]}"
    der = first_certificate(result.stdout)
    return (der, "") if der is not None else (None, f"{path} holds no PEM certificate")


async def _presented_certificate(ctx: Any, guest_ip: str) -> bytes:
    """The certificate the VMS presents now (only a handshake, no credential), through its restarts."""
    host, port = ctx.target.route(guest_ip, 443)
    started = ctx.clock.now()
    while True:
        try:
            return await asyncio.to_thread(fetch_certificate, host, port, max(2.0, ctx.clock.wall_seconds(10.0)))
        except OSError as exc:
            if ctx.clock.now() - started >= FETCH_GIVE_UP_S:
                raise VmsUnreachable(f"the VMS at {guest_ip}:443 does not answer ({exc.__class__.__name__})",
                                     hint="check the vast_vms container on the guest (docker ps)") from None
            await ctx.clock.sleep(FETCH_RETRY_S)
