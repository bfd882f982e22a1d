"""SSH to the guest (asyncssh): commands, detached jobs that survive the connection, uploads.

Interface agreed between the engine and this module; bodies are filled in by the guest issue.
Every command is built with `backend.shell` (shlex.quote), never by pasting strings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from backend.bus import EventBus
from backend.clock import Clock
from backend.secrets import Secret


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class DetachedJob:
    """A job started with `run_detached`: it survives the SSH connection; its log is re-attached
    to by byte offset."""

    job_id: str
    log_path: str
    status_path: str  # holds the exit status once the job ended


@dataclass
class GuestCredentials:
    user: str
    password: Secret | None = None
    key: Secret | None = None  # private key text


class GuestClient:
    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        credentials: GuestCredentials,
        *,
        known_hosts: Path | None = None,
        pinned_host_key: str | None = None,
        confirm_new_host_key: Callable[[str], Awaitable[bool]] | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
    ) -> GuestClient:
        raise NotImplementedError

    async def run(self, command: str, *, sudo: bool = False, timeout: float | None = 120.0,
                  input: str | None = None, check: bool = False) -> CommandResult:
        raise NotImplementedError

    async def run_detached(self, job_id: str, command: str, *, sudo: bool = False) -> DetachedJob:
        raise NotImplementedError

    async def follow(self, job: DetachedJob, offset: int = 0) -> AsyncIterator[tuple[list[str], int]]:
        """Yield (new complete lines, offset after them) until the job has ended and its log is read."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def job_exit_status(self, job: DetachedJob) -> int | None:
        raise NotImplementedError

    async def stream(self, command: str) -> AsyncIterator[str]:
        """Run a long-lived command and yield its stdout lines (the monitoring agent)."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def upload(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError
