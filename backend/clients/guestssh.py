"""SSH to the guest (asyncssh): commands, detached jobs that survive the connection, uploads.

- Credentials are `Secret`s resolved from references; they are never stored, logged or put in argv.
  With password authentication `sudo` reads the password on stdin (`sudo -S -p ''`).
- Host keys are checked (see `backend.clients.hostkeys`): pinned fingerprint or known_hosts; an unknown key
  goes to `confirm_new_host_key` when someone can be asked and is refused otherwise; a different
  key is refused. Reconnections trust exactly the key accepted the first time.
- Keepalives detect a dead peer; a lost connection emits `GuestDisconnected`, the next operation
  reconnects with backoff on the target's clock and emits `GuestReconnected`. When the guest cannot
  be reached at all, `TargetUnreachable` says so in one sentence.
- Commands are built with `backend.clients.commands` (shlex.quote), never by pasting strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets as _random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from backend.clients import guestjobs, hostkeys
from backend.clients.commands import sh
from backend.clock import Clock
from backend.errors import RunFailed, TargetUnreachable
from backend.events import GuestDisconnected, GuestReconnected, RecoveredFromFault, RetryScheduled
from backend.run.bus import EventBus
from backend.secrets import Secret, redact

log = logging.getLogger(__name__)

Route = Callable[[str, int], tuple[str, int]]

KEEPALIVE_INTERVAL_S = 10.0  # wall seconds between keepalives
KEEPALIVE_COUNT_MAX = 3  # unanswered keepalives before the connection counts as dead
CONNECT_TIMEOUT_S = 15.0  # wall seconds for one connection attempt
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 10.0)  # target seconds between attempts, the last repeats
RECONNECT_WINDOW_S = 900.0  # target seconds a lost connection may take to come back
MAX_RERUNS = 5  # a command cut by a lost connection is run again at most this often
JOB_LOST = -1  # job_exit_status of a job that ended without recording a status (killed, rebooted)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncssh.ConnectionLost,
    asyncssh.ChannelOpenError,
    asyncssh.DisconnectError,
    BrokenPipeError,
    ConnectionError,
    EOFError,
)


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


class GuestConnectionLost(TargetUnreachable):
    """The connection dropped while a command ran that must not be run twice."""


class _Refused(Exception):
    """A connection attempt that must not be retried (host key or authentication)."""

    def __init__(self, error: RunFailed) -> None:
        super().__init__(str(error))
        self.error = error


class _Session(asyncssh.SSHClient):
    """Per-connection callbacks: the host-key gate and the notice that the connection is gone."""

    def __init__(self, owner: GuestClient) -> None:
        self.owner = owner
        self.presented: asyncssh.SSHKey | None = None
        self.conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.presented = key
        return hostkeys.fingerprint(key) in self.owner._trusted

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.owner._lost(self.conn, exc)


def _no_known_hosts(host: str, addr: str, port: int | None) -> tuple[list, list, list]:
    """Trust nothing up front, so every key goes through `_Session.validate_host_public_key`."""
    return [], [], []


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip() or exc.__class__.__name__
    return redact(text)


class GuestClient:
    def __init__(self, host: str, port: int, credentials: GuestCredentials, *, label: str,
                 trusted: set[str], bus: EventBus | None, clock: Clock,
                 known_hosts: Path | None = None, route: Route | None = None) -> None:
        self.host, self.port, self.credentials, self.label = host, port, credentials, label
        self._route = route
        self.bus, self.clock = bus, clock
        self._trusted = trusted
        self._known_hosts = known_hosts
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self._down_since: float | None = None
        self._keys = [asyncssh.import_private_key(credentials.key.reveal())] if credentials.key else []
        self._sudo_password: bool | None = None  # does sudo want the password? (asked once)
        self._home: str | None = None
        self.host_key: str = ""  # the fingerprint accepted for this guest

    # --- connecting ---------------------------------------------------------------------------

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
        label: str | None = None,
        aliases: tuple[tuple[str, int], ...] = (),
        wait_s: float = 0.0,
        route: Route | None = None,
    ) -> GuestClient:
        """Connect and authenticate; keep trying for `wait_s` target seconds while the guest is not
        reachable yet (booting). `label` names the guest in messages (e.g. centos@10.0.0.5);
        `aliases` are other (host, port) names the guest has in known_hosts. `route` maps the
        guest's (host, port) to where it is reached from here; it is asked again at every
        (re)connection attempt, so a route that appears or changes while the guest boots is
        followed."""
        clock = clock or Clock.wall()
        label = label or f"{credentials.user}@{host}:{port}"
        if pinned_host_key:
            trusted = {hostkeys.normalize_fingerprint(pinned_host_key)}
        else:
            names = [(host, port), *aliases]
            if route is not None:
                names.append(route(host, port))
            trusted = hostkeys.known_fingerprints(known_hosts, names)
        client = cls(host, port, credentials, label=label, trusted=trusted, bus=bus, clock=clock,
                     known_hosts=known_hosts, route=route)
        try:
            client._conn = await client._attempt_until(clock.now() + wait_s, confirm_new_host_key)
        except _Refused as refused:
            raise refused.error from None
        client._trusted = {client.host_key}  # from now on, exactly the key this guest presented
        return client

    async def _attempt_until(self, deadline: float,
                             confirm: Callable[[str], Awaitable[bool]] | None = None,
                             on_retry: Callable[[int, str, float], None] | None = None,
                             ) -> asyncssh.SSHClientConnection:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(confirm)
            except _Refused:
                raise
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                reason = _describe(exc)
                delay = BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)]
                if self.clock.now() + delay > deadline:
                    raise TargetUnreachable(
                        f"cannot reach the guest {self.label} over SSH: {reason}",
                        hint="check that the VM is running, that its address is right and that sshd "
                             "listens on the guest's port",
                    ) from None
                if on_retry is not None:
                    on_retry(attempt, reason, delay)
                await self.clock.sleep(delay)

    async def _attempt(self, confirm: Callable[[str], Awaitable[bool]] | None) -> asyncssh.SSHClientConnection:
        session: _Session | None = None

        def factory() -> _Session:
            nonlocal session
            session = _Session(self)
            return session

        options = dict(
            username=self.credentials.user,
            password=self.credentials.password.reveal() if self.credentials.password else None,
            client_keys=self._keys or None,
            known_hosts=_no_known_hosts,
            agent_path=None,
            config=None,
            preferred_auth="publickey,keyboard-interactive,password",
            keepalive_interval=KEEPALIVE_INTERVAL_S,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            connect_timeout=CONNECT_TIMEOUT_S,
            login_timeout=CONNECT_TIMEOUT_S,
            client_factory=factory,
        )
        if not self._keys:
            options["client_keys"] = []
        if self.credentials.password is None:
            options.pop("password")
        try:
            host, port = self._route(self.host, self.port) if self._route else (self.host, self.port)
            conn = await asyncssh.connect(host, port, **options)
        except asyncssh.HostKeyNotVerifiable:
            presented = session.presented if session else None
            if presented is None:
                raise
            shown = hostkeys.fingerprint(presented)
            if self._trusted:
                raise _Refused(hostkeys.mismatch(self.label, shown, self._trusted)) from None
            if confirm is None:
                raise _Refused(hostkeys.unknown_refused(self.label, shown)) from None
            if not await confirm(shown):
                raise _Refused(hostkeys.declined(self.label, shown)) from None
            self._trusted = {shown}
            if self._known_hosts is not None:
                with contextlib.suppress(OSError):
                    hostkeys.remember(self._known_hosts, self.host, self.port, presented)
            return await self._attempt(None)
        except asyncssh.PermissionDenied:
            how = "key" if self._keys else "password" if self.credentials.password else "no credentials"
            raise _Refused(RunFailed(
                f"the guest {self.label} refused the SSH login ({how})",
                hint="check guest.user and guest.password or guest.key in the answers",
            )) from None
        server_key = conn.get_server_host_key()
        self.host_key = hostkeys.fingerprint(server_key) if server_key else ""
        return conn

    def _lost(self, conn: asyncssh.SSHClientConnection, exc: BaseException | None) -> None:
        """A connection ended: note when, and say so unless we closed it on purpose."""
        if conn is not self._conn:
            return
        self._conn = None
        if self._closing or self._down_since is not None:
            return
        self._down_since = self.clock.now()
        reason = _describe(exc) if exc else "the guest closed the connection"
        if self.bus is not None:
            self.bus.emit(GuestDisconnected(reason=reason))

    async def _connection(self, window: float = RECONNECT_WINDOW_S) -> asyncssh.SSHClientConnection:
        """The live connection, reconnecting with backoff (for up to `window` target seconds since
        the loss) after a loss."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._closing:
                raise RunFailed(f"the connection to the guest {self.label} was closed")
            if self._conn is not None:  # closed without our callback having run yet
                self._lost(self._conn, None)
            if self._down_since is None:
                self._down_since = self.clock.now()
            attempts, first_reason = 0, ""

            def retrying(attempt: int, reason: str, delay: float) -> None:
                nonlocal attempts, first_reason
                attempts, first_reason = attempt, first_reason or reason
                if self.bus is not None:
                    self.bus.emit(RetryScheduled(operation=f"SSH to {self.label}", attempt=attempt,
                                                 error=reason, delay_s=delay))

            try:
                conn = await self._attempt_until(self._down_since + window, None, retrying)
            except _Refused as refused:
                raise refused.error from None
            down = max(0.0, self.clock.now() - self._down_since)
            self._conn, self._down_since = conn, None
            if self.bus is not None:
                if attempts:  # the retries announced above are over
                    self.bus.emit(RecoveredFromFault(operation=f"SSH to {self.label}", attempts=attempts + 1,
                                                     error=first_reason))
                self.bus.emit(GuestReconnected(attempts=attempts + 1, down_s=round(down, 3)))
            return conn

    async def reconnect(self, wait_s: float = RECONNECT_WINDOW_S) -> None:
        """Drop the current connection (if any) and connect again, e.g. after a reboot."""
        conn = self._conn
        if conn is not None:
            self._lost(conn, None)
            conn.abort()
        await self._connection(wait_s)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    # --- commands -----------------------------------------------------------------------------

    async def _sudo_wants_password(self) -> bool:
        if self._sudo_password is None:
            probe, _, _ = await self._exec(sh("sudo", "-n", "true"), None, 60.0, True)
            if probe == 0:
                self._sudo_password = False
            elif self.credentials.password is None:
                raise RunFailed(f"sudo on the guest {self.label} asks for a password and none was given",
                                hint="set guest.password (env:NAME or file:PATH) in the answers")
            else:
                status, _, _ = await self._exec(sh("sudo", "-S", "-p", "", "-v"),
                                                (self.credentials.password.reveal() + "\n").encode(), 60.0, True)
                if status != 0:
                    raise RunFailed(f"sudo on the guest {self.label} refused the password of "
                                    f"{self.credentials.user}")
                self._sudo_password = True
        return self._sudo_password

    async def _wrap(self, command: str, sudo: bool, stdin: bytes | None) -> tuple[str, bytes | None]:
        """The command line to send and its stdin: with sudo, `sh -c` under sudo, the password (if
        sudo wants one) as stdin's first line, never in argv."""
        if not sudo or self.credentials.user == "root":
            return command, stdin
        if await self._sudo_wants_password():
            assert self.credentials.password is not None
            secret = (self.credentials.password.reveal() + "\n").encode()
            return sh("sudo", "-S", "-p", "", "--", "sh", "-c", command), secret + (stdin or b"")
        return sh("sudo", "-n", "--", "sh", "-c", command), stdin

    def _wall_timeout(self, timeout: float | None) -> float | None:
        if timeout is None:
            return None
        return max(self.clock.wall_seconds(timeout), min(timeout, 30.0))

    async def _exec(self, line: str, stdin: bytes | None, timeout: float | None,
                    retry: bool) -> tuple[int, bytes, bytes]:
        """Send one command line; a connection lost before or during it is retried when `retry`.
        Returns (exit status, stdout bytes, stderr bytes)."""
        reruns = 0
        while True:
            conn = await self._connection()
            try:
                completed = await asyncio.wait_for(
                    conn.run(line, input=stdin, encoding=None, check=False), self._wall_timeout(timeout))
            except asyncio.TimeoutError:
                raise RunFailed(f"a command on the guest {self.label} did not finish within {timeout:.0f} s",
                                hint=redact(line)[:200]) from None
            except CONNECTION_ERRORS as exc:
                self._lost(conn, exc)
                reruns += 1
                if not retry or reruns > MAX_RERUNS:
                    raise GuestConnectionLost(
                        f"the connection to the guest {self.label} dropped during a command: {_describe(exc)}"
                    ) from None
                continue
            status = completed.exit_status
            if status is None and completed.exit_signal is None:
                # The channel closed without an exit status: the connection went away under it.
                self._lost(conn, None)
                reruns += 1
                if not retry or reruns > MAX_RERUNS:
                    raise GuestConnectionLost(
                        f"the connection to the guest {self.label} dropped during a command")
                continue
            if status is None or status < 0:  # ended by a signal
                status = 128 + abs(completed.returncode or 15)
            return int(status), _raw(completed.stdout), _raw(completed.stderr)

    async def run(self, command: str, *, sudo: bool = False, timeout: float | None = 120.0,
                  input: str | bytes | None = None, check: bool = False, retry: bool = True) -> CommandResult:
        """Run a shell command line (built with backend.clients.commands). `timeout` is in target seconds.
        `retry`: run it again after a lost connection (commands we send are idempotent); pass
        False for a command that must never run twice (then `GuestConnectionLost` is raised)."""
        stdin = input.encode() if isinstance(input, str) else input
        line, stdin = await self._wrap(command, sudo, stdin)
        status, out, err = await self._exec(line, stdin, timeout, retry)
        result = CommandResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and not result.ok:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            raise RunFailed(
                f"a command on the guest {self.label} failed with exit status {result.exit_status}: "
                f"{redact(detail[0])[:300]}",
                hint=redact(command)[:200],
            )
        return result

    async def run_bytes(self, command: str, *, sudo: bool = False, timeout: float | None = 120.0) -> bytes:
        """Run an idempotent command and return its raw stdout (e.g. part of a log, which may end in
        the middle of a character)."""
        line, stdin = await self._wrap(command, sudo, None)
        return (await self._exec(line, stdin, timeout, True))[1]

    # --- detached jobs ------------------------------------------------------------------------

    async def home(self) -> str:
        if self._home is None:
            result = await self.run('printf %s "$HOME"', check=True)
            self._home = result.stdout.strip() or f"/home/{self.credentials.user}"
        return self._home

    async def job(self, job_id: str) -> DetachedJob:
        """The job with this id (started or not), e.g. to re-attach to it after a restart."""
        folder = guestjobs.job_dir(await self.home(), job_id)
        return DetachedJob(job_id=job_id, log_path=f"{folder}/log", status_path=f"{folder}/status")

    async def run_detached(self, job_id: str, command: str, *, sudo: bool = False) -> DetachedJob:
        """Start `command` so that it survives the SSH connection closing. Idempotent: if a job with
        this id was started before (even if it has ended), nothing is started and the same job is
        returned, so resume re-attaches instead of running the command twice."""
        job = await self.job(job_id)
        folder = job.log_path.rsplit("/", 1)[0]
        await self.run(guestjobs.prepare_command(folder), check=True)
        # A launch cut by a dropped connection is sent again: it re-attaches to the job if it started.
        result = await self.run(guestjobs.launch_command(folder, command), sudo=sudo, check=True)
        log.debug("job %s: %s", job_id, result.stdout.strip())
        return job

    async def job_state(self, job: DetachedJob) -> guestjobs.JobState:
        folder = job.log_path.rsplit("/", 1)[0]
        result = await self.run(guestjobs.state_script(folder))
        return guestjobs.parse_state(result.stdout)

    async def job_exit_status(self, job: DetachedJob) -> int | None:
        """None while the job runs; its exit status once it ended; JOB_LOST if it ended without one."""
        state = await self.job_state(job)
        if state.state == "absent":
            raise RunFailed(f"there is no job {job.job_id} on the guest {self.label}")
        if state.state == "running":
            return None
        return state.exit_status if state.state == "exited" and state.exit_status is not None else JOB_LOST

    async def follow(self, job: DetachedJob, offset: int = 0, *,
                     poll_s: float = 1.0) -> AsyncIterator[tuple[list[str], int]]:
        """Yield (new complete lines, offset after them) until the job has ended and its log is read.

        Re-attach after anything (a dropped connection, a restart of this program) by passing the
        last offset received: no line is lost or repeated. A partial last line is held back until
        its newline arrives (or the job ends). `poll_s` is in target seconds."""
        folder = job.log_path.rsplit("/", 1)[0]
        while True:
            output = await self.run_bytes(guestjobs.poll_command(folder, offset))
            state, data = guestjobs.split_poll(output)
            if state.state == "absent":
                raise RunFailed(f"there is no job {job.job_id} on the guest {self.label}")
            ended = state.state in ("exited", "lost")
            at_end = len(data) < guestjobs.READ_CHUNK
            lines, used = guestjobs.complete_lines(data, final=ended and at_end)
            if not lines and used == 0 and len(data) >= guestjobs.READ_CHUNK:
                lines, used = guestjobs.complete_lines(data, final=True)  # one enormous line
            if used:
                offset += used
                yield lines, offset
            if not at_end:
                continue
            if ended:
                return
            await asyncio.sleep(max(0.05, min(self.clock.wall_seconds(poll_s), 1.0)))

    # --- streams and files ----------------------------------------------------------------------

    async def stream(self, command: str, *, sudo: bool = False) -> AsyncIterator[str]:
        """Run a long-lived command and yield its stdout lines (the monitoring agent). A dropped
        connection ends the stream with `GuestConnectionLost`; calling `stream` again reconnects."""
        line, stdin = await self._wrap(command, sudo, None)
        conn = await self._connection()
        try:
            process = await conn.create_process(line, encoding="utf-8", errors="replace")
        except CONNECTION_ERRORS as exc:
            self._lost(conn, exc)
            raise GuestConnectionLost(f"the connection to the guest {self.label} dropped: {_describe(exc)}") \
                from None
        try:
            if stdin:
                process.stdin.write(stdin.decode())
            async for text in process.stdout:
                if text:  # an empty read is the end of the stream; an empty line is "\n"
                    yield text.rstrip("\n")
        except CONNECTION_ERRORS as exc:
            self._lost(conn, exc)
            raise GuestConnectionLost(f"the connection to the guest {self.label} dropped: {_describe(exc)}") \
                from None
        finally:
            process.close()
        if conn.is_closed():
            self._lost(conn, None)
            raise GuestConnectionLost(f"the connection to the guest {self.label} dropped")

    async def upload(self, data: bytes, remote_path: str, mode: int = 0o644, *, sudo: bool = False) -> None:
        """Write `data` to `remote_path` atomically (SFTP to a temporary name, then rename or, with
        sudo, `install` as root). Falls back to `cat` over an exec channel when SFTP is unavailable."""
        staging = f"{await self.home()}/.vast-loopback/upload-{_random.token_hex(6)}"
        await self.run(sh("mkdir", "-p", "--", staging.rsplit("/", 1)[0]), check=True)
        await self._put(data, staging)
        try:
            if sudo:
                await self.run(sh("install", "-m", format(mode, "o"), "--", staging, remote_path),
                               sudo=True, check=True)
            else:  # sent again after a lost answer, it finds the file moved already: nothing to do
                await self.run("if " + sh("test", "-e", staging) + "; then "
                               + sh("chmod", format(mode, "o"), "--", staging) + " && "
                               + sh("mv", "-f", "--", staging, remote_path) + "; fi", check=True)
        finally:
            await self.run(sh("rm", "-f", "--", staging))

    async def _put(self, data: bytes, path: str) -> None:
        for _ in range(MAX_RERUNS):
            conn = await self._connection()
            try:
                async with conn.start_sftp_client() as sftp, sftp.open(path, "wb") as handle:
                    await handle.write(data)
                return
            except (asyncssh.SFTPError, asyncssh.ChannelOpenError) as exc:
                if conn.is_closed():
                    self._lost(conn, exc)
                    continue
                break  # no SFTP subsystem: write through an exec channel instead
            except CONNECTION_ERRORS as exc:
                self._lost(conn, exc)
        await self.run(sh("sh", "-c", 'cat > "$1"', "sh", path), input=data, check=True)

    async def close(self) -> None:
        self._closing = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5.0)


def _raw(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode()


async def sshd_answers(host: str, port: int, *, clock: Clock, within_s: float, route: Route | None = None,
                       retry_s: float = 5.0) -> str:
    """Wait up to `within_s` target seconds for an SSH server at (host, port) to send its
    identification line (`SSH-2.0-...`); no login, so no credentials or host key are involved.
    Returns "" once it answered, else why it did not (the last error)."""
    deadline = clock.now() + within_s
    reason = "no answer"
    while True:
        writer = None
        try:
            where = route(host, port) if route else (host, port)
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*where), CONNECT_TIMEOUT_S)
            line = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_S)
            if line.startswith(b"SSH-"):
                return ""
            reason = "something other than SSH answers on that port"
        except (OSError, asyncio.TimeoutError) as exc:
            reason = _describe(exc)
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
        if clock.now() + retry_s > deadline:
            return reason
        await clock.sleep(retry_s)
