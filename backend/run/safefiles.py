"""The file layer of run directories: private files written without following symlinks, and files
read as regular files only, streamed with limits, saying what was skipped.

Writing (every file vast-loopback writes in a run directory goes through here):
- `write_private(path, text)` replaces `path` atomically with a 0600 file. The text goes to a new
  temp file beside it, created with O_CREAT|O_EXCL|O_NOFOLLOW under a random name, so a symlink or
  a file planted under a temp name is never opened, truncated or chmod'ed; the rename then replaces
  `path` itself (a symlink there included), never what a symlink points to.
- `overwrite_in_place(path, text)` rewrites an existing file in the blocks it already has (padded
  with spaces): how run.json is still marked when the disk is full and no new file can be made.
- `open_append(path)` opens a journal file for appending: a regular file, never through a symlink.
- `make_private_dir(path)` makes a 0700 directory, refusing a symlink in its place.

Reading (a run directory or a traces folder may be damaged or crafted):
- `open_regular(path)` opens a regular file only, without following a symlink and without blocking
  (a FIFO would hang the reader, a device never end); anything else is `NotRegular`, saying what it is.
- `bounded_lines(handle)` yields the lines of a binary file, each at most `max_bytes` long: a longer
  line is skipped (read through in small pieces, never held whole), reported as None.
- `parse_json_line(raw)` parses one line, refusing what Python cannot read (nested too deep) or
  what nests deeper than `max_depth`, with the reason.
- `Skipped` keeps which line of which file was skipped and why, for the report and the user.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from backend.errors import BadInput

MAX_LINE_BYTES = 4 * 1024 * 1024  # a journal line (an event or a sample); the largest written is ~1 MiB
SKIP_PIECE = 64 * 1024  # an over-long line is read through in pieces of this size


class NotRegular(BadInput):
    """A file of a run directory or a traces folder that is a symlink, a FIFO, a device, ... (exit 2)."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}; vast-loopback reads and writes regular files only",
                         hint="a run directory holds only the files vast-loopback wrote: replace this one by a "
                              "regular file or remove it")
        self.what = what


def _kind(path: Path) -> str:
    """What is at `path`, in words (for a message)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "not a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular_fd(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open with O_NOFOLLOW and O_NONBLOCK, then a regular file or NotRegular (the descriptor is
    left blocking)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a symlink; a FIFO without reader; a folder
            raise NotRegular(path, _kind(path)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegular(path, _kind(path))
    os.set_blocking(fd, True)
    return fd


# --- writing -------------------------------------------------------------------------------------


def write_private(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (0600)."""
    path = Path(path)
    data = text.encode("utf-8") if isinstance(text, str) else text
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def overwrite_in_place(path: str | os.PathLike[str], text: str) -> bool:
    """Write `text` over the existing regular file `path` in the blocks it already has, padded
    with spaces to its size (JSON allows trailing blanks): on a full disk whose file system rewrites
    blocks in place, this still works when no new file can be made. False when `text` does not fit
    in those blocks."""
    data = text.encode("utf-8")
    fd = open_regular_fd(Path(path), os.O_WRONLY)
    try:
        info = os.fstat(fd)
        if len(data) > max(info.st_size, info.st_blocks * 512):  # the last block's slack is allocated too
            return False
        os.pwrite(fd, data + b" " * max(0, info.st_size - len(data)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def open_append(path: str | os.PathLike[str]) -> IO[str]:
    """A regular file opened for appending text (created 0600), never through a symlink (and
    readable through its descriptor, for os.pread)."""
    fd = open_regular_fd(Path(path), os.O_RDWR | os.O_CREAT | os.O_APPEND)
    return os.fdopen(fd, "a", encoding="utf-8")


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """`path` as a directory of its owner only (0700), created with its parents when missing; a
    symlink in its place is refused (its target is never chmod'ed)."""
    path = Path(path)
    if path.is_symlink():
        raise BadInput(f"{path} is a symbolic link (to {os.readlink(path)}); a run directory and its folders "
                       "are never reached through one", hint="give the real directory instead")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


# --- reading -------------------------------------------------------------------------------------


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """A regular file opened for reading (binary), never through a symlink, never blocking on a
    FIFO. FileNotFoundError when it is missing, NotRegular when it is something else."""
    return os.fdopen(open_regular_fd(Path(path), os.O_RDONLY), "rb")


def read_small(path: str | os.PathLike[str], limit: int) -> bytes:
    """A whole regular file of at most `limit` bytes (NotRegular or BadInput otherwise)."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BadInput(f"{path} is larger than {limit:,} bytes; it cannot be what vast-loopback wrote")
    return data


def bounded_lines(handle: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(line number from 1, the line) for each line; None for a line longer than `max_bytes`,
    which is read through in pieces and never held whole."""
    number = 0
    while True:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes:
            while line and not line.endswith(b"\n"):
                line = handle.readline(SKIP_PIECE)
            yield number, None
        else:
            yield number, line


def too_deep(value: Any, limit: int) -> bool:
    """Whether a JSON value nests lists and objects more than `limit` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_line(raw: bytes, max_depth: int | None = None) -> tuple[Any, str]:
    """(value, "") or (None, why it was refused) for one line of a JSON-lines file."""
    text = raw.decode("utf-8", errors="replace")  # a damaged byte is a damaged line, not a crash
    try:
        value = json.loads(text)
    except RecursionError:
        return None, "nested too deeply to be read"
    except ValueError:
        return None, "not JSON (a line torn by a kill, or damaged)"
    if max_depth is not None and isinstance(value, dict | list) and too_deep(value, max_depth):
        return None, f"nested deeper than {max_depth} levels"
    return value, ""


def too_long(max_bytes: int = MAX_LINE_BYTES) -> str:
    return f"longer than {max_bytes:,} bytes"


@dataclass
class Skipped:
    """Lines skipped while reading: (file, line number) -> why. The same line read twice is said once."""

    lines: dict[tuple[str, int], str] = field(default_factory=dict)

    def add(self, name: str, number: int, reason: str) -> None:
        self.lines.setdefault((name, number), reason)

    def __len__(self) -> int:
        return len(self.lines)

    def rows(self, limit: int | None = None) -> list[dict]:
        items = sorted(self.lines.items())[:limit]
        return [{"file": name, "line": number, "reason": reason} for (name, number), reason in items]

    def said(self, limit: int = 5) -> list[str]:
        """A few lines for a person: `events.jsonl line 3: not JSON (...)`, then how many more."""
        out = [skipped_line(row) for row in self.rows(limit)]
        if len(self) > limit:
            out.append(f"... and {len(self) - limit} more")
        return out


def skipped_line(row: dict) -> str:
    """`events.jsonl line 3: why` (line 0: the whole file, `run.json: why`)."""
    where = f" line {row['line']}" if row["line"] else ""
    return f"{row['file']}{where}: {row['reason']}"


def json_lines(path: Path, max_depth: int | None = None) -> Iterator[tuple[int, Any, str]]:
    """(line number, value, "") or (line number, None, why not) for each non-blank line of a
    JSON-lines file; nothing when it is missing (NotRegular when it is not a regular file)."""
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        return
    with handle:
        for number, raw in bounded_lines(handle):
            if raw is None:
                yield number, None, too_long()
            elif raw.strip():
                value, reason = parse_json_line(raw, max_depth)
                yield number, value, reason
