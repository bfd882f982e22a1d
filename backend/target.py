"""Where a run happens: the Proxmox endpoint, how the guest is reached, and whose clock is used.

A `Target` is opened by a provider chosen from the answers' `proxmox.url` scheme: `https` for a
real host (this module), or a provider registered by name (the built-in one is registered by its
package when the entry point imports it, with its own answers section: backend/model/answers.py
`register_provider`). The engine only sees the `Target`; it never asks which provider made it.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from backend.clock import Clock
from backend.errors import BadInput
from backend.events import Event
from backend.model.answers import Answers
from backend.secrets import Secret

Route = Callable[[str, int], tuple[str, int]]


def _direct(host: str, port: int) -> tuple[str, int]:
    return host, port


@dataclass
class TargetOptions:
    speed: float = 1.0
    state_dir: Path | None = None  # where a provider may keep its own state (a simulated target's world)
    resume: bool = False


@dataclass
class Target:
    label: str  # short, for headers: "https://pve:8006", a provider's own
    proxmox_url: str
    token_id: str
    token_secret: Secret
    clock: Clock
    fingerprint: str | None = None  # pinned SHA-256 of the API's TLS certificate
    ca_file: str | None = None  # or a CA bundle to verify against
    known_hosts: Path | None = None  # SSH host keys the guest may present
    guest_password: Secret | None = None  # default credentials, when the answers name none
    vms_password: Secret | None = None
    route: Route = _direct  # how (host, port) in the guest's world is reached from here
    # Where this machine's own network probes run (its subnets, its neighbour table: see
    # backend/clients/jumpnet.py): a command prefix that enters that network; empty: right here, in this process.
    probe_prefix: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)  # shown by `check --json` and the Connect screen
    # What this target is, in words the user recognises: the first line of `check`, `--auto` and the
    # wizard's header. Each provider fills its own (a real host: its URL and node); `describe()`.
    description: str = ""
    closer: Callable[[], Awaitable[None]] | None = None
    # What the target itself has to tell since it was last asked (a simulated target's injected
    # faults, as FaultInjected events): the engine emits them after each step and before the end.
    reported: Callable[[], list[Event]] | None = None

    def report(self) -> list[Event]:
        return list(self.reported()) if self.reported is not None else []

    def describe(self) -> str:
        """Where this target points, for the first line a user reads (its label if none was given)."""
        return self.description or self.label

    async def close(self) -> None:
        if self.closer is not None:
            closer, self.closer = self.closer, None
            await closer()


Provider = Callable[[Answers, TargetOptions], Awaitable[Target]]
_PROVIDERS: dict[str, Provider] = {}
_DEFAULT_SPEEDS: dict[str, float] = {}
_INFO: dict[str, ProviderInfo] = {}


@dataclass(frozen=True)
class ProviderInfo:
    """How a screen shows a provider's targets: its title, and the one choice of its answers section
    the Connect screen offers (`choice` names the field, `choices` maps each value to a description;
    `file_choice`, when the field also takes a `file:/PATH`, says what that file is)."""

    title: str
    choice: str = ""
    choices: dict[str, str] = field(default_factory=dict)
    file_choice: str = ""


def register_provider(scheme: str, provider: Provider, default_speed: float = 1.0,
                      info: ProviderInfo | None = None) -> None:
    """`default_speed`: the time compression a target of this kind runs at when none is asked for;
    `info`: how screens show it."""
    _PROVIDERS[scheme] = provider
    _DEFAULT_SPEEDS[scheme] = default_speed
    if info is not None:
        _INFO[scheme] = info


def provider_info(scheme: str) -> ProviderInfo | None:
    return _INFO.get(scheme)


def describe_target(answers: Answers) -> str:
    """The answers' target in a few words: its URL, or its provider's title and choice."""
    url = answers.proxmox.url
    info = _INFO.get(provider_scheme(url))
    if info is None:
        return url
    section = answers.section(provider_scheme(url))
    chosen = getattr(section, info.choice, "") if section is not None and info.choice else ""
    return f"{info.title} ({chosen} host)" if chosen else info.title


def default_speed(url: str) -> float:
    """The speed a run on `url` gets without --speed: 1 for a real host, the provider's own otherwise."""
    return _DEFAULT_SPEEDS.get(provider_scheme(url), 1.0)


def provider_scheme(url: str) -> str:
    return url.split(":", 1)[0]


async def open_target(answers: Answers, options: TargetOptions) -> Target:
    scheme = provider_scheme(answers.proxmox.url)
    provider = _PROVIDERS.get(scheme)
    if provider is None:
        raise BadInput(f"proxmox.url: no provider for '{scheme}' targets")
    return await provider(answers, options)


async def _open_https(answers: Answers, options: TargetOptions) -> Target:
    if options.speed != 1:
        raise BadInput(
            f"--speed compresses a simulated target's time; a real host ({answers.proxmox.url}) runs on the "
            "wall clock", hint="leave --speed out for a real host")
    assert answers.proxmox.token_id and answers.proxmox.token_secret  # enforced by the model
    secret = answers.proxmox.token_secret.resolve("proxmox.token_secret")
    node = answers.proxmox.node
    return Target(
        label=answers.proxmox.url,
        description=f"{answers.proxmox.url}, node {node if node != 'auto' else 'auto (the best one)'}",
        proxmox_url=answers.proxmox.url,
        token_id=answers.proxmox.token_id,
        token_secret=secret,
        clock=Clock.wall(),
        fingerprint=answers.proxmox.fingerprint,
    )


register_provider("https", _open_https)


def certificate_fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint (AA:BB:...) of a DER certificate."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fetch_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """The certificate (DER) a TLS server presents, unverified and with nothing sent but the
    handshake: to be shown for confirmation or compared with a pin, never trusted as it is."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname=host) as tls:
        return tls.getpeercert(binary_form=True) or b""


def fetch_certificate_fingerprint(url: str, timeout: float = 10.0) -> str:
    """The SHA-256 fingerprint (AA:BB:...) of the certificate a TLS server presents, unverified:
    shown to the user for confirmation, then pinned."""
    parsed = urlparse(url)
    return certificate_fingerprint(fetch_certificate(parsed.hostname or "", parsed.port or 8006, timeout))
