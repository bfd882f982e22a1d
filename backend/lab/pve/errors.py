"""An error as the Proxmox API answers it: HTTP status, reason phrase = message, optional `errors`."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by a handler; the server turns it into `{"data": null, "message": ..., "errors": ...}`.

    `message` is Proxmox's text (most end in a newline, as Perl's `die "...\\n"` does); the reason
    phrase is its first line.
    """

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message if message.endswith("\n") else message + "\n"
        self.errors = errors

    @property
    def reason(self) -> str:
        return self.message.splitlines()[0] if self.message.strip() else "Error"


def param_error(errors: dict[str, str]) -> ApiError:
    """PVE::Exception::raise_param_exc: 400 Parameter verification failed."""
    return ApiError(400, "Parameter verification failed.\n", errors)


def failed(message: str) -> ApiError:
    """A plain `die` inside an API handler: 500 with the message."""
    return ApiError(500, message)
