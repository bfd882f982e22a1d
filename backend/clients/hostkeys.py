"""SSH host keys of the guest: OpenSSH `SHA256:...` fingerprints, known_hosts look-ups, and the
decision to trust, ask or refuse a key the guest presents.

A key is trusted when it matches the pinned fingerprint (answers `guest.host_key`, or the key this
run accepted earlier) or an entry of the known_hosts file. A different key is refused, naming both
fingerprints. An unknown key is shown to the user when someone can be asked, refused otherwise.
Nothing is ever accepted silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import asyncssh

from backend.errors import RunFailed


def normalize_fingerprint(text: str) -> str:
    """`SHA256:abc=` and `abc` both become `SHA256:abc` (OpenSSH prints no base64 padding)."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[len("SHA256:"):]
    return "SHA256:" + value.rstrip("=")


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The key's fingerprint as `ssh-keygen -l` prints it."""
    return normalize_fingerprint(key.get_fingerprint("sha256"))


def known_fingerprints(path: Path | None, names: Iterable[tuple[str, int]]) -> set[str]:
    """Fingerprints that known_hosts at `path` lists for any of the (host, port) names."""
    if path is None or not Path(path).is_file():
        return set()
    known = asyncssh.read_known_hosts(str(path))
    found: set[str] = set()
    for host, port in names:
        keys = asyncssh.match_known_hosts(known, host, host, None if port == 22 else port)[0]
        found.update(fingerprint(key) for key in keys)
    return found


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    """One known_hosts line for `key`, in OpenSSH's format (`[host]:port` for a port other than 22)."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.export_public_key('openssh').decode().strip()}\n"


def remember(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append a confirmed key to a known_hosts file (created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(known_hosts_line(host, port, key))


def mismatch(label: str, presented: str, expected: set[str]) -> RunFailed:
    wanted = " or ".join(sorted(expected))
    return RunFailed(
        f"the guest {label} presented host key {presented}, but {wanted} was expected; refusing to connect",
        hint="if the guest was really re-installed, update guest.host_key (or the known_hosts entry); "
             "otherwise something is intercepting the connection",
    )


def unknown_refused(label: str, presented: str) -> RunFailed:
    return RunFailed(
        f"the guest {label} presented an unknown host key {presented}; refusing it without confirmation",
        hint=f"check it on the guest's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it "
             f"in the answers: guest.host_key: {presented}",
    )


def declined(label: str, presented: str) -> RunFailed:
    return RunFailed(f"the host key {presented} of the guest {label} was not accepted; not connecting")
