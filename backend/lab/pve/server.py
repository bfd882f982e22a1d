"""The lab's Proxmox VE API over HTTPS on 127.0.0.1, in a background thread.

Request path, as on a real host (pve-http-server + pve-manager's HTTPServer):
    fault plan (before) -> authentication (401) -> routing by the official schema (501) ->
    parameter verification (400) -> the handler (its own errors) -> fault plan (after) -> answer.

Answers are `{"data": ...}`; errors carry the status, the message as reason phrase (first line)
and `{"data": null, "message": ..., "errors": {...}}`. Every request is appended to
`<state>/pve-requests.jsonl` as {"method", "path", "params", "status", "t"} with secrets redacted.

A ticker thread finishes tasks as the lab clock passes their end, so the guest boots when its VM's
start task ends even when nobody polls. `PveServer` works from sync code (tests) and from asyncio
(start/stop are quick and non-blocking enough to call directly or in a thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import ssl
import struct
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from backend.clock import Clock
from backend.lab.faults import Fault, FaultPlan
from backend.lab.httpd import TlsHttpServer
from backend.lab.profiles import HostProfile
from backend.lab.pve import api as apimod
from backend.lab.pve.api import PveApi
from backend.lab.pve.auth import Auth, Identity, new_secret
from backend.lab.pve.errors import ApiError, param_error
from backend.lab.pve.pvestate import PveState
from backend.lab.pve.schema import ApiSchema, schema_path, validate
from backend.lab.pve.tls import ensure_certificate
from backend.lab.world import GuestHooks
from backend.run.safefiles import open_append, write_private
from backend.secrets import redact, register_secret

log = logging.getLogger("vlb.lab.pve")
log.addHandler(logging.NullHandler())  # never to the terminal; each server also writes <state>/pve.log

BASE = "/api2/json"
MAX_POST = 64 * 1024
SECRET_PARAMS = {"password", "new-password", "cipassword", "otp", "tfa-challenge", "ticket"}
UNAUTHORIZED_DELAY_S = 3.0  # pve-http-server delays every 401 by 3 s (lab seconds here)
HANG_WALL_S = 300.0


def _load_or_create_secrets(pve_dir: Path, want_token: bool) -> dict[str, str]:
    """The lab's own secrets (0600): ticket signing key, root password, token secret if it made one."""
    path = pve_dir / "secrets.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key, make in (("authkey", lambda: secrets.token_hex(32)), ("password", lambda: secrets.token_urlsafe(12))):
        if key not in data:
            data[key], changed = make(), True
    if want_token and "token_secret" not in data:
        data["token_secret"], changed = new_secret(), True
    if changed:
        pve_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(data))
    return data


class PveServer:
    """A lab Proxmox host served over HTTPS. `start()` then use `url`, `fingerprint`, credentials."""

    def __init__(self, state_dir: Path, profile: HostProfile, clock: Clock, guest: GuestHooks, *,
                 token_id: str = "root@pam!vlb", token_secret: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, faults: FaultPlan | None = None, schema: ApiSchema | None | str = "auto") -> None:
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.host, self.port = host, port
        self.faults = faults or FaultPlan.off()
        self.state = PveState(self.state_dir, profile, clock, guest)
        own = _load_or_create_secrets(self.state.dir, want_token=token_secret is None)
        self.token_id = token_id
        self.token_secret = token_secret if token_secret is not None else own["token_secret"]
        self.password = own["password"]
        self.user = token_id.split("!", 1)[0]
        for value in (self.token_secret, self.password, own["authkey"]):
            register_secret(value)
        self.auth = Auth(clock, token_id=token_id, token_secret=self.token_secret, user=self.user,
                         password=self.password, key=bytes.fromhex(own["authkey"]))
        self.schema = ApiSchema.load() if schema == "auto" else schema
        self.schema_note = "" if self.schema is not None else (
            f"API schema not found at {schema_path()}: requests are NOT validated")
        self.cert, self.key, self.fingerprint = ensure_certificate(self.state_dir / "tls")
        self.api = PveApi(self.state, self.fingerprint)
        self.requests_log = self.state_dir / "pve-requests.jsonl"
        self._log_lock = threading.Lock()
        self._log_handler = logging.FileHandler(self.state_dir / "pve.log", encoding="utf-8", delay=True)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._stop = threading.Event()
        self._httpd: TlsHttpServer | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> PveServer:
        log.addHandler(self._log_handler)
        if self.schema_note:
            log.warning(self.schema_note)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        handler = type("PveHandler", (_Handler,), {"server_ref": self})
        httpd = _TlsServer((self.host, self.port), handler, context)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stop.clear()
        serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="lab-pve-https", daemon=True)
        ticker = threading.Thread(target=self._tick, name="lab-pve-clock", daemon=True)
        self._threads = [serve, ticker]
        for thread in self._threads:
            thread.start()
        with self.state.transaction():  # finishes the tasks that ended while no server ran
            self.api.qemu.reattach_guests()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        log.removeHandler(self._log_handler)
        self._log_handler.close()

    def __enter__(self) -> PveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stop.wait(0.05):
            try:
                with self.state.transaction():
                    pass
            except Exception:
                log.exception("lab clock tick failed")

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def guest_initiated(self, vmid: int, action: str) -> None:
        """PowerHooks: the guest rebooted or powered itself off (applied by the next transaction)."""
        self.state.post(lambda: self.api.qemu.guest_initiated(vmid, action))

    # --- request handling ----------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, dict | None]:
        """(status, reason, JSON body) for one request; raises _Drop for hang/reset faults."""
        split = urlsplit(raw_path)
        path = split.path
        if not (path == BASE or path.startswith(BASE + "/")):
            raise ApiError(501, "no such uri" if path.startswith("/api2/") else f"no such file '{path}'")
        rel = path[len(BASE):] or "/"
        params = self._params(method, split.query, headers, body)
        params.pop("_dc", None)
        entry = {"method": method, "path": rel, "params": self._redacted(params)}
        fault = self.faults.decide("pve", method, rel)
        try:
            if fault and not fault.after:
                self._strike(fault, entry)
            try:
                identity = self.auth.authenticate(method, rel, headers)
            except ApiError as exc:  # pve-http-server answers these without a body
                status, reason, data = exc.status, exc.reason, None
            else:
                status, reason, data = self._dispatch(method, rel, identity, params, entry)
                if fault and fault.after:
                    self._strike(fault, entry)
        except ApiError as exc:
            status, reason, data = exc.status, exc.reason, _error_body(exc)
        if not entry.pop("_logged", False):
            entry["status"] = status
            self._log(entry)
        if status == 401:
            self._stop.wait(self.clock.wall_seconds(UNAUTHORIZED_DELAY_S))
        return status, reason, data

    def _dispatch(self, method: str, rel: str, identity: Identity | None, params: dict,
                  entry: dict) -> tuple[int, str, dict]:
        template, uri_params, info = self._route(method, rel)
        params = {**params, **uri_params}
        if info is not None:
            errors = validate(info, params)
            if errors:
                raise param_error(errors)
        if template == "/access/ticket":
            return 200, "OK", {"data": self.auth.login(params) if method == "POST" else None}
        assert identity is not None
        with self.state.transaction():
            try:
                data = self.api.call(method, template, params, identity.user)
            except ApiError:
                raise
            except (KeyError, ValueError) as exc:
                if self.schema is not None:
                    log.error("lab handler error: %s", traceback.format_exc())
                    raise ApiError(500, f"{exc.__class__.__name__}: {exc}") from None
                raise param_error({"_root": f"{exc.__class__.__name__}: {exc}"}) from None
            # Logged before the transaction saves the change: a lab killed in between never holds a
            # change its request log does not show (a second create would hide otherwise).
            self._log({**entry, "status": 200})
            entry["_logged"] = True
        body: dict = {"data": data}
        if isinstance(data, apimod._WithTotal):
            body["total"] = data.total
        return 200, "OK", body

    def _route(self, method: str, rel: str) -> tuple[str, dict[str, str], dict | None]:
        not_found = ApiError(501, f"Method '{method} {rel}' not implemented")
        if self.schema is not None:
            found = self.schema.route(rel)
            if found is None or method not in found.methods:
                raise not_found
            if (method, found.template) not in apimod.ROUTES and found.template != "/access/ticket":
                log.warning("lab does not serve %s %s", method, found.template)
                raise not_found
            return found.template, found.uri_params, found.methods[method]
        if rel == "/access/ticket":
            return rel, {}, None
        matched = apimod.match_template(rel)
        if matched is None or (method, matched[0]) not in apimod.ROUTES:
            raise not_found
        return matched[0], matched[1], None

    def _params(self, method: str, query: str, headers: dict[str, str], body: bytes) -> dict:
        params: dict = {}
        if method in ("POST", "PUT") and body:
            ctype = headers.get("content-type", "").split(";")[0].strip()
            if ctype == "application/json":
                try:
                    loaded = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise ApiError(400, "unable to parse JSON request body") from None
                params = {k: ("1" if v is True else "0" if v is False else v if isinstance(v, list | dict)
                              else str(v)) for k, v in (loaded or {}).items()}
            else:
                _merge(params, parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        _merge(params, parse_qsl(query, keep_blank_values=True))
        return params

    def _redacted(self, params: dict) -> dict:
        out = {}
        for key, value in params.items():
            if key in SECRET_PARAMS:
                out[key] = "***"
            else:
                out[key] = redact(value) if isinstance(value, str) else value
        return out

    def _log(self, entry: dict) -> None:
        entry = {**entry, "t": round(self.clock.now(), 3)}
        with self._log_lock, open_append(self.requests_log) as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()

    def _strike(self, fault: Fault, entry: dict) -> None:
        self.faults.record("pve", fault, method=entry["method"], path=entry["path"])
        entry["fault"] = fault.kind
        if fault.kind == "pve_500":
            raise ApiError(500, "Internal Server Error (injected by the lab)")
        if fault.kind == "pve_503":
            raise ApiError(503, "Service Unavailable (injected by the lab)")
        if fault.kind == "pve_ticket":
            self.auth.expire_tickets()
            return
        if not entry.pop("_logged", False):
            entry["status"] = None
            self._log(entry)
        raise _Drop("reset" if fault.kind == "pve_reset" else "hang")

    # --- what callers print --------------------------------------------------------------------

    def endpoints(self) -> dict:
        return {
            "url": self.url, "api": self.url + BASE, "fingerprint": self.fingerprint,
            "token_id": self.token_id, "user": self.user, "node_names": [n.node for n in self.state.profile.nodes],
            "schema": "validated against " + str(schema_path()) if self.schema else self.schema_note,
        }


class _Drop(Exception):
    """The connection gets no answer: reset now, or left hanging until the client gives up."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


def _merge(params: dict, pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        params[key] = f"{params[key]}\0{value}" if key in params and isinstance(params[key], str) else value


def _error_body(exc: ApiError) -> dict:
    body: dict = {"data": None, "message": exc.message}
    if exc.errors:
        body["errors"] = exc.errors
    return body


class _TlsServer(TlsHttpServer):
    label = "Proxmox API"


class _Handler(BaseHTTPRequestHandler):
    server_ref: PveServer
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return  # the JSONL request log is the record; nothing goes to stderr

    def _serve(self) -> None:
        server = self.server_ref
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_POST:
            self._answer(501, "for data too large", None)
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, reason, data = server.handle(self.command, self.path, headers, body)
        except _Drop as drop:
            self._drop(drop.how)
            return
        except ApiError as exc:
            status, reason, data = exc.status, exc.reason, _error_body(exc)
        except Exception as exc:  # never let a lab bug kill the connection silently
            log.error("lab request failed: %s", traceback.format_exc())
            status, reason, data = 500, f"{exc.__class__.__name__}: {exc}", {"data": None, "message": str(exc)}
        self._answer(status, reason, data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def _answer(self, status: int, reason: str, data: dict | None) -> None:
        payload = b"" if data is None else json.dumps(data).encode("utf-8")
        reason = reason.encode("latin-1", "replace").decode("latin-1").replace("\r", " ").replace("\n", " ")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Connection", "Keep-Alive")
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self, how: str) -> None:
        self.close_connection = True
        sock = self.connection
        if how == "hang":
            deadline = time.monotonic() + HANG_WALL_S
            while time.monotonic() < deadline and not self.server_ref._stop.wait(0.1):
                pass
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == 501:  # an HTTP method Proxmox does not know
            self._answer(501, f"method '{self.command}' not available", None)
            return
        super().send_error(code, message, explain)
