"""The engine's VMS client: the real vastpy, in worker threads, with timeouts, riding through restarts.

vastpy (0.3.22) sets no request timeout, builds a new urllib3 `PoolManager` for every request, and
without a `cert_file` checks no certificate at all (CERT_NONE), so a call could hang for ever while
VMS restarts and the password would go to whatever answers on the guest's address. `backend.clients.vms`
gives vastpy's PoolManagers a timeout (connect, read), no urllib3-level retries and the client's
TLS trust (`backend.clients.vmstrust.VmsTrust`: the pinned certificate, or a CA through vastpy's own
`cert_file`), through the `urllib3` name vastpy uses (a proxy that forwards everything else to
urllib3; the settings are per calling thread, and a PoolManager asked for without a trust is
refused). A certificate that is not the trusted one fails at once, before the credentials are
sent, naming both fingerprints. Every call runs in a worker thread (`asyncio.to_thread`) with an
asyncio deadline as a backstop.

While VMS restarts it refuses connections or answers 502/503/504 (nginx in front of a restarting
service): those errors are counted (`errors`), announced (`RetryScheduled`, then
`RecoveredFromFault` once an answer comes) and retried with backoff on the target clock, until
`give_up_s` of target time without an answer (then `TargetUnreachable`). A refused login is an
error at once. Answers are plain dicts; `state` values are never checked against a list (VAST 5.4
has more states than 5.3).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3
import vastpy
from vastpy import RESTFailure, VASTClient

from backend.clock import Clock
from backend.errors import RunFailed, TargetUnreachable
from backend.events import RecoveredFromFault, RetryScheduled
from backend.run.bus import EventBus
from backend.secrets import Secret, redact
from backend.target import certificate_fingerprint, fetch_certificate

if TYPE_CHECKING:
    from backend.clients.vmstrust import VmsTrust  # it needs this module's VmsUnreachable

DEFAULT_PASSWORD = "123456"  # the OVA's documented VMS password for admin
CONNECT_TIMEOUT_S = 10.0  # target seconds
READ_TIMEOUT_S = 30.0
MIN_TIMEOUT_WALL_S = 2.0
RETRY_FIRST_S = 2.0  # target seconds; doubles up to RETRY_MAX_S
RETRY_MAX_S = 15.0
GIVE_UP_S = 600.0  # target seconds without an answer: VMS restarts take about a minute
TRANSIENT_STATUS = {500, 502, 503, 504}

_local = threading.local()


class _Urllib3ForVms:
    """urllib3 as vastpy sees it: PoolManagers get the calling thread's timeout, no retries and its
    client's TLS trust. Without one, only a vastpy that verifies by itself (`cert_file`) gets a
    PoolManager: vastpy's CERT_NONE never reaches the wire."""

    def __getattr__(self, name: str) -> Any:
        return getattr(urllib3, name)

    def PoolManager(self, *args: Any, **kwargs: Any) -> urllib3.PoolManager:  # noqa: N802 - urllib3's name
        trust: VmsTrust | None = getattr(_local, "trust", None)
        if trust is not None:
            kwargs.update(trust.pool_options())
        elif not kwargs.get("ca_certs") or kwargs.get("cert_reqs") == "CERT_NONE":
            raise RuntimeError("refused: a VMS connection that checks no certificate (vastpy without cert_file)")
        connect, read = getattr(_local, "timeouts", (CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        kwargs.setdefault("timeout", urllib3.Timeout(connect=connect, read=read))
        kwargs.setdefault("retries", False)
        return urllib3.PoolManager(*args, **kwargs)


if not isinstance(getattr(vastpy, "urllib3", None), _Urllib3ForVms):
    vastpy.urllib3 = _Urllib3ForVms()  # type: ignore[attr-defined]


class VmsUnreachable(TargetUnreachable):
    """The VMS did not answer for longer than the client waits."""


@dataclass
class _Failure:
    transient: bool
    short: str  # a few words for events
    error: Exception


class VmsClient:
    """Read-only VMS calls the engine needs. `address` is where VMS is reached from here (host, port)."""

    def __init__(self, address: tuple[str, int], user: str, password: Secret | None = None, *,
                 trust: VmsTrust, token: Secret | None = None, clock: Clock | None = None,
                 bus: EventBus | None = None, give_up_s: float = GIVE_UP_S, version: str | None = "latest") -> None:
        if (password is None) == (token is None):
            raise ValueError("give a password or a token, not both")
        self.trust = trust
        self.host, self.port = address
        self.user = user
        self._password = password
        self._token = token
        self.clock = clock or Clock.wall()
        self.bus = bus
        self.give_up_s = give_up_s
        self.version = version
        self.errors = 0  # transient errors seen (refused, reset, timeouts, 5xx)
        self.timeouts = (max(MIN_TIMEOUT_WALL_S, self.clock.wall_seconds(CONNECT_TIMEOUT_S)),
                         max(MIN_TIMEOUT_WALL_S, self.clock.wall_seconds(READ_TIMEOUT_S)))

    @classmethod
    def for_run(cls, ctx: Any, guest_ip: str, *, trust: VmsTrust, bus: EventBus | None = None) -> VmsClient:
        """The client of a run: VMS on the guest's management address, port 443, through the target's
        route, trusting its certificate as `trust` says (backend.clients.vmstrust.establish); credentials
        from the answers (`vast.admin_user`, `vast.admin_password`), else the target's default, else
        the OVA's documented default."""
        vast = ctx.answers.vast
        if vast.admin_password is not None:
            password = vast.admin_password.resolve("vast.admin_password")
        elif getattr(ctx.target, "vms_password", None) is not None:
            password = ctx.target.vms_password
        else:
            password = Secret(DEFAULT_PASSWORD, public=True)
        return cls(ctx.target.route(guest_ip, 443), vast.admin_user, password, trust=trust, clock=ctx.target.clock,
                   bus=bus or ctx.bus)

    @property
    def address(self) -> str:
        """HOST:PORT as it goes in a URL (an IPv6 address in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"VMS at {self.address}"

    # --- what the engine asks ---

    async def cluster(self) -> dict | None:
        """The loopback cluster (clusters[0]) or None before it exists."""
        clusters = await self.list("clusters")
        return clusters[0] if clusters else None

    async def vtask(self, name: str) -> dict | None:
        """The latest task called `name` (highest id), or None."""
        tasks = [t for t in await self.list("vtasks", name=name) if t.get("name") == name]
        return max(tasks, key=lambda t: int(t.get("id", 0))) if tasks else None

    async def hosts(self) -> list[dict]:
        return await self.list("hosts")

    async def cnodes(self) -> list[dict]:
        return await self.list("cnodes")

    async def dnodes(self) -> list[dict]:
        return await self.list("dnodes")

    async def licenses(self) -> list[dict]:
        return await self.list("licenses")

    async def reachable(self) -> bool:
        """One attempt, no retry: does VMS answer an authenticated request now?"""
        outcome = await self._attempt("clusters", {})
        if isinstance(outcome, _Failure):
            if not outcome.transient:
                raise outcome.error
            return False
        return True

    async def close(self) -> None:
        return None  # vastpy keeps no connection between calls

    # --- the one way every call goes ---

    async def list(self, resource: str, **params: Any) -> list[dict]:
        data = await self.get(resource, **params)
        if isinstance(data, dict) and isinstance(data.get("results"), list):  # the paginated shape
            data = data["results"]
        if not isinstance(data, list):
            raise RunFailed(f"{self.label} answered GET {resource}/ with something that is not a list")
        return [dict(item) for item in data if isinstance(item, dict)]

    async def get(self, resource: str, **params: Any) -> Any:
        """GET /api/<version>/<resource>/, retried through VMS restarts."""
        operation = f"VMS GET {resource}"
        started = self.clock.now()
        attempt, first_error = 1, ""
        while True:
            outcome = await self._attempt(resource, params)
            if not isinstance(outcome, _Failure):
                if attempt > 1:
                    self._emit(RecoveredFromFault(operation=operation, attempts=attempt, error=first_error))
                return outcome
            if not outcome.transient:
                raise outcome.error
            self.errors += 1
            first_error = first_error or outcome.short
            if self.clock.now() - started >= self.give_up_s:
                raise VmsUnreachable(
                    f"{self.label} has not answered for {self.give_up_s / 60:.0f} minutes ({outcome.short})",
                    hint="check the vast_vms container on the guest (docker ps; /vast/vman/vms/log/vms.log)",
                ) from None
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempt - 1))
            self._emit(RetryScheduled(operation=operation, attempt=attempt, error=outcome.short, delay_s=delay))
            await self.clock.sleep(delay)
            attempt += 1

    async def _attempt(self, resource: str, params: dict[str, Any]) -> Any:
        backstop = sum(self.timeouts) + 5.0
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._call, resource, params), backstop)
        except TimeoutError:
            return _Failure(True, "no answer", VmsUnreachable(f"{self.label} did not answer"))

    def _call(self, resource: str, params: dict[str, Any]) -> Any:
        """In a worker thread: the result, or a classified `_Failure`."""
        _local.timeouts, _local.trust = self.timeouts, self.trust
        tls = {"cert_file": self.trust.ca_file, "cert_server_name": self.trust.server_name}  # vastpy's own, for a CA
        if self._token is not None:
            client = VASTClient(address=self.address, token=self._token.reveal(), version=self.version, **tls)
        else:
            assert self._password is not None
            client = VASTClient(user=self.user, password=self._password.reveal(), address=self.address,
                                version=self.version, **tls)
        try:
            return client[resource].get(**params)
        except RESTFailure as exc:
            return self._classify_http(exc, resource)
        except (urllib3.exceptions.HTTPError, OSError, ssl.SSLError, json.JSONDecodeError) as exc:
            if _untrusted(exc):
                return _Failure(False, "untrusted certificate", self._untrusted_error(exc))
            return _Failure(True, _short(exc), VmsUnreachable(f"{self.label}: {redact(_short(exc))}"))
        finally:
            _local.trust = None

    def _untrusted_error(self, exc: BaseException) -> RunFailed:
        """The VMS's address answered with a certificate the trust refuses: the credentials were not sent."""
        try:
            presented = certificate_fingerprint(fetch_certificate(self.host, self.port, self.timeouts[0]))
        except OSError:
            presented = "an unknown one"
        return RunFailed(
            f"{self.label} presented certificate {presented}, not the trusted one ({self.trust.describe()}: "
            f"{self.trust.source}); the VMS credentials were not sent",
            hint="if the VMS's certificate was replaced on purpose, resume the run (it reads the guest's "
                 "certificate again); otherwise something answers in the VMS's place: do not continue"
                 + (f" ({redact(str(exc))[:160]})" if self.trust.ca_file else ""))

    def _classify_http(self, exc: RESTFailure, resource: str) -> _Failure:
        status = int(exc.status)
        if status in TRANSIENT_STATUS:
            return _Failure(True, f"HTTP {status}", VmsUnreachable(f"{self.label} answered HTTP {status}"))
        if status in (401, 403):
            return _Failure(False, f"HTTP {status}", RunFailed(
                f"{self.label} refused the credentials of user '{self.user}' (HTTP {status})",
                hint="check vast.admin_user and vast.admin_password in the answers"))
        detail = redact(exc.data.decode("utf-8", "replace"))[:200] if isinstance(exc.data, bytes) else ""
        return _Failure(False, f"HTTP {status}", RunFailed(
            f"{self.label} answered GET {resource}/ with HTTP {status}: {detail}"))

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)


def _untrusted(exc: BaseException) -> bool:
    """A TLS failure that is the certificate's (not the VMS restarting): refused, never retried."""
    seen: BaseException | None = exc
    for _ in range(5):  # urllib3 wraps the ssl module's error
        if seen is None:
            break
        text = str(seen)
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text \
                or "Fingerprints did not match" in text or "doesn't match" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(exc: BaseException) -> str:
    """A few words on a network failure: 'connection refused', 'timeout', 'connection reset'..."""
    text = f"{exc.__class__.__name__}: {exc}".lower()
    for needle, words in (("refused", "connection refused"), ("timed out", "timeout"), ("timeout", "timeout"),
                          ("reset", "connection reset"), ("eof", "connection closed"),
                          ("remotedisconnected", "connection closed"), ("ssl", "TLS error")):
        if needle in text:
            return words
    return exc.__class__.__name__
