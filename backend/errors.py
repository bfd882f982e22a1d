"""Errors a user can act on, each carrying the exit code the CLI returns for it.

0 done, 1 failed at run time, 2 bad input, 3 blocked by a sizing blocker (without --force).
"""

from __future__ import annotations


class VlbError(Exception):
    """An error with a message meant for the user and an optional hint on what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BadInput(VlbError):
    """The answers file, an argument or a value given by the user is wrong (exit 2)."""

    exit_code = 2


class RunFailed(VlbError):
    """Something failed while running: an unreachable target, a failed task, a failed install (exit 1)."""

    exit_code = 1


class TargetUnreachable(RunFailed):
    """The Proxmox host, the guest or the VMS could not be reached."""


class SizingBlocked(VlbError):
    """A sizing blocker stops the run; --force overrides it on purpose (exit 3)."""

    exit_code = 3
