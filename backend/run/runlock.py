"""One writer per run directory: a lock on RUN_DIR/run.lock, held while a process drives the run.

The lock is the kernel's (`fcntl.flock`, exclusive, never waited for): it goes with the process that
held it, kill -9 included, so a lock file left behind never blocks a resume. What the file says
(pid, host, since) only describes the holder, for the message a second `--resume` (or the wizard's
resume) of a run in use exits 2 with.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from backend.errors import BadInput
from backend.run.safefiles import open_regular_fd

LOCK = "run.lock"


class RunInUse(BadInput):
    """Another process drives this run directory (exit 2)."""


def _holder_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})


def _describe(data: bytes) -> str:
    try:
        holder = json.loads(data.decode("utf-8", errors="replace"))
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder["since"])))
        return f"pid {int(holder['pid'])} on host {str(holder['host'])[:64]}, since {since}"
    except (ValueError, TypeError, KeyError, OverflowError):
        return "a process that has not said who it is yet"


class RunLock:
    """The lock of one run directory, taken by `acquire`, given back by `release` (or at exit)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_path: Path) -> RunLock:
        """Take the run's lock now or raise RunInUse saying who holds it."""
        path = Path(run_path) / LOCK
        fd = open_regular_fd(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise RunInUse(f"{run_path} is in use by another vast-loopback ({holder})",
                           hint="one process drives a run at a time: wait for it to end, or stop it, then "
                                f"resume with --resume {run_path}") from None
        with contextlib.suppress(OSError):  # who holds it is a courtesy: a full disk does not stop the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_text().encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __del__(self) -> None:
        self.release()
