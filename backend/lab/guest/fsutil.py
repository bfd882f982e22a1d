"""Touching the guest's files from the lab side without ever following the guest's symlinks.

The guest can create symlinks anywhere in its disk and runtime directories (`ln -s /etc/passwd x`).
Inside the guest they point at the guest's own files; followed from the lab process they would
point at this machine's files. Every path the lab opens inside a guest directory is therefore
walked one component at a time with O_NOFOLLOW: a symlink anywhere on the way is refused.

Runtime files that are bind-mounted into the guest (the fake /proc and /sys files) are rewritten
in place (a bind mount pins the inode, so no rename) with one write at offset 0, truncating only
when the length changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from backend.lab.guest.support import own_fd

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path inside the guest went through a symlink or '..'."""


def _parts(rel: str) -> list[str]:
    parts = [p for p in str(rel).split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"'..' in guest path {rel!r}")
    return parts


def open_beneath(root: str | os.PathLike, rel: str, flags: int = os.O_RDONLY, mode: int = 0o644,
                 *, make_dirs: bool = False) -> int:
    """Open `rel` under `root` refusing symlinks on every component; returns a file descriptor.

    Files (and directories, with `make_dirs`) created this way belong to the guest's user.
    """
    parts = _parts(rel)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not make_dirs:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                own_fd(next_fd)
            except OSError as exc:
                if exc.errno in (40, 20):  # ELOOP, ENOTDIR: a symlink or a file on the way
                    raise UnsafePath(f"guest path {rel!r} goes through a symlink") from exc
                raise
            os.close(fd)
            fd = next_fd
        if not parts:
            return os.dup(fd)
        created = bool(flags & os.O_CREAT) and not _exists(parts[-1], fd)
        try:
            result = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        except OSError as exc:
            if exc.errno == 40:
                raise UnsafePath(f"guest path {rel!r} is a symlink") from exc
            raise
        if created:
            own_fd(result)
        return result
    finally:
        os.close(fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def read_beneath(root: str | os.PathLike, rel: str, default: str | None = None) -> str | None:
    """A text file of the guest, or `default` when it is missing or unsafe to open."""
    try:
        fd = open_beneath(root, rel, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return default
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(4 * 1024 * 1024).decode("utf-8", "replace")
    finally:
        os.close(fd)


def write_beneath(root: str | os.PathLike, rel: str, text: str | bytes, mode: int = 0o644) -> None:
    """Create or replace the content of a guest file (in place; parents are created)."""
    data = text.encode() if isinstance(text, str) else text
    fd = open_beneath(root, rel, os.O_WRONLY | os.O_CREAT, mode, make_dirs=True)
    try:
        _rewrite(fd, data)
    finally:
        os.close(fd)


def _rewrite(fd: int, data: bytes) -> None:
    size = os.fstat(fd).st_size
    os.pwrite(fd, data, 0)
    if size != len(data):
        os.ftruncate(fd, len(data))


class InPlaceFile:
    """A runtime file the guest sees through a bind mount: kept open, rewritten in place."""

    def __init__(self, root: Path, rel: str) -> None:
        self.rel = rel
        self._fd = open_beneath(root, rel, os.O_RDWR | os.O_CREAT, 0o644, make_dirs=True)
        self._last: bytes | None = None

    def write(self, text: str) -> None:
        data = text.encode()
        if data == self._last:
            return
        _rewrite(self._fd, data)
        self._last = data

    def read(self) -> str:
        data = os.pread(self._fd, 1 << 20, 0)
        self._last = data
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _as_namespace_root(argv: list[str]) -> None:
    """Run a file tool as root of a user namespace: an unprivileged lab then may read and remove
    every file of its guests (the guest makes files like /etc/shadow 0000 and dirs like /root 0550)."""
    subprocess.run(["unshare", "--user", "--map-root-user", *argv], check=True, capture_output=True, cwd="/")


def copy_tree(source: Path, target: Path) -> None:
    """Copy a guest's directory tree exactly (symlinks as symlinks, modes kept). The guest may be
    running (a snapshot of a live VM): a file it removes or renames while the copy runs is left out,
    as it would be from a crash-consistent snapshot taken a moment later."""
    if os.geteuid() == 0:
        try:
            shutil.copytree(source, target, symlinks=True)
        except shutil.Error as exc:
            failures = [error for error in exc.args[0] if "No such file or directory" not in str(error[-1])]
            if failures:
                raise shutil.Error(failures) from None
    else:
        _as_namespace_root(["cp", "-a", "--", str(source), str(target)])


def remove_tree(path: Path) -> None:
    """Remove a guest's directory tree, whatever its modes."""
    if not os.path.lexists(path):
        return
    if os.geteuid() == 0:
        shutil.rmtree(path)
    else:
        _as_namespace_root(["rm", "-rf", "--", str(path)])
