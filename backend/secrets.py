"""Secrets as references (`env:NAME`, `file:PATH`), resolved late and never written anywhere.

A resolved value is wrapped in `Secret`, whose repr and str hide it, and registered so that
`redact()` (backend.redaction) can scrub it, in any of its disguises, from any text on its way to a
file, a log line or the screen.

What a secret may be is checked when it is read, and refused as bad input with a message that
never shows the value: at least 4 characters (a shorter one cannot be scrubbed from text), no
control character and no line break (a value that spans lines is cut by every line-based tool and
escaped differently by every library), valid UTF-8. An SSH key file is the one secret made of lines.
A `file:` path is made absolute when the reference is parsed, so a run resumed from another
directory reads the same file. The file must be a regular file; `SecretRef.load` also says when it
is reached through a symlink (and where it leads), not owned by this user, or readable or writable
by its group or others (OpenSSH's rule for keys), and with `strict` refuses it for any of those.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from backend.errors import BadInput
from backend.model.yamlsafe import shown
from backend.redaction import MIN_LENGTH, redact, redact_data, register_secret

__all__ = ["Secret", "SecretRef", "redact", "redact_data", "register_secret"]

_REF = re.compile(r"^(env|file):(.+)$")
_MAX_SECRET_FILE = 64 * 1024
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}  # control characters, lone surrogates, line separators


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


def value_problem(value: str, *, lines: bool = False) -> str | None:
    """Why `value` cannot be a secret (never quoting it), or None. `lines`: an SSH key, made of lines."""
    if len(value) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters, too short to be kept out of logs"
    allowed = "\n\r" if lines else ""
    odd = {unicodedata.category(c) for c in value if c not in allowed} & _REFUSED_CATEGORIES
    if "Cs" in odd:
        return "is not valid UTF-8"
    if any(c in _LINE_BREAKS and c not in allowed for c in value):
        return "spans more than one line (a line break inside it)"
    if odd:
        return "holds a control character"
    return None


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or a file (an absolute path). Only the
    reference is ever saved."""

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
        if kind == "file":
            if "\0" in where:
                raise ValueError("a file path cannot hold a NUL character")
            where = os.path.abspath(os.path.expanduser(where))  # resolved now: --resume may run elsewhere
        return cls(kind, where)

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"

    def resolve(self, field: str = "secret", *, lines: bool = False) -> Secret:
        """Read the value now. Raises BadInput with a clear message when it is missing or unfit.
        `lines`: the secret is an SSH key, whose lines are its content."""
        return self.load(field, lines=lines)[0]

    def load(self, field: str = "secret", *, lines: bool = False, strict: bool = False) -> tuple[Secret, list[str]]:
        """The value and what is worth a warning about where it came from (a `file:` reached
        through a symlink, not owned by this user, open to group or others). `strict`: those are
        refused (BadInput) instead."""
        if self.kind == "env":
            value = os.environ.get(self.where)
            if value is None:
                raise BadInput(
                    f"{field}: environment variable {self.where} is not set",
                    hint=f"export {self.where}=... before running, or point {field} at file:PATH",
                )
            if not value:
                raise BadInput(f"{field}: environment variable {self.where} is empty")
            where, warnings = f"environment variable {self.where}", []
        else:
            value, warnings = _read_secret_file(Path(self.where), field)
            if not value:
                raise BadInput(f"{field}: secret file {shown(self.where, 200)} is empty")
            where = f"secret file {shown(self.where, 200)}"
        problem = value_problem(value, lines=lines)
        if problem:
            raise BadInput(f"{field}: the secret in {where} {problem}" + "".join(f"\n  ({w})" for w in warnings),
                           hint="a secret is one line of printable characters" +
                                ("" if lines else "; a file holds it on its first and only line"))
        if strict and warnings:
            raise BadInput(f"{field}: " + "; ".join(warnings),
                           hint="fix the file (chmod 600, owned by you, no symlink) or run without --strict")
        return Secret(value), [f"{field}: {warning}" for warning in warnings]


def _read_secret_file(path: Path, field: str) -> tuple[str, list[str]]:
    """A secret file's text (its trailing line breaks dropped) and the warnings about it."""
    named = shown(path, 200)  # as it may appear in a message: no control characters
    try:
        data, info = _read_regular_file(path, field)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{field}: secret file {named} does not exist") from None
    except PermissionError:
        raise BadInput(f"{field}: secret file {named} is not readable") from None
    except IsADirectoryError:
        raise BadInput(f"{field}: {named} is a directory, not a secret file") from None
    except UnicodeDecodeError:
        raise BadInput(f"{field}: the secret in secret file {named} is not valid UTF-8") from None
    except OSError as exc:
        raise BadInput(f"{field}: cannot read secret file {named}: {exc.__class__.__name__}") from None
    warnings = []
    real = os.path.realpath(path)
    if real != os.path.abspath(path):
        warnings.append(f"secret file {named} is reached through a symlink: it is {shown(real, 200)}")
    if info.st_uid != os.geteuid():
        warnings.append(f"secret file {named} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})")
    if info.st_mode & 0o077:
        warnings.append(f"secret file {named} is open to its group or others (mode "
                        f"{stat.S_IMODE(info.st_mode):04o}; chmod 600 it)")
    return text.rstrip("\r\n"), warnings


def _read_regular_file(path: Path, field: str) -> tuple[bytes, os.stat_result]:
    """A secret file's bytes and status: a regular file of at most _MAX_SECRET_FILE bytes. Opened
    without blocking, so `file:` pointing at a FIFO or a device is refused instead of hanging or
    reading forever (/dev/zero). The checks are on the file opened, not on its name."""
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
    return data, info
