"""The Proxmox VE client: proxmoxer in worker threads behind an async API.

- HTTPS with API-token auth. TLS is verified by default (system CAs, or `target.ca_file`); with a
  pinned fingerprint (`target.fingerprint`) exactly that certificate is accepted (urllib3's
  `assert_fingerprint`) and any other is refused, naming both fingerprints.
- Every call runs in a thread (`asyncio.to_thread`) with timeouts long enough for slow calls
  (import-metadata may take 30 s). Booleans go out as 1/0.
- Reads and idempotent calls are retried with backoff on 5xx, timeouts and connection resets
  (`RetryScheduled`, then `RecoveredFromFault`). A call that may have happened (creating the VM,
  a snapshot, a power change) is checked before it is retried, never blindly repeated. A 401 is an
  error, never a retry loop.
- Failures become the errors of `backend.errors`, one clear sentence and a hint; the token's
  secret never appears in any of them (`backend.secrets.redact`).
- UPID tasks are awaited with their log lines as progress (`ProxmoxTaskStarted`/`Finished`); a
  failed task raises with the tail of its log.

Who emits what: this client emits the task, retry, power, configuration and snapshot events
(`ProxmoxTask*`, `RetryScheduled`, `RecoveredFromFault`, `VmPowerChanged`, `VmConfigured`,
`SnapshotCreated`, `SnapshotRolledBack`); steps emit `VmCreated`/`VmFound` and the host facts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException
from requests.adapters import HTTPAdapter

from backend.clock import Clock
from backend.errors import RunFailed, TargetUnreachable, VlbError
from backend.events import (
    Event,
    ProxmoxTaskFinished,
    ProxmoxTaskStarted,
    RecoveredFromFault,
    RetryScheduled,
    SnapshotCreated,
    SnapshotRolledBack,
    VmConfigured,
    VmPowerChanged,
)
from backend.model import vmconfig
from backend.model.hostfacts import BridgeFacts, HostInventory, NodeFacts, StorageFacts
from backend.run.bus import EventBus
from backend.secrets import redact
from backend.target import Target, fetch_certificate_fingerprint

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # target seconds to open a connection
READ_TIMEOUT_S = 90.0  # target seconds for an answer (import-metadata alone may take 30 s)
MIN_TIMEOUT_WALL_S = 1.5  # however fast a compressed lab runs, never give up sooner on the wall
MAX_ATTEMPTS = 6  # a call is tried at most this often (backoff 1, 2, 4, 8, 16 s of target time)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
TASK_POLL_S = 1.0  # target seconds between task status polls
TASK_POLL_MIN_WALL_S = 0.05  # never poll faster than this on the wall, however fast the lab runs
TASK_LOG_TAIL = 12
PROGRESS_STEP = 0.05  # report a task's percentages in steps of 5 %

Progress = Callable[[str, "float | None"], None]

_SEGMENT = re.compile(r"^[A-Za-z0-9._:@!\-]+$")
_WARNINGS = re.compile(r"^WARNINGS: \d+$")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_PERMISSION = re.compile(r"\((?P<path>/[^,)]*),\s*(?P<privs>[^)]+)\)")
_AGENT_NOT_READY = re.compile(
    r"guest agent is not running|agent.*not running|No QEMU guest agent configured|is not running|"
    r"got timeout|guest-ping|not responding",
    re.IGNORECASE,
)
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 595, 596, 597, 599})


@dataclass(frozen=True)
class VmRef:
    node: str
    vmid: int
    name: str = ""


class ProxmoxApiError(RunFailed):
    """The API answered with an HTTP error; `status` and `reason` say which."""

    def __init__(self, message: str, *, status: int, reason: str = "", errors: dict | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason
        self.errors = errors or {}


@dataclass(frozen=True)
class _Failure:
    error: VlbError
    retryable: bool
    short: str  # for RetryScheduled: what went wrong, in a few words


def _not_transient(error: ProxmoxApiError) -> bool:
    """Errors not worth a retry for a call that is polled anyway (missing, refused, not served)."""
    return error.status in (400, 403, 404, 501)


# --- pure helpers (unit-tested without a server) -------------------------------------------------


def encode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Form/query parameters as Proxmox wants them: booleans as 1/0, lists comma-joined, no None."""
    encoded: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            encoded[key] = 1 if value else 0
        elif isinstance(value, list | tuple | set | frozenset):
            encoded[key] = ",".join(str(v) for v in value)
        else:
            encoded[key] = value
    return encoded


def check_segment(segment: object) -> str:
    """One URL path segment (node, vmid, storage, UPID, snapshot name), refused if it could escape."""
    text = str(segment)
    if not _SEGMENT.match(text) or text in (".", ".."):
        raise ValueError(f"unsafe path segment for the Proxmox API: {text!r}")
    return text


def upid_fields(upid: str) -> dict[str, str]:
    """UPID:node:pid:pstart:starttime:type:id:user: -> its parts (empty strings when malformed)."""
    parts = str(upid).split(":")
    names = ("node", "pid", "pstart", "starttime", "type", "id", "user")
    values = parts[1:8] if len(parts) >= 8 and parts[0] == "UPID" else [""] * 7
    return dict(zip(names, values, strict=True))


def task_succeeded(exitstatus: str | None) -> bool:
    """Proxmox's own rule: 'OK' or 'WARNINGS: n' is success, anything else is the error."""
    return exitstatus == "OK" or bool(_WARNINGS.match(exitstatus or ""))


def progress_fraction(line: str) -> float | None:
    """The last percentage in a task log line ('transferred 6.0 GiB of 600.0 GiB (1.00%)')."""
    found = _PERCENT.findall(line)
    if not found:
        return None
    return max(0.0, min(1.0, float(found[-1]) / 100.0))


def pve_version_of(pveversion: str) -> str:
    """'pve-manager/9.1.3/5b5a9a6c' -> '9.1.3' (unchanged when it has no slashes)."""
    parts = str(pveversion or "").split("/")
    return parts[1] if len(parts) >= 2 else str(pveversion or "")


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def parse_storages(rows: Sequence[dict]) -> tuple[StorageFacts, ...]:
    """GET /nodes/{node}/storage rows -> StorageFacts (disabled storages left out)."""
    result = []
    for row in rows or ():
        if "enabled" in row and not _truthy(row["enabled"]):
            continue
        content = tuple(c for c in str(row.get("content", "")).split(",") if c)
        result.append(StorageFacts(
            storage=str(row.get("storage", "")),
            type=str(row.get("type", "")),
            content=content,
            total=int(row.get("total") or 0),
            avail=int(row.get("avail") or 0),
            shared=_truthy(row.get("shared", 0)),
            active=_truthy(row.get("active", 0)),
        ))
    return tuple(sorted(result, key=lambda s: s.storage))


BRIDGE_TYPES = ("bridge", "OVSBridge", "vnet")


def parse_networks(rows: Sequence[dict], zones: Sequence[dict] = (), vnets: Sequence[dict] = ()
                   ) -> tuple[BridgeFacts, ...]:
    """GET /nodes/{node}/network?type=any_bridge rows -> the bridges and VNets a NIC can go on.

    A bridge's `cidr` is the node's own address on it (`address`/`netmask` on older hosts); a VNet's
    zone comes from GET /cluster/sdn/vnets and the zone's IPAM and DHCP from GET /cluster/sdn/zones
    (the network listing's own `ipam` flag says nothing about DHCP)."""
    zone_of = {str(v.get("vnet")): str(v.get("zone") or "") for v in vnets or ()}
    zone_cfg = {str(z.get("zone")): z for z in zones or ()}
    found = []
    for row in rows or ():
        kind = str(row.get("type", "bridge"))
        if not row.get("iface") or kind not in BRIDGE_TYPES:
            continue
        name = str(row["iface"])
        if kind == "vnet":
            zone = zone_of.get(name, "")
            config = zone_cfg.get(zone, {})
            found.append(BridgeFacts(name, kind, zone=zone, ipam=str(config.get("ipam") or ""),
                                     dhcp=str(config.get("dhcp") or "")))
            continue
        cidr = str(row.get("cidr") or "")
        if not cidr and row.get("address") and row.get("netmask"):
            cidr = f"{row['address']}/{row['netmask']}"
        try:
            cidr = str(ipaddress.IPv4Interface(cidr)) if cidr else ""
        except ValueError:
            cidr = ""
        found.append(BridgeFacts(name, kind, cidr=cidr))
    return tuple(sorted(found, key=lambda b: b.name))


def parse_node_facts(node: str, status: dict, storages: Sequence[dict] = (), bridges: Sequence[dict] = (),
                     running_vms: int = 0, zones: Sequence[dict] = (), vnets: Sequence[dict] = ()) -> NodeFacts:
    """GET /nodes/{node}/status (+ storages, bridges and VNets with their SDN zones) -> NodeFacts.

    cpuinfo.cores is the sum of physical cores over all sockets, cpuinfo.cpus counts threads;
    available memory is total - used (right on PVE 8.4+, where `free` changed meaning).
    """
    cpuinfo = status.get("cpuinfo") or {}
    memory = status.get("memory") or {}
    networks = parse_networks(bridges, zones, vnets)
    flags = str(cpuinfo.get("flags", "")).split()
    hvm = _truthy(cpuinfo["hvm"]) if "hvm" in cpuinfo else ("vmx" in flags or "svm" in flags)
    return NodeFacts(
        node=node,
        online=True,
        cpu_model=str(cpuinfo.get("model", "")),
        sockets=int(cpuinfo.get("sockets") or 1),
        cores=int(cpuinfo.get("cores") or 0),
        threads=int(cpuinfo.get("cpus") or 0),
        mem_total=int(memory.get("total") or 0),
        mem_used=int(memory.get("used") or 0),
        hvm=hvm,
        pve_version=pve_version_of(str(status.get("pveversion", ""))),
        storages=parse_storages(storages),
        bridges=tuple(n.name for n in networks),
        running_vms=int(running_vms),
        networks=networks,
    )


def ipv4_addresses(interfaces: Sequence[dict]) -> list[str]:
    """IPv4 addresses from the guest agent's network-get-interfaces, loopback left out."""
    found = []
    for iface in interfaces or ():
        if iface.get("name") == "lo":
            continue
        for addr in iface.get("ip-addresses") or ():
            if addr.get("ip-address-type") != "ipv4":
                continue
            try:
                ip = ipaddress.ip_address(str(addr.get("ip-address", "")))
            except ValueError:
                continue
            if not ip.is_loopback and not ip.is_link_local:
                found.append(str(ip))
    return found


def default_timeouts(clock: Clock) -> tuple[float, float]:
    """(connect, read) wall seconds: the target-time limits on this clock, never below a floor.

    A real host runs at speed 1 (10 s, 90 s); a lab compressed N-fold answers N times faster, so
    its limits shrink with it, down to MIN_TIMEOUT_WALL_S."""
    return (max(MIN_TIMEOUT_WALL_S, clock.wall_seconds(CONNECT_TIMEOUT_S)),
            max(MIN_TIMEOUT_WALL_S, clock.wall_seconds(READ_TIMEOUT_S)))


def normalize_fingerprint(value: str) -> str:
    """'aa:bb:…' or 'aabb…' -> 'AA:BB:…'."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", value or "").upper()
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


class _TaskLog:
    """A task's log as read so far, and which of its lines are worth a progress message: every
    line, except percentages that moved less than PROGRESS_STEP (a 600 GiB import prints 100)."""

    def __init__(self, on_progress: Progress | None) -> None:
        self.on_progress = on_progress
        self.lines: list[str] = []
        self.offset = 0
        self._fraction = -1.0

    def add(self, number: int, text: str) -> None:
        if number == 1 and text == "no content":  # Proxmox's placeholder for an empty log
            return
        if number <= self.offset:
            return
        self.offset = number
        self.lines.append(text)
        shown = text.strip()
        if self.on_progress is None or not shown or shown.startswith("TASK "):
            return
        fraction = progress_fraction(shown)
        if fraction is not None:
            if fraction < 1.0 and fraction - self._fraction < PROGRESS_STEP - 1e-9:
                return
            self._fraction = fraction
        self.on_progress(redact(shown), fraction)


# --- TLS pinning ---------------------------------------------------------------------------------


class _PinnedAdapter(HTTPAdapter):
    """Accept exactly the certificate with this SHA-256 fingerprint (urllib3 checks it)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = re.sub(r"[^0-9a-f]", "", fingerprint.lower())
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)


# --- the client ----------------------------------------------------------------------------------


class ProxmoxClient:
    """One connection to one Proxmox VE API (a host or a cluster)."""

    def __init__(self, api: ProxmoxAPI, target: Target, bus: EventBus | None = None, *,
                 max_attempts: int = MAX_ATTEMPTS, timeout: tuple[float, float] | None = None) -> None:
        self._api = api
        self.target = target
        self.bus = bus
        self.clock: Clock = target.clock
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout or default_timeouts(target.clock)
        parsed = urlparse(target.proxmox_url)
        self.host = parsed.hostname or target.proxmox_url
        self.port = parsed.port or 8006
        self.fingerprint = normalize_fingerprint(target.fingerprint or "")
        self.pve_version = ""
        self._connected = False
        self._sdn_config: tuple[list[dict], list[dict]] | None = None

    # --- connecting ---

    @classmethod
    async def connect(cls, target: Target, bus: EventBus | None = None, *, max_attempts: int = MAX_ATTEMPTS,
                      timeout: tuple[float, float] | None = None) -> ProxmoxClient:
        """Connect and authenticate (token), verifying TLS or the pinned fingerprint."""
        parsed = urlparse(target.proxmox_url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise RunFailed(f"not a Proxmox API URL: {target.proxmox_url}", hint="use https://HOST:8006")
        user, sep, token_name = (target.token_id or "").partition("!")
        if not sep or not user or not token_name:
            raise RunFailed(f"not an API token id: {target.token_id!r}", hint="use USER@REALM!TOKENID")
        if target.fingerprint:
            verify: bool | str = False  # the pin replaces CA verification (Proxmox certificates are self-signed)
        else:
            verify = target.ca_file or True
        timeouts = timeout or default_timeouts(target.clock)
        api = ProxmoxAPI(
            parsed.hostname,
            port=parsed.port or 8006,
            backend="https",
            service="PVE",
            user=user,
            token_name=token_name,
            token_value=target.token_secret.reveal(),
            verify_ssl=verify,
            timeout=timeouts,
        )
        if target.fingerprint:
            api._store["session"].mount("https://", _PinnedAdapter(target.fingerprint))
        client = cls(api, target, bus, max_attempts=max_attempts, timeout=timeouts)
        try:
            client.pve_version = await client.version()
        except BaseException:
            await client.close()
            raise
        client._connected = True
        return client

    async def close(self) -> None:
        session = self._api._store.get("session")
        if session is not None:
            await asyncio.to_thread(session.close)

    # --- the one way every request goes ---

    def _emit(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    def _request_sync(self, method: str, parts: Sequence[object], params: dict[str, Any]) -> Any:
        resource = self._api([check_segment(p) for p in parts])
        encoded = encode_params(params)
        if method == "GET":
            return resource.get(**encoded)
        if method == "POST":
            return resource.post(**encoded)
        if method == "PUT":
            return resource.put(**encoded)
        if method == "DELETE":
            return resource.delete(**encoded)
        raise ValueError(f"unknown method {method}")

    async def request(self, method: str, parts: Sequence[object], params: dict[str, Any] | None = None, *,
                      op: str, retry: bool | None = None,
                      recover: Callable[[], Awaitable[Any]] | None = None,
                      expected: Callable[[ProxmoxApiError], bool] | None = None) -> Any:
        """One API call. `retry` defaults to True for GET; a call that may have happened passes
        `recover` (returns a non-None result when the effect is already there) instead of retrying
        blindly. An error `expected` by the caller is raised at once, never retried."""
        if retry is None:
            retry = method == "GET"
        params = dict(params or {})
        attempt, first_error = 1, ""
        while True:
            ok, result = await asyncio.to_thread(self._attempt_sync, method, parts, params, op)
            if not ok:
                failure: _Failure = result
                if isinstance(failure.error, ProxmoxApiError) and expected and expected(failure.error):
                    if attempt > 1:  # a real answer after the fault: the fault is over, the answer stands
                        self._emit(RecoveredFromFault(operation=op, attempts=attempt, error=first_error))
                    raise failure.error from None
                if not failure.retryable or not (retry or recover) or attempt >= self.max_attempts:
                    raise failure.error from None
                first_error = first_error or failure.short
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
                self._emit(RetryScheduled(operation=op, attempt=attempt, error=failure.short, delay_s=delay))
                await self.clock.sleep(delay)
                attempt += 1
                if recover is not None:
                    done = await recover()
                    if done is not None:
                        self._emit(RecoveredFromFault(operation=op, attempts=attempt, error=first_error))
                        return done
                continue
            if attempt > 1:
                self._emit(RecoveredFromFault(operation=op, attempts=attempt, error=first_error))
            return result

    def _attempt_sync(self, method: str, parts: Sequence[object], params: dict[str, Any],
                      op: str) -> tuple[bool, Any]:
        """One try, in a worker thread: (True, result) or (False, _Failure). Classifying here keeps
        the blocking work of explaining a TLS failure (fetching the certificate) off the loop."""
        try:
            return True, self._request_sync(method, parts, params)
        except Exception as exc:  # every failure is classified; nothing escapes unexplained
            return False, self._classify(exc, op)

    async def get(self, *parts: object, op: str, **params: Any) -> Any:
        return await self.request("GET", parts, params, op=op)

    def _classify(self, exc: Exception, op: str) -> _Failure:
        where = f"{self.host}:{self.port}"
        if isinstance(exc, ResourceException):
            return self._classify_http(exc, op)
        if isinstance(exc, requests.exceptions.SSLError):
            return _Failure(self._tls_error(exc), False, "TLS error")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return _Failure(TargetUnreachable(
                f"cannot reach Proxmox at {where}: no answer within {self.timeout[0]:.0f} s ({op})",
                hint="check proxmox.url, the network and any firewall between here and port "
                     f"{self.port}"), True, "connect timeout")
        if isinstance(exc, requests.exceptions.Timeout):
            return _Failure(TargetUnreachable(
                f"Proxmox at {where} did not answer within {self.timeout[1]:.0f} s ({op})",
                hint="the host may be overloaded; check `systemctl status pveproxy pvedaemon` on it"),
                True, "timeout")
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
            text = str(exc)
            refused = "refused" in text.lower() or "Name or service not known" in text or \
                "NameResolution" in text or "No route to host" in text
            reason = ("connection refused" if "refused" in text.lower()
                      else "name not resolved" if "resol" in text.lower() or "not known" in text
                      else "no route to host" if "No route" in text
                      else "connection reset")
            return _Failure(TargetUnreachable(
                f"cannot reach Proxmox at {where}: {reason} ({op})",
                hint=f"check proxmox.url, that pveproxy runs on the host and that port {self.port} is reachable"),
                self._connected or not refused, reason)
        if isinstance(exc, ValueError):
            return _Failure(RunFailed(redact(f"internal: {op}: {exc}")), False, "bad request")
        return _Failure(RunFailed(redact(f"{op} failed: {exc.__class__.__name__}: {exc}")), False,
                        exc.__class__.__name__)

    def _classify_http(self, exc: ResourceException, op: str) -> _Failure:
        status = int(exc.status_code)
        reason = redact(str(exc.content or exc.status_message or "").strip())
        errors = exc.errors if isinstance(exc.errors, dict) else {}
        errors = {str(k): redact(str(v)).strip() for k, v in errors.items()}
        token = self.target.token_id
        if status == 401:
            return _Failure(ProxmoxApiError(
                f"authentication failed at {self.host}:{self.port} for API token {token}",
                status=status, reason=reason,
                hint="check proxmox.token_id (USER@REALM!TOKENID) and the secret its reference points to; "
                     "the token may have been deleted or expired (Datacenter > Permissions > API Tokens). "
                     "Note: a token with privilege separation has only the permissions granted to the token itself"),
                False, "authentication failed")
        if status == 403:
            missing = _PERMISSION.search(reason)
            what = (f"{missing.group('privs').strip()} on {missing.group('path')}" if missing
                    else reason or "a permission")
            return _Failure(ProxmoxApiError(
                f"permission denied: API token {token} lacks {what} (needed to {op})",
                status=status, reason=reason,
                hint=f"grant it, e.g. `pveum acl modify {missing.group('path') if missing else '/'} "
                     f"--tokens '{token}' --roles PVEAdmin`; a token with privilege separation (the default) "
                     "does not inherit its user's permissions"),
                False, "permission denied")
        if status == 400:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or reason
            return _Failure(ProxmoxApiError(
                f"Proxmox refused to {op}: {detail}", status=status, reason=reason, errors=errors),
                False, "bad parameters")
        message = f"Proxmox failed to {op}: HTTP {status} {reason}".rstrip()
        return _Failure(ProxmoxApiError(message, status=status, reason=reason, errors=errors),
                        status in _RETRYABLE_STATUS, f"HTTP {status} {reason}"[:120])

    def _tls_error(self, exc: Exception) -> RunFailed:
        where = f"{self.host}:{self.port}"
        text = str(exc)
        if self.fingerprint and "fingerprint" in text.lower():
            actual = self._actual_fingerprint(text)
            return RunFailed(
                f"the TLS certificate of {where} does not match the pinned fingerprint: "
                f"expected {self.fingerprint}, got {actual or 'an unknown one'}",
                hint="if the host's certificate was renewed on purpose, check the new one on the host "
                     "(`pvenode cert info`) and update proxmox.fingerprint; otherwise something is "
                     "intercepting the connection: do not continue")
        presented = self._presented_fingerprint()
        return RunFailed(
            f"the TLS certificate of {where} is not trusted (it is not signed by a known CA)",
            hint="Proxmox uses a self-signed certificate by default: compare its fingerprint with "
                 "`pvenode cert info` on the host and pin it with proxmox.fingerprint"
                 + (f": {presented}" if presented else ""))

    def _actual_fingerprint(self, text: str) -> str:
        match = re.search(r'got\s+"?([0-9a-fA-F:]{64,95})"?', text)
        if match:
            return normalize_fingerprint(match.group(1))
        return self._presented_fingerprint()

    def _presented_fingerprint(self) -> str:
        try:
            return fetch_certificate_fingerprint(self.target.proxmox_url, timeout=self.timeout[0])
        except OSError:
            return ""

    # --- tasks ---

    async def wait_task(self, upid: str, *, description: str = "", on_progress: Progress | None = None,
                        timeout_s: float | None = None) -> dict:
        """Wait until a UPID task stops; its new log lines go to `on_progress`. Raises on failure."""
        fields = upid_fields(upid)
        node, task_type = fields["node"], fields["type"] or "task"
        if not node:
            raise RunFailed(f"Proxmox returned an unexpected task id: {upid!r}")
        self._emit(ProxmoxTaskStarted(upid=upid, task_type=task_type, description=description))
        started = self.clock.now()
        log = _TaskLog(on_progress)
        poll = max(TASK_POLL_S, self.clock.duration(TASK_POLL_MIN_WALL_S))
        while True:
            status = await self.get("nodes", node, "tasks", upid, "status", op=f"read the {task_type} task's status")
            await self._read_task_log(node, upid, task_type, log)
            if status.get("status") == "stopped":
                break
            if timeout_s is not None and self.clock.now() - started > timeout_s:
                raise RunFailed(f"Proxmox task {task_type} on {node} did not finish within {timeout_s:.0f} s",
                                hint=f"see the task in the Proxmox UI (node {node} > Tasks)")
            await self.clock.sleep(poll)
        exitstatus = str(status.get("exitstatus", "unknown"))
        ok = task_succeeded(exitstatus)
        if not ok:  # the log may have grown after the last read
            await self._read_task_log(node, upid, task_type, log)
        tail = [redact(line) for line in log.lines[-TASK_LOG_TAIL:]]
        self._emit(ProxmoxTaskFinished(upid=upid, task_type=task_type, exitstatus=redact(exitstatus), ok=ok,
                                       duration_s=round(self.clock.now() - started, 3), log_tail=tail))
        if not ok:
            last = "; ".join(tail[-3:])
            raise RunFailed(
                redact(f"Proxmox task {task_type} on {node} failed: {exitstatus}"),
                hint=f"task log ends with: {last}" if last else f"see the task log on {node} (Tasks)")
        return status

    async def _read_task_log(self, node: str, upid: str, task_type: str, log: _TaskLog) -> None:
        try:
            rows = await self.get("nodes", node, "tasks", upid, "log", op=f"read the {task_type} task's log",
                                  start=log.offset, limit=500)
        except ProxmoxApiError:
            return  # progress is a nicety; the status decides
        for row in rows or ():
            log.add(int(row.get("n", 0)), str(row.get("t", "")))

    async def _maybe_wait(self, result: Any, *, description: str, on_progress: Progress | None = None,
                          timeout_s: float | None = None) -> None:
        if isinstance(result, str) and result.startswith("UPID:"):
            await self.wait_task(result, description=description, on_progress=on_progress, timeout_s=timeout_s)

    async def find_task(self, node: str, vmid: int, task_type: str) -> dict | None:
        """The newest task of this type for this VM (running or not), if the node lists one."""
        try:
            rows = await self.get("nodes", node, "tasks", op="list tasks", vmid=vmid, typefilter=task_type,
                                  source="all", limit=20)
        except ProxmoxApiError:
            return None
        rows = [r for r in rows or () if r.get("type") == task_type]
        return max(rows, key=lambda r: int(r.get("starttime", 0)), default=None)

    # --- host facts ---

    async def version(self) -> str:
        data = await self.get("version", op="read the Proxmox version")
        return str((data or {}).get("version", ""))

    async def nodes(self) -> list[dict]:
        return list(await self.get("nodes", op="list the nodes") or [])

    async def node_facts(self, node: str) -> NodeFacts:
        status = await self.get("nodes", node, "status", op=f"read node {node}'s status")
        storages = await self.get("nodes", node, "storage", op=f"list node {node}'s storages")
        bridges = await self.get("nodes", node, "network", op=f"list node {node}'s bridges and VNets",
                                 type="any_bridge")
        zones, vnets = await self.sdn() if any((b or {}).get("type") == "vnet" for b in bridges or ()) else ([], [])
        vms = await self.get("nodes", node, "qemu", op=f"list node {node}'s VMs")
        running = sum(1 for vm in vms or () if vm.get("status") == "running")
        return parse_node_facts(node, status or {}, storages or (), bridges or (), running, zones, vnets)

    async def sdn(self) -> tuple[list[dict], list[dict]]:
        """The applied SDN zones and VNets (read once); empty when they cannot be read (no SDN.Audit)."""
        if self._sdn_config is None:
            try:
                zones = await self.request("GET", ("cluster", "sdn", "zones"), {"running": 1},
                                           op="list the SDN zones", expected=_not_transient)
                vnets = await self.request("GET", ("cluster", "sdn", "vnets"), {"running": 1},
                                           op="list the SDN VNets", expected=_not_transient)
                self._sdn_config = (list(zones or []), list(vnets or []))
            except ProxmoxApiError as exc:
                log.info("SDN zones/VNets not readable (%s): VNets are taken as without IPAM", exc.message)
                self._sdn_config = ([], [])
        return self._sdn_config

    async def inventory(self) -> HostInventory:
        """Every node's facts (physical cores, threads, RAM, storages, bridges)."""
        version = self.pve_version or await self.version()
        facts = []
        for row in sorted(await self.nodes(), key=lambda r: str(r.get("node", ""))):
            name = str(row.get("node", ""))
            if row.get("status") == "online":
                try:
                    facts.append(await self.node_facts(name))
                    continue
                except ProxmoxApiError as exc:  # listed online, but its daemon does not answer (595/596)
                    if exc.status < 500:
                        raise
                    log.info("node %s does not answer (%s); shown as offline", name, exc.message)
            facts.append(NodeFacts(node=name, online=False, cpu_model="", sockets=0, cores=0,
                                   threads=int(row.get("maxcpu") or 0), mem_total=int(row.get("maxmem") or 0),
                                   mem_used=int(row.get("mem") or 0), hvm=False))
        return HostInventory(pve_version=version, nodes=tuple(facts),
                             fingerprint=self.fingerprint or await asyncio.to_thread(self._presented_fingerprint),
                             cluster_name=await self.cluster_name())

    async def cluster_name(self) -> str:
        try:
            rows = await self.get("cluster", "status", op="read the cluster status")
        except ProxmoxApiError:
            return ""
        return next((str(r.get("name", "")) for r in rows or () if r.get("type") == "cluster"), "")

    # --- storage and the OVA ---

    async def storage_content(self, node: str, storage: str, content: str | None = None) -> list[dict]:
        return list(await self.get("nodes", node, "storage", storage, "content",
                                   op=f"list the content of storage {storage} on {node}", content=content) or [])

    async def ova_metadata(self, node: str, volid: str) -> dict:
        """GET import-metadata for an OVA volid ('local:import/x.ova'); `volume` is the volname."""
        storage, volname = vmconfig.split_volid(volid)
        return dict(await self.get("nodes", node, "storage", storage, "import-metadata",
                                   op=f"read the OVA's metadata ({volid})", volume=volname) or {})

    async def storage_config(self, storage: str) -> dict:
        return dict(await self.get("storage", storage, op=f"read storage {storage}'s configuration") or {})

    async def add_storage_content(self, storage: str, content: str) -> bool:
        """Add one content type to a storage (PUT replaces the list, so it is read first).
        Returns False when it was already there."""
        return await self._change_storage_content(storage, content, add=True)

    async def remove_storage_content(self, storage: str, content: str) -> bool:
        """Remove one content type from a storage, keeping the rest of its list as it is now.
        Returns False when it was not there."""
        return await self._change_storage_content(storage, content, add=False)

    async def _change_storage_content(self, storage: str, content: str, add: bool) -> bool:
        async def done() -> bool | None:
            config = await self.storage_config(storage)
            return True if (content in str(config.get("content", "")).split(",")) == add else None

        config = await self.storage_config(storage)
        current = [c for c in str(config.get("content", "")).split(",") if c]
        if (content in current) == add:
            return False
        wanted = [*current, content] if add else [c for c in current if c != content]
        verb = f"add '{content}' to" if add else f"remove '{content}' from"
        # the digest refuses the change if someone edited the storage meanwhile; a lost answer is
        # checked (the change is there) rather than sent again with a digest that no longer matches
        await self.request("PUT", ("storage", storage), {"content": ",".join(wanted), "digest": config.get("digest")},
                           op=f"{verb} storage {storage}'s content", recover=done)
        return True

    # --- VMs ---

    async def next_vmid(self) -> int:
        return int(await self.get("cluster", "nextid", op="get a free VMID"))

    async def vms(self) -> list[dict]:
        """Every VM of the cluster (GET /cluster/resources?type=vm, qemu only)."""
        rows = await self.get("cluster", "resources", op="list the cluster's VMs", type="vm")
        return [r for r in rows or () if r.get("type", "qemu") == "qemu"]

    async def vms_named(self, name: str) -> list[dict]:
        return sorted((r for r in await self.vms() if r.get("name") == name), key=lambda r: int(r.get("vmid", 0)))

    async def tagged_vms(self, name: str) -> list[VmRef]:
        """The VMs this tool created with that name (by name and tag), whichever run created them."""
        return [VmRef(node=str(r.get("node", "")), vmid=int(r["vmid"]), name=name)
                for r in await self.vms_named(name) if vmconfig.has_tag(r.get("tags"))]

    async def find_vm(self, name: str) -> VmRef | None:
        """The VM this tool created with that name (by name and tag), if any."""
        ours = await self.tagged_vms(name)
        if len(ours) > 1:
            ids = ", ".join(str(vm.vmid) for vm in ours)
            raise RunFailed(f"there are {len(ours)} VMs named {name} tagged {vmconfig.TAG} ({ids})",
                            hint="remove the ones you do not want, then run again")
        return ours[0] if ours else None

    async def vm_owner(self, vm: VmRef) -> str | None:
        """The run that created the VM, as its description names it (None: no claim)."""
        return vmconfig.claimed_by((await self.vm_config(vm)).get("description"))

    async def create_vm(self, node: str, config: dict, *, on_progress: Progress | None = None,
                        timeout_s: float | None = 6 * 3600) -> VmRef:
        """POST /nodes/{node}/qemu and wait for the task (the OVA import happens in it).

        A failure that may have created the VM anyway (a timeout, a reset, a 5xx) is checked by
        looking for the VM by name and tag before anything is retried."""
        name = str(config["name"])
        owner = vmconfig.claimed_by(config.get("description"))
        params = dict(config)
        if params.get("vmid") is None:
            params["vmid"] = await self.next_vmid()
        else:
            taken = next((r for r in await self.vms() if int(r.get("vmid", -1)) == int(params["vmid"])), None)
            if taken is not None:
                raise RunFailed(f"VMID {params['vmid']} is already used by VM '{taken.get('name', '')}' "
                                f"on {taken.get('node')}", hint="pick another vm.vmid, or leave it out to use the next free one")
        vmid = int(params["vmid"])

        async def created() -> VmRef | None:
            # While the import runs, qemu-server's config holds nothing but 'lock: create' (no name,
            # no tag): the VMID we sent, locked for creation, is the create we sent. Whose it is
            # shows once the import ends (`_confirm_ours` reads the claim back).
            row = next((r for r in await self.vms() if int(r.get("vmid", -1)) == vmid), None)
            if row is not None and (row.get("lock") == "create" or row.get("name") == name):
                return VmRef(node=str(row.get("node") or node), vmid=vmid, name=name)
            return None

        result = await self.request("POST", ("nodes", node, "qemu"), params, op=f"create VM {vmid} ({name})",
                                    recover=created)
        if isinstance(result, VmRef):
            await self.wait_unlocked(result, on_progress=on_progress, timeout_s=timeout_s)
            await self._confirm_ours(result, owner)
            return result
        await self._maybe_wait(result, description=f"create VM {vmid} ({name})", on_progress=on_progress,
                               timeout_s=timeout_s)
        return VmRef(node=node, vmid=vmid, name=name)

    async def _confirm_ours(self, vm: VmRef, owner: str | None) -> None:
        """The VM behind a create whose answer was lost is ours: our name, tag and claim."""
        config = await self.vm_config(vm)
        if (config.get("name") != vm.name or not vmconfig.has_tag(config.get("tags"))
                or vmconfig.claimed_by(config.get("description")) != owner):
            raise RunFailed(f"VM {vm.vmid} on {vm.node} is not the VM that was being created ({vm.name})",
                            hint="another client took that VMID; run again to create the VM with a new one")

    async def creates_in_progress(self, node: str) -> list[VmRef]:
        """VMs this token is still creating on `node` (an earlier, interrupted run's create, say):
        their config holds only 'lock: create' until the import ends, so only the task tells."""
        try:
            rows = await self.get("nodes", node, "tasks", op=f"list the running tasks on {node}",
                                  typefilter="qmcreate", source="active")
        except ProxmoxApiError:
            return []
        return [VmRef(node=node, vmid=int(r["id"])) for r in rows or ()
                if r.get("type") == "qmcreate" and r.get("user") == self.target.token_id
                and str(r.get("id", "")).isdigit()]

    async def wait_unlocked(self, vm: VmRef, *, on_progress: Progress | None = None,
                            timeout_s: float | None = 6 * 3600) -> None:
        """Wait for a create still running on a VM found again (its config is locked 'create')."""
        config = await self.vm_config(vm)
        if config.get("lock") != "create":
            return
        task = await self.find_task(vm.node, vm.vmid, "qmcreate")
        if task and task.get("upid"):
            await self.wait_task(str(task["upid"]), description=f"create VM {vm.vmid} ({vm.name})",
                                 on_progress=on_progress, timeout_s=timeout_s)
            return
        started = self.clock.now()
        while (await self.vm_config(vm)).get("lock") == "create":
            if on_progress is not None:
                on_progress(f"VM {vm.vmid} is still being created", None)
            if timeout_s is not None and self.clock.now() - started > timeout_s:
                raise RunFailed(f"VM {vm.vmid} is still locked for creation after {timeout_s:.0f} s")
            await self.clock.sleep(5.0)

    async def vm_config(self, vm: VmRef, *, current: bool = False) -> dict:
        return dict(await self.get("nodes", vm.node, "qemu", vm.vmid, "config",
                                   op=f"read VM {vm.vmid}'s configuration", current=current or None) or {})

    async def update_config(self, vm: VmRef, changes: dict, delete: tuple[str, ...] = (), *,
                            on_progress: Progress | None = None) -> None:
        """POST .../config (async: a UPID, or null when done within the background delay)."""
        params = dict(changes)
        if delete:
            params["delete"] = list(delete)
        result = await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "config"), params,
                                    op=f"change VM {vm.vmid}'s configuration", retry=True)
        await self._maybe_wait(result, description=f"configure VM {vm.vmid}", on_progress=on_progress)
        shown = {k: v for k, v in changes.items()}
        if delete:
            shown["delete"] = ",".join(delete)
        self._emit(VmConfigured(vmid=vm.vmid, changes=shown))

    async def resize(self, vm: VmRef, disk: str, size: str, *, on_progress: Progress | None = None) -> None:
        """PUT .../resize with an absolute size ('1000G'), so a retry is harmless."""
        result = await self.request("PUT", ("nodes", vm.node, "qemu", vm.vmid, "resize"),
                                    {"disk": disk, "size": size}, op=f"resize VM {vm.vmid}'s {disk} to {size}",
                                    retry=True)
        await self._maybe_wait(result, description=f"resize {disk} of VM {vm.vmid}", on_progress=on_progress)
        self._emit(VmConfigured(vmid=vm.vmid, changes={f"{disk} size": size}))

    async def status(self, vm: VmRef) -> dict:
        return dict(await self.get("nodes", vm.node, "qemu", vm.vmid, "status", "current",
                                   op=f"read VM {vm.vmid}'s status") or {})

    async def _task_upids(self, vm: VmRef, task_type: str) -> set[str]:
        try:
            rows = await self.get("nodes", vm.node, "tasks", op=f"list VM {vm.vmid}'s {task_type} tasks",
                                  vmid=vm.vmid, typefilter=task_type, source="all", limit=50)
        except ProxmoxApiError:
            return set()
        return {str(r["upid"]) for r in rows or () if r.get("type") == task_type and r.get("upid")}

    async def _started_task(self, vm: VmRef, task_type: str) -> Callable[[], Awaitable[str | None]]:
        """A check for a call whose answer may be lost: the UPID of a `task_type` task for this VM
        that was not there before the call (the host's clock never enters into it)."""
        before = await self._task_upids(vm, task_type)

        async def started() -> str | None:
            new = await self._task_upids(vm, task_type) - before
            return max(new) if new else None

        return started

    async def _power(self, vm: VmRef, action: str, want: str, params: dict | None = None,
                     timeout_s: float | None = None) -> None:
        if (await self.status(vm)).get("status") == want:
            return
        started = await self._started_task(vm, f"qm{action}")

        async def reached() -> bool | str | None:
            return True if (await self.status(vm)).get("status") == want else await started()

        result = await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "status", action), params or {},
                                    op=f"{action} VM {vm.vmid}", recover=reached)
        if result is not True:
            await self._maybe_wait(result, description=f"{action} VM {vm.vmid}", timeout_s=timeout_s)
        self._emit(VmPowerChanged(vmid=vm.vmid, state=want, action=action))

    async def start(self, vm: VmRef) -> None:
        await self._power(vm, "start", "running", timeout_s=600)

    async def shutdown(self, vm: VmRef, timeout_s: int = 300, *, force_stop: bool = False) -> None:
        """A clean shutdown through ACPI or the guest agent; `force_stop` stops it after the timeout."""
        await self._power(vm, "shutdown", "stopped", {"timeout": int(timeout_s), "forceStop": force_stop},
                          timeout_s=timeout_s + 120)

    async def stop(self, vm: VmRef) -> None:
        await self._power(vm, "stop", "stopped", timeout_s=600)

    async def destroy(self, vm: VmRef) -> None:
        """Delete a stopped VM with its disks and snapshots (purge: out of backup jobs and HA too)."""
        async def gone() -> bool | None:
            return True if not await self.vm_exists(vm) else None

        result = await self.request("DELETE", ("nodes", vm.node, "qemu", vm.vmid),
                                    {"purge": 1, "destroy-unreferenced-disks": 1},
                                    op=f"delete VM {vm.vmid}", recover=gone)
        if result is not True:
            await self._maybe_wait(result, description=f"delete VM {vm.vmid}", timeout_s=600)

    async def reboot(self, vm: VmRef, timeout_s: int = 300) -> None:
        """Shut the guest down and start it again; a lost answer is checked in the node's task list."""
        started = await self._started_task(vm, "qmreboot")
        result = await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "status", "reboot"),
                                    {"timeout": int(timeout_s)}, op=f"reboot VM {vm.vmid}", recover=started)
        await self._maybe_wait(result, description=f"reboot VM {vm.vmid}", timeout_s=timeout_s + 120)
        self._emit(VmPowerChanged(vmid=vm.vmid, state="running", action="reboot"))

    # --- snapshots ---

    async def snapshots(self, vm: VmRef) -> list[dict]:
        rows = await self.get("nodes", vm.node, "qemu", vm.vmid, "snapshot", op=f"list VM {vm.vmid}'s snapshots")
        return [r for r in rows or () if r.get("name") != "current"]

    async def snapshot(self, vm: VmRef, name: str, description: str = "", *, vmstate: bool = False) -> None:
        """Take a snapshot; one that already exists is left alone (so a rerun never takes two)."""
        check_segment(name)

        async def exists() -> bool:
            return any(s.get("name") == name for s in await self.snapshots(vm))

        if await exists():
            return
        started = await self._started_task(vm, "qmsnapshot")

        async def taken() -> bool | str | None:
            upid = await started()  # a snapshot being taken is listed before its task ends
            return upid if upid else (True if await exists() else None)

        result = await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "snapshot"),
                                    {"snapname": name, "description": description or None,
                                     "vmstate": True if vmstate else None},
                                    op=f"snapshot VM {vm.vmid} as {name}", recover=taken)
        if result is not True:
            await self._maybe_wait(result, description=f"snapshot {name} of VM {vm.vmid}", timeout_s=3600)
        self._emit(SnapshotCreated(vmid=vm.vmid, name=name))

    async def rollback(self, vm: VmRef, name: str) -> None:
        result = await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "snapshot", name, "rollback"), {},
                                    op=f"roll VM {vm.vmid} back to {name}", retry=True)
        await self._maybe_wait(result, description=f"rollback of VM {vm.vmid} to {name}", timeout_s=3600)
        self._emit(SnapshotRolledBack(vmid=vm.vmid, name=name))

    # --- guest agent and addresses ---

    @staticmethod
    def _agent_not_ready(error: ProxmoxApiError) -> bool:
        return error.status == 500 and bool(_AGENT_NOT_READY.search(error.reason))

    async def agent_ping(self, vm: VmRef) -> bool:
        """Whether the guest agent answers (False while it is not running yet)."""
        try:
            await self.request("POST", ("nodes", vm.node, "qemu", vm.vmid, "agent", "ping"), {},
                               op=f"ping VM {vm.vmid}'s guest agent", retry=True, expected=self._agent_not_ready)
        except ProxmoxApiError as exc:
            if self._agent_not_ready(exc):
                return False
            raise
        return True

    async def guest_addresses(self, vm: VmRef) -> list[str]:
        """IPv4 addresses the guest agent reports (loopback excluded); [] while it is not running."""
        try:
            data = await self.request("GET", ("nodes", vm.node, "qemu", vm.vmid, "agent", "network-get-interfaces"),
                                      {}, op=f"read VM {vm.vmid}'s addresses from the guest agent",
                                      expected=self._agent_not_ready)
        except ProxmoxApiError as exc:
            if self._agent_not_ready(exc):
                return []
            raise
        return ipv4_addresses((data or {}).get("result") or [])

    async def ipam_entries(self) -> list[dict]:
        """Proxmox's IPAM entries (`GET /cluster/sdn/ipams/pve/status`: only the pve IPAM can be
        read, and it lists only zones with IPAM and DHCP): {zone, subnet, ip, vnet, vmid, mac, hostname}."""
        rows = await self.request("GET", ("cluster", "sdn", "ipams", "pve", "status"), {},
                                  op="read the IPAM's entries", expected=_not_transient)
        return [r for r in rows or () if isinstance(r, dict)]
