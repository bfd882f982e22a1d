"""Secrets as references (`env:NAME`, `file:PATH`), resolved late and never written anywhere.

A resolved value is wrapped in `Secret`, whose repr and str hide it, and registered so that
`redact()` can scrub it from any text on its way to a file, a log line or the screen.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from backend.errors import BadInput
from backend.yamlsafe import shown

_REF = re.compile(r"^(env|file):(.+)$")
_MAX_SECRET_FILE = 64 * 1024

_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Remember a secret value so that `redact` hides it wherever it would be shown or written."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """Replace every known secret value in `text` with `***`."""
    if not _known or not text:
        return text
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


def redact_data(data: object) -> object:
    """`redact` applied to every string inside dicts and lists, leaving numbers and keys' structure
    intact (a secret made of digits must never corrupt a timestamp)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(value) for value in data]
    return data


class Secret:
    """A secret value that does not show itself in repr, str, f-strings or logs.

    `public=True` marks a documented default (the OVA's `centos`, VMS's `123456`): it still travels
    as a Secret, but is not scrubbed from text, where it would mangle every `/home/centos`."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, public: bool = False) -> None:
        self._value = value
        if not public:
            register_secret(value)

    def reveal(self) -> str:
        """The value itself; call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("secret", self._value))


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or a file. Only the reference is ever saved."""

    kind: str  # "env" | "file"
    where: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        match = _REF.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(
                "a secret must be a reference, 'env:NAME' or 'file:PATH', never the value itself"
            )
        kind, where = match.group(1), match.group(2).strip()
        if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", where):
            raise ValueError(f"'{shown(where)}' is not a valid environment variable name")
        return cls(kind, where)

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"

    def resolve(self, field: str = "secret") -> Secret:
        """Read the value now. Raises BadInput with a clear message when it is missing."""
        if self.kind == "env":
            value = os.environ.get(self.where)
            if value is None:
                raise BadInput(
                    f"{field}: environment variable {self.where} is not set",
                    hint=f"export {self.where}=... before running, or point {field} at file:PATH",
                )
            if not value:
                raise BadInput(f"{field}: environment variable {self.where} is empty")
            return Secret(value)
        path = Path(os.path.expanduser(self.where))
        named = shown(path, 200)  # as it may appear in a message: no control characters
        try:
            value = _read_secret_file(path, field).decode("utf-8").strip()
        except FileNotFoundError:
            raise BadInput(f"{field}: secret file {named} does not exist") from None
        except PermissionError:
            raise BadInput(f"{field}: secret file {named} is not readable") from None
        except IsADirectoryError:
            raise BadInput(f"{field}: {named} is a directory, not a secret file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{field}: cannot read secret file {named}: {exc.__class__.__name__}") from None
        if not value:
            raise BadInput(f"{field}: secret file {named} is empty")
        return Secret(value)


def _read_secret_file(path: Path, field: str) -> bytes:
    """A secret file's bytes: a regular file of at most _MAX_SECRET_FILE bytes. Opened without
    blocking, so `file:` pointing at a FIFO or a device is refused instead of hanging or reading
    forever (/dev/zero)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{field}: {shown(path, 200)} is not a regular file, so it cannot be a secret file")
        data = handle.read(_MAX_SECRET_FILE + 1)
    if len(data) > _MAX_SECRET_FILE:
        raise BadInput(f"{field}: {shown(path, 200)} is too large to be a secret file")
    return data
