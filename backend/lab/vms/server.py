"""The lab's VMS: the VAST 5.4 REST API over HTTPS on 127.0.0.1, as the guest's VMS serves it.

    GET /api/[<v1..|latest>/]{clusters,vtasks,hosts,cnodes,dnodes,licenses,versions,vms}/[<id>/]
    POST /api/[<ver>/]apitokens/ {owner}        -> {"id", "token"} (then `Authorization: Api-Token <t>`)
    POST /api/token/ {username, password}       -> {"access", "refresh"} (then `Authorization: Bearer <a>`)

Basic auth (admin/123456 by default, configurable), an API token or a JWT access token. The
password is held in memory only and compared there (no hash of it is written anywhere); JWTs are
signed with a key of this server's own, so they die with it, and live 1 h (access) and 1 day
(refresh) on the lab clock, VMS's defaults (kb.vastdata.com "VMS settings"). The JWT login is what
the guest's vcli stand-in does before a cluster create (backend/lab/vast/player.py); it is not a
fault opportunity: the fault plan fails the tool's own clients (Proxmox, SSH, the VMS REST polls),
a failing vcli is the scenario's business. Lists are JSON arrays, or
`{count, next, previous, results}` when `page` is given; `fields=a,b` narrows each item; any other
query parameter naming a field filters on it (`vtasks/?name=cluster_deploy&state=RUNNING`).

The VMS keeps no state of its own: every answer is rendered from the guest's world events file
(backend/lab/vast/vaststate.py), so it survives restarts of the lab process. Its TLS certificate is
the guest's too: the one the VMS made in the guest at its first start (the scenario's `vms_tls`
paths, backend/lab/facts.py), read again each time the listener opens; without one it does not
listen. Like the real one it is not
there before bootstrap brings it up: until then (and while the guest is down, and for a lab minute
after a `restart()`, e.g. the `vms_restart` fault) the port refuses connections. The port itself
stays reserved (bound, not listening), so a client keeps one address. Every request is appended to
`<state>/vms-requests.jsonl` (method, path, query, status, auth kind; never a credential).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from backend.clock import Clock
from backend.lab.faults import FaultPlan
from backend.lab.httpd import TlsHttpServer
from backend.lab.pve.tls import fingerprint_of
from backend.lab.vast import EVENTS_PATH, SCENARIO_PATH, GuestPaths, as_paths
from backend.lab.vast.vaststate import WorldReader
from backend.lab.vms.resources import COLLECTIONS, Renderer
from backend.run.safefiles import open_append
from backend.secrets import register_secret

log = logging.getLogger("vlb.lab.vms")

VERSION_SEGMENT = re.compile(r"^(latest|v\d+)$")
RESTART_LAB_S = 60.0
DEFAULT_PAGE_SIZE = 50
NOT_FILTERS = {"page", "page_size", "fields", "format", "ordering"}
MAX_BODY = 64 * 1024
JWT_ACCESS_S = 3600.0  # VMS's default access token lifetime
JWT_REFRESH_S = 86400.0  # and refresh token lifetime


class VmsServer:
    """One guest's VMS. `start()`, then reach it at (`host`, `port`) once the guest's VMS is up."""

    def __init__(self, state_dir: Path, clock: Clock, guest: GuestPaths | Path, *, host: str = "127.0.0.1",
                 port: int = 0, user: str = "admin", password: str = "123456",
                 faults: FaultPlan | None = None, guest_up: Callable[[], bool] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.guest = as_paths(guest)
        self.host, self.port = host, port
        self.user, self.password = user, password  # in memory only, never written
        register_secret(password)
        self._jwt_key = secrets.token_bytes(32)
        self.faults = faults or FaultPlan.off()
        self.guest_up = guest_up or (lambda: True)
        self.reader = WorldReader(self.guest.host(EVENTS_PATH))
        self.requests_log = self.state_dir / "vms-requests.jsonl"
        self.own_dir = self.state_dir / "vms"
        self.fingerprint = ""  # of the certificate served now (the guest's, see `_tls_context`)
        self._missing_certificate_logged = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._down_until = 0.0  # lab time until which a restart keeps the VMS away
        self._reserved: socket.socket | None = None
        self._httpd: _Httpd | None = None
        self._serve_thread: threading.Thread | None = None
        self._monitor: threading.Thread | None = None
        self._scenario_key: tuple[int, int] | None = None
        self._scenario: dict = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> VmsServer:
        self.own_dir.mkdir(parents=True, exist_ok=True)
        self._reserved = self._bind()
        self._stop.clear()
        self._monitor = threading.Thread(target=self._watch, name="lab-vms-watch", daemon=True)
        self._monitor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=2)
            self._monitor = None
        self._close_listener(rebind=False)
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    def __enter__(self) -> VmsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, lab_seconds: float = RESTART_LAB_S) -> None:
        """The VMS restarts: connections are refused for `lab_seconds` of lab time."""
        with self._lock:
            self._down_until = max(self._down_until, self.clock.now() + lab_seconds)
        log.info("VMS restarting for %.0f lab seconds", lab_seconds)

    @property
    def listening(self) -> bool:
        return self._httpd is not None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def wait_listening(self, want: bool = True, timeout: float = 5.0) -> bool:
        """Wait (wall seconds) until the listener is open (or closed); tests and the lab use it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.listening == want:
                return True
            time.sleep(0.01)
        return self.listening == want

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        return sock

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            try:
                want = self.should_listen()
                if want and self._httpd is None:
                    self._open_listener()
                elif not want and self._httpd is not None:
                    self._close_listener(rebind=True)
            except Exception:
                log.exception("VMS listener watch failed")

    def should_listen(self) -> bool:
        if self.clock.now() < self._down_until or not self.guest_up():
            return False
        world = self.reader.world()
        boot_t = float(self.scenario().get("boot_t", 0.0))
        return world.vms_up and float(world.vms_up_since or 0.0) >= boot_t

    def _tls_context(self) -> ssl.SSLContext | None:
        """The guest's VMS certificate and key as a server context, or None while it has none."""
        tls = self.scenario().get("vms_tls") or {}
        cert, key = self.guest.host(tls.get("cert", "/")), self.guest.host(tls.get("key", "/"))
        if not tls or not cert.is_file() or not key.is_file():
            if not self._missing_certificate_logged:
                log.warning("the guest's VMS has no certificate at %s: it does not listen", tls.get("cert"))
                self._missing_certificate_logged = True
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        self.fingerprint = fingerprint_of(ssl.PEM_cert_to_DER_cert(cert.read_text()))
        self._missing_certificate_logged = False
        return context

    def _open_listener(self) -> None:
        context = self._tls_context()
        if context is None:
            return
        sock = self._reserved or self._bind()
        self._reserved = None
        sock.listen(64)
        handler = type("VmsHandler", (_Handler,), {"vms": self})
        httpd = _Httpd(sock, handler, context)
        self._httpd = httpd
        self._serve_thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                              name="lab-vms-https", daemon=True)
        self._serve_thread.start()

    def _close_listener(self, rebind: bool) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=2)
            self._serve_thread = None
        if rebind:
            self._reserved = self._bind()
        self._httpd = None  # only now: `listening` is False once connections are refused

    def scenario(self) -> dict:
        path = self.guest.host(SCENARIO_PATH)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_size, stat.st_mtime_ns)
        if key != self._scenario_key:
            try:
                self._scenario = json.loads(path.read_text())
            except ValueError:
                return self._scenario
            self._scenario_key = key
        return self._scenario

    # --- requests ------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes,
               host_header: str) -> tuple[int, object]:
        """(status, JSON body) of one request."""
        split = urlsplit(raw_path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        entry: dict = {"method": method, "path": split.path, "query": query}
        status, data = self._answer(method, split.path, query, headers, body, host_header, entry)
        entry["status"] = status
        self._log(entry)
        return status, data

    def _answer(self, method: str, path: str, query: dict, headers: dict[str, str], body: bytes,
                host_header: str, entry: dict) -> tuple[int, object]:
        segments = [s for s in path.split("/") if s]
        if not segments or segments[0] != "api":
            return 404, {"detail": "Not found."}
        segments = segments[1:]
        if segments and VERSION_SEGMENT.match(segments[0]):
            segments = segments[1:]
        if segments == ["token"]:
            return self._login(method, body, entry)
        fault = self.faults.decide("vms", method, path)
        if fault is not None and fault.kind == "vms_restart":
            self.faults.record("vms", fault, method=method, path=path)
            entry["fault"] = fault.kind
            self.restart()
            return 502, {"detail": "Bad Gateway: the VMS is restarting"}
        who = self._authenticate(headers)
        entry["auth"] = who
        if who is None:
            kind = "Invalid username/password." if headers.get("authorization") else \
                "Authentication credentials were not provided."
            return 401, {"detail": kind}
        if not segments:
            return 200, {name: f"https://{host_header}/api/{name}/" for name in COLLECTIONS}
        collection, rest = segments[0], segments[1:]
        if collection == "apitokens":
            return self._apitokens(method, rest, body)
        if collection not in COLLECTIONS:
            return 404, {"detail": "Not found."}
        if method != "GET":
            return 405, {"detail": f'Method "{method}" not allowed.'}
        world = self.reader.world()
        renderer = Renderer(world, self.scenario(), self.clock.now(), f"https://{host_header}/api")
        items = renderer.collection(collection) or []
        if rest:
            if len(rest) != 1 or not rest[0].isdigit():
                return 404, {"detail": "Not found."}
            for item in items:
                if item.get("id") == int(rest[0]):
                    return 200, _narrow(item, query.get("fields"))
            return 404, {"detail": "Not found."}
        items = [_narrow(item, query.get("fields")) for item in _filtered(items, query)]
        if "page" in query:
            return _page(items, query, f"https://{host_header}{path}")
        return 200, items

    def _authenticate(self, headers: dict[str, str]) -> str | None:
        value = headers.get("authorization", "")
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            ok = hmac.compare_digest(user, self.user) and hmac.compare_digest(password, self.password)
            return f"basic:{user}" if ok else None
        if scheme.lower() == "api-token":
            digest = hashlib.sha256(credentials.strip().encode()).hexdigest()
            for token in self._tokens():
                if hmac.compare_digest(digest, token["sha256"]):
                    return f"token:{token['owner']}"
        if scheme.lower() == "bearer":
            user = self._jwt_user(credentials.strip(), "access")
            return f"jwt:{user}" if user else None
        return None

    def _login(self, method: str, body: bytes, entry: dict) -> tuple[int, object]:
        """POST /api/token/: a JWT pair for a user name and password (compared in memory)."""
        if method != "POST":
            return 405, {"detail": f'Method "{method}" not allowed.'}
        try:
            request = json.loads(body.decode("utf-8") or "{}") if body else {}
        except (ValueError, UnicodeDecodeError):
            return 400, {"detail": "JSON parse error"}
        user, password = request.get("username"), request.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            return 400, {"username": ["This field is required."], "password": ["This field is required."]}
        ok = hmac.compare_digest(user.encode(), self.user.encode()) and \
            hmac.compare_digest(password.encode(), self.password.encode())
        entry["auth"] = f"login:{user}" if ok else None
        if not ok:
            return 401, {"detail": "No active account found with the given credentials"}
        pair = {"access": self._jwt(user, "access", JWT_ACCESS_S), "refresh": self._jwt(user, "refresh", JWT_REFRESH_S)}
        for token in pair.values():
            register_secret(token)
        return 200, pair

    def _jwt(self, user: str, kind: str, lifetime_s: float) -> str:
        claims = base64.urlsafe_b64encode(json.dumps(
            {"user": user, "kind": kind, "exp": round(self.clock.now() + lifetime_s, 3)}).encode()).decode()
        return f"{claims}.{self._sign(claims)}"

    def _jwt_user(self, token: str, kind: str) -> str | None:
        claims, _, signature = token.rpartition(".")
        if not claims or not hmac.compare_digest(signature, self._sign(claims)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(claims.encode()))
        except (ValueError, UnicodeDecodeError):
            return None
        if data.get("kind") != kind or float(data.get("exp", 0)) < self.clock.now():
            return None
        return str(data.get("user"))

    def _sign(self, claims: str) -> str:
        return hmac.new(self._jwt_key, claims.encode(), hashlib.sha256).hexdigest()

    def _tokens(self) -> list[dict]:
        path = self.own_dir / "tokens.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return []

    def _apitokens(self, method: str, rest: list[str], body: bytes) -> tuple[int, object]:
        tokens = self._tokens()
        if method == "GET" and not rest:
            return 200, [{"id": t["id"], "owner": t["owner"], "name": t.get("name", "")} for t in tokens]
        if method != "POST" or rest:
            return 405, {"detail": f'Method "{method}" not allowed.'}
        try:
            request = json.loads(body.decode("utf-8") or "{}") if body else {}
        except (ValueError, UnicodeDecodeError):
            return 400, {"detail": "JSON parse error"}
        owner = str(request.get("owner") or "")
        if not owner:
            return 400, {"owner": ["This field is required."]}
        if sum(1 for t in tokens if t["owner"] == owner) >= 5:
            return 400, {"detail": f"User {owner} already has the maximum of 5 API tokens"}
        token = secrets.token_urlsafe(32)
        register_secret(token)
        entry = {"id": max((t["id"] for t in tokens), default=0) + 1, "owner": owner,
                 "name": str(request.get("name") or ""), "sha256": hashlib.sha256(token.encode()).hexdigest()}
        path = self.own_dir / "tokens.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump([*tokens, entry], handle)
        return 201, {"id": entry["id"], "token": token}

    def _log(self, entry: dict) -> None:
        entry = {**entry, "t": round(self.clock.now(), 3)}
        with self._lock, open_append(self.requests_log) as handle:
            handle.write(json.dumps(entry) + "\n")


def _narrow(item: dict, fields: str | None) -> dict:
    if not fields:
        return item
    wanted = [name.strip() for name in fields.split(",") if name.strip()]
    return {name: item[name] for name in wanted if name in item}


def _filtered(items: list[dict], query: dict) -> list[dict]:
    for key, value in query.items():
        if key in NOT_FILTERS or "__" in key or not any(key in item for item in items):
            continue
        items = [item for item in items if _text(item.get(key)) == value.lower()]
    return items


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _page(items: list[dict], query: dict, url: str) -> tuple[int, object]:
    try:
        page = int(query.get("page", "1"))
        size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        return 404, {"detail": "Invalid page."}
    if page < 1 or size < 1 or (page > 1 and (page - 1) * size >= len(items)):
        return 404, {"detail": "Invalid page."}

    def link(number: int) -> str:
        return url + "?" + urlencode({**query, "page": str(number)})

    return 200, {
        "count": len(items),
        "next": link(page + 1) if page * size < len(items) else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": items[(page - 1) * size: page * size],
    }


class _Httpd(TlsHttpServer):
    """The VMS server on an already bound and listening socket."""

    label = "VMS"

    def __init__(self, sock: socket.socket, handler: type, context: ssl.SSLContext) -> None:
        super().__init__(sock.getsockname(), handler, context, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()


class _Handler(BaseHTTPRequestHandler):
    vms: VmsServer
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return  # vms-requests.jsonl is the record

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"detail": "Request body too large."})
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = self.headers.get("Host") or f"{self.vms.host}:{self.vms.port}"
        try:
            status, data = self.vms.handle(self.command, self.path, headers, body, host)
        except Exception as exc:  # a lab bug answers 500, never kills the connection silently
            log.exception("VMS request failed")
            status, data = 500, {"detail": f"{exc.__class__.__name__}: {exc}"}
        self._send(status, data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _send(self, status: int, data: object) -> None:
        payload = json.dumps(data).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)
