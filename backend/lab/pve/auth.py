"""Authentication as Proxmox does it: API tokens, tickets with CSRF tokens, and their errors.

- Token: `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET` (or a space after the key, as
  pve-http-server's extract_auth_value allows); the id is split from the secret at the last `=`.
  Requests with a token need no CSRF token.
- Ticket: `POST /access/ticket` (username, password) answers a ticket and a CSRFPreventionToken;
  the ticket goes in the `PVEAuthCookie` cookie, and every non-GET request also needs the
  `CSRFPreventionToken` header. Tickets live 2 h on the lab clock (plus 5 min of grace); posting
  a valid ticket as the password renews it.
- Failures are 401 with Proxmox's reason phrases ("No ticket", "invalid token value!",
  "permission denied - invalid PVE ticket", "Permission denied - invalid csrf token",
  "authentication failure").

Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

from backend.clock import Clock
from backend.lab.pve.errors import ApiError

TICKET_LIFETIME = 2 * 3600
GRACE = 5 * 60
USER_RE = r"[^\s:/]+"
REALM_RE = r"[A-Za-z][A-Za-z0-9.\-_]+"
TOKEN_ID_RE = re.compile(rf"^(({USER_RE})@({REALM_RE}))!({REALM_RE})$")


@dataclass(frozen=True)
class Identity:
    user: str  # "root@pam" or, for a token, "root@pam!vlb" (as UPIDs show it)
    token: bool


def extract_auth_value(header: str | None, key: str) -> str | None:
    """pve-http-server Formatter::extract_auth_value."""
    if not header:
        return None
    match = re.search(rf"(?:^|\s){re.escape(key)}(?:=|\s)\s*([^;]*)", header)
    return unquote(match.group(1)) if match and match.group(1) else None


class Auth:
    """The lab host's users and tokens: one user (root@pam by default) and one API token."""

    def __init__(self, clock: Clock, *, token_id: str, token_secret: str, user: str = "root@pam",
                 password: str, key: bytes) -> None:
        match = TOKEN_ID_RE.match(token_id)
        if not match:
            raise ValueError(f"'{token_id}' is not a valid token ID")
        self.clock = clock
        self.token_id = token_id
        self._token_secret = token_secret
        self.user = user
        self._password = password
        self._key = key
        self._revoked_before = 0.0  # tickets issued before this lab time are void (fault: expired ticket)

    # --- tickets -------------------------------------------------------------------------------

    def _sign(self, data: str) -> str:
        return base64.b64encode(hmac.new(self._key, data.encode(), hashlib.sha256).digest()).decode().rstrip("=")

    def issue_ticket(self, user: str) -> tuple[str, str]:
        stamp = f"{int(self.clock.now()):08X}"
        plain = f"PVE:{user}:{stamp}"
        ticket = f"{plain}::{self._sign(plain)}"
        csrf = f"{stamp}:{self._sign('csrf:' + user + ':' + stamp)}"
        return ticket, csrf

    def verify_ticket(self, ticket: str) -> str:
        match = re.match(r"^PVE:([^:]+):([0-9A-F]{8})::(.+)$", ticket or "")
        if not match or not hmac.compare_digest(self._sign(f"PVE:{match.group(1)}:{match.group(2)}"),
                                                match.group(3)):
            raise ApiError(401, "permission denied - invalid PVE ticket")
        issued = int(match.group(2), 16)
        age = self.clock.now() - issued
        if age < -GRACE or age > TICKET_LIFETIME or issued < self._revoked_before:
            raise ApiError(401, "permission denied - invalid PVE ticket")
        return match.group(1)

    def verify_csrf(self, user: str, token: str | None) -> None:
        match = re.match(r"^([0-9A-F]{8}):(.+)$", token or "")
        ok = bool(match) and hmac.compare_digest(self._sign(f"csrf:{user}:{match.group(1)}"), match.group(2))
        if ok:
            age = self.clock.now() - int(match.group(1), 16)
            ok = -GRACE <= age <= TICKET_LIFETIME
        if not ok:
            raise ApiError(401, "Permission denied - invalid csrf token")

    def expire_tickets(self) -> None:
        """Void every ticket issued so far (the 'expired ticket' fault)."""
        self._revoked_before = self.clock.now() + 1

    def login(self, params: dict[str, str]) -> dict:
        """POST /access/ticket: a new ticket for a password, or a renewed one for a valid ticket."""
        username = params.get("username", "")
        realm = params.get("realm")
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        password = params.get("password", "")
        ok = username == self.user and hmac.compare_digest(password.encode(), self._password.encode())
        if not ok and password.startswith("PVE:"):
            try:
                ok = self.verify_ticket(password) == username
            except ApiError:
                ok = False
        if not ok:
            raise ApiError(401, "authentication failure")
        ticket, csrf = self.issue_ticket(username)
        return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf,
                "cap": {"vms": {"VM.Allocate": 1, "VM.PowerMgmt": 1, "VM.Config.Disk": 1, "VM.Snapshot": 1},
                        "storage": {"Datastore.Allocate": 1, "Datastore.AllocateSpace": 1},
                        "nodes": {"Sys.Audit": 1}, "access": {}, "dc": {}}}

    # --- tokens --------------------------------------------------------------------------------

    def verify_token(self, value: str) -> str:
        """AccessControl::verify_token: 'USER@REALM!TOKENID=SECRET' -> the token id."""
        match = re.match(r"^(.*)=(.*)$", value, re.S)
        if not match:
            raise ApiError(401, "no tokenid specified")
        token_id, secret = match.group(1), match.group(2)
        parts = TOKEN_ID_RE.match(token_id)
        if not parts:
            raise ApiError(401, f"'{token_id}' is not a valid token ID - not able to split into user and token parts")
        user, name = parts.group(1), parts.group(4)
        if user != self.user:
            raise ApiError(401, f"no such user ('{user}')")
        if token_id != self.token_id:
            raise ApiError(401, f"no such token '{name}' for user '{user}'")
        if not hmac.compare_digest(secret.encode(), self._token_secret.encode()):
            raise ApiError(401, "invalid token value!")
        return token_id

    # --- a request -----------------------------------------------------------------------------

    def authenticate(self, method: str, path: str, headers: dict[str, str]) -> Identity | None:
        """The caller of a request (None for the calls Proxmox allows without auth)."""
        if path == "/access/ticket" and method in ("GET", "POST") or path == "/access/domains" and method == "GET":
            return None
        cookie = headers.get("cookie")
        authorization = headers.get("authorization")
        ticket = extract_auth_value(cookie, "PVEAuthCookie") or extract_auth_value(authorization, "PVEAuthCookie")
        api_token = None if ticket else extract_auth_value(authorization, "PVEAPIToken")
        if api_token:
            return Identity(self.verify_token(api_token), token=True)
        if not ticket:
            raise ApiError(401, "No ticket")
        user = self.verify_ticket(ticket)
        if method != "GET":
            self.verify_csrf(user, headers.get("csrfpreventiontoken"))
        return Identity(user, token=False)


def new_secret() -> str:
    """A token secret shaped like Proxmox's (a UUID)."""
    import uuid

    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
