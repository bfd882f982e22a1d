"""The guest's SSH server: asyncssh on 127.0.0.1, one listener per running guest.

What a client meets is what it would meet at a Rocky guest's sshd: the lab's fixed host key
(generated once per lab, kept under `<state>/ssh/`), password authentication (the OVA's
`centos`/`centos` unless the lab is told otherwise) and public-key authentication against the
guest's own `~/.ssh/authorized_keys`, exec requests run by the user's shell (`bash -c COMMAND`)
with stdin, stdout, stderr and the exit status (or the signal) reported back, interactive shells
on a pseudo-terminal, and the `sftp` subsystem (the guest's /usr/libexec/openssh/sftp-server,
running inside the guest, so uploads land in the guest's root with the guest's view of paths).

Every command runs inside the guest's namespaces through `nsenter` (see namespace.py), in a
process group of its own. When the client goes away before the command has ended, that group gets
SIGHUP, as sshd's children do when their session ends; a job started with `setsid`/`nohup`
survives, like on a real host. The session ends once the command has exited *and* its output
pipes are closed (a background job that keeps stdout open keeps the session open, as with sshd).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import os
import signal
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncssh

from backend.run.safefiles import write_private

ACCEPT_ENV = ("LANG", "LANGUAGE", "XMODIFIERS")
SIGNALS = {name[3:]: getattr(signal, name) for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM",
                                                          "SIGUSR1", "SIGUSR2", "SIGABRT", "SIGALRM", "SIGPIPE")}
SIGNAL_NAMES = {number: name for name, number in SIGNALS.items()}


def _default_signals() -> None:
    """A session's process starts with every signal's default action, as sshd's children do (it
    resets them before running the user's shell), whatever the lab inherited: a lab started with
    nohup or in the background has SIGHUP or SIGINT ignored, and a hang-up would then end nothing."""
    for sig in SIGNALS.values():
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)


@dataclass(frozen=True)
class Login:
    """Who logged in, as the guest's /etc/passwd and /etc/group say."""

    user: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...]


class GuestEndpoint(Protocol):
    """What the SSH server needs from a running guest."""

    def lookup(self, user: str) -> Login | None: ...
    def password_ok(self, user: str, password: str) -> bool: ...
    def authorized_keys(self, user: str) -> list[asyncssh.SSHKey]: ...
    def session_argv(self, argv: list[str]) -> list[str]: ...
    def spawn_kwargs(self) -> dict: ...
    def guest_address(self) -> str: ...
    def after_command(self) -> None: ...
    def open_pty(self) -> tuple[int, int]: ...


def load_host_key(ssh_dir: Path) -> asyncssh.SSHKey:
    """The lab's host key: generated on first use, the same for the life of the lab."""
    path = ssh_dir / "ssh_host_ed25519_key"
    if path.exists():
        return asyncssh.read_private_key(str(path))
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="vast-loopback lab")
    write_private(path, key.export_private_key())
    write_private(ssh_dir / "ssh_host_ed25519_key.pub", key.export_public_key())
    return key


class _Server(asyncssh.SSHServer):
    def __init__(self, guest: GuestEndpoint, gone: Callable[[_Server], None] = lambda server: None,
                 on_session: Callable[[str], None] | None = None) -> None:
        self.guest = guest
        self.gone = gone
        self.on_session = on_session
        self.sessions: list[_Session] = []
        self.conn: asyncssh.SSHServerConnection | None = None
        self.login: Login | None = None  # fixed at authentication, like sshd's initgroups per connection

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def auth_completed(self) -> None:
        if self.conn is not None:
            self.login = self.guest.lookup(self.conn.get_extra_info("username"))

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        login = self.guest.lookup(username)
        return login is not None and self.guest.password_ok(username, password)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self.guest.lookup(username) is None:
            return False
        wanted = key.public_data
        return any(hmac.compare_digest(k.public_data, wanted) for k in self.guest.authorized_keys(username))

    def session_requested(self) -> _Session:
        session = _Session(self)
        self.sessions.append(session)
        return session

    def connection_lost(self, exc: Exception | None) -> None:
        for session in self.sessions:
            session.hang_up()
        self.gone(self)


class _Session(asyncssh.SSHServerSession):
    """One channel: a command, a shell or the sftp subsystem, running inside the guest."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.guest = server.guest
        self.chan: asyncssh.SSHServerChannel | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.command: str | None = None
        self.subsystem: str | None = None
        self.pty: tuple[str, tuple[int, int, int, int]] | None = None
        self.master: int | None = None
        self.stdin_queue: list[bytes | None] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.ended = False
        self.hung_up = False  # the client went away, maybe before the command's process existed

    # -- requests ---------------------------------------------------------------------------------
    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: dict) -> bool:
        self.pty = (term_type or "xterm", term_size)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            return False
        self.subsystem = subsystem
        return True

    def session_started(self) -> None:
        if self.server.on_session is not None:
            self.server.on_session(self.command if self.command is not None else self.subsystem or "shell")
        asyncio.get_running_loop().create_task(self._run())

    # -- data from the client ---------------------------------------------------------------------
    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._to_stdin(data)

    def eof_received(self) -> bool:
        self._to_stdin(None)
        return True

    def signal_received(self, signal_name: str) -> None:
        self._signal(SIGNALS.get(signal_name.upper()))

    def break_received(self, msec: int) -> bool:
        self._signal(signal.SIGINT)
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.master is not None:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))
            self._signal(signal.SIGWINCH)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.hang_up()

    # -- the process ------------------------------------------------------------------------------
    def hang_up(self) -> None:
        """The client went away: like sshd, the command's process group gets SIGHUP (now, or as soon
        as it exists: a command whose client is gone before it started is hung up as it starts)."""
        self.hung_up = True
        if not self.ended:
            self._signal(signal.SIGHUP)
            self._signal(signal.SIGCONT)

    def _started(self) -> None:
        """The command's process exists: give it the input that came first, and the hang-up if its
        client is already gone."""
        for data in self.stdin_queue:
            self._write_stdin(data)
        self.stdin_queue.clear()
        if self.hung_up:
            self.hang_up()

    def _signal(self, sig: int | None) -> None:
        if sig is None or self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, sig)

    def _to_stdin(self, data: bytes | None) -> None:
        if self.process is None:
            self.stdin_queue.append(data)
            return
        self._write_stdin(data)

    def _write_stdin(self, data: bytes | None) -> None:
        assert self.process is not None
        if self.master is not None:
            if data is None:
                data = b"\x04"
            with contextlib.suppress(OSError):
                os.write(self.master, data)
            return
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            return
        if data is None:
            stdin.close()
        else:
            stdin.write(data)

    def _environment(self, login: Login) -> dict[str, str]:
        assert self.chan is not None
        peer = self.chan.get_extra_info("peername") or ("127.0.0.1", 0)
        env = {
            "USER": login.user, "LOGNAME": login.user, "HOME": login.home, "SHELL": login.shell,
            "PATH": "/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin", "MAIL": f"/var/spool/mail/{login.user}",
            "SSH_CLIENT": f"{peer[0]} {peer[1]} 22",
            "SSH_CONNECTION": f"{peer[0]} {peer[1]} {self.guest.guest_address()} 22",
            "LAB_USER": login.user, "LAB_GROUPS": " ".join(str(g) for g in login.groups),
        }
        for name, value in self.chan.get_environment().items():
            if name in ACCEPT_ENV or name.startswith("LC_"):
                env[name] = value
        if self.pty:
            env["TERM"] = self.pty[0]
        return env

    async def _run(self) -> None:
        assert self.chan is not None
        login = self.server.login
        if login is None:
            self.chan.exit(254)
            return
        if self.subsystem:
            argv = ["/usr/.lab/stubs/bin/lab-session", "-s", self.subsystem]
        elif self.command is not None:
            argv = ["/usr/.lab/stubs/bin/lab-session", self.command]
        else:
            argv = ["/usr/.lab/stubs/bin/lab-session"]
        argv = self.guest.session_argv(argv)
        env = self._environment(login)
        try:
            if self.pty:
                status = await self._run_on_pty(argv, env)
            else:
                status = await self._run_on_pipes(argv, env)
        except OSError as exc:
            self.chan.write_stderr(f"lab: cannot start the session: {exc}\n".encode())
            status = 255
        self.ended = True
        with contextlib.suppress(OSError):
            self.guest.after_command()
        if status < 0 and -status in SIGNAL_NAMES:
            self.chan.exit_with_signal(SIGNAL_NAMES[-status])
        else:
            self.chan.exit(status & 0xFF if status >= 0 else 255)

    async def _run_on_pipes(self, argv: list[str], env: dict[str, str]) -> int:
        pipe = asyncio.subprocess.PIPE
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe, stdout=pipe, stderr=pipe, env=env, cwd="/", start_new_session=True,
            preexec_fn=_default_signals, **self.guest.spawn_kwargs())
        self._started()
        assert self.process.stdout is not None and self.process.stderr is not None
        assert self.chan is not None
        await asyncio.gather(self._pump(self.process.stdout.read, self.chan.write),
                             self._pump(self.process.stderr.read, self.chan.write_stderr))
        status = await self.process.wait()
        _close_transport(self.process)
        return status

    async def _pump(self, read: Callable, write: Callable) -> None:
        while True:
            data = await read(65536)
            if not data:
                return
            await self.writable.wait()
            if self.chan is None or self.chan.is_closing():
                continue  # keep draining so the process is never blocked on a dead client
            write(data)

    async def _run_on_pty(self, argv: list[str], env: dict[str, str]) -> int:
        assert self.pty is not None and self.chan is not None
        master, slave = self.guest.open_pty()
        width, height, pixwidth, pixheight = self.pty[1]
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height or 24, width or 80, pixheight, pixwidth))
        self.master = master

        def take_terminal() -> None:
            _default_signals()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/", start_new_session=True,
                preexec_fn=take_terminal, **self.guest.spawn_kwargs())
        finally:
            os.close(slave)
        self._started()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(master)
                if not done.done():
                    done.set_result(None)
                return
            if self.chan is not None and not self.chan.is_closing():
                self.chan.write(data)

        loop.add_reader(master, readable)
        try:
            status = await self.process.wait()
            await asyncio.wait_for(asyncio.shield(done), 0.5)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(master)
            os.close(master)
            self.master = None
        _close_transport(self.process)
        return status


def _close_transport(process: asyncio.subprocess.Process) -> None:
    """Close an ended session's pipes now, on the loop that made them: left to the garbage
    collector, they are closed whenever it runs, possibly after the lab's loop has closed."""
    transport = getattr(process, "_transport", None)
    if transport is not None and process.returncode is not None:
        transport.close()


class GuestSSHServer:
    """The listener of one guest."""

    def __init__(self, guest: GuestEndpoint, host_key: asyncssh.SSHKey, *,
                 on_session: Callable[[str], None] | None = None) -> None:
        """`on_session(what)` is called (on the server's loop) whenever a client opens a session, with
        its command (or "sftp", "shell"): the lab's fault plan decides there whether the network
        drops (GuestLab)."""
        self.guest = guest
        self.host_key = host_key
        self.on_session = on_session
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._servers: list[_Server] = []
        self.port = 0

    async def start(self, port: int = 0) -> int:
        def factory() -> _Server:
            server = _Server(self.guest, self._forget, self.on_session)
            self._servers.append(server)
            return server

        try:
            self._acceptor = await self._listen(factory, port)
        except OSError:
            self._acceptor = await self._listen(factory, 0)
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self.port

    def _forget(self, server: _Server) -> None:
        if server in self._servers:
            self._servers.remove(server)

    async def _listen(self, factory: Callable[[], _Server], port: int) -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            factory, "127.0.0.1", port, server_host_keys=[self.host_key], encoding=None, line_editor=False,
            allow_scp=False, x11_forwarding=False, agent_forwarding=False, keepalive_interval=0,
            server_version="OpenSSH_8.0", reuse_address=True)

    def drop_connections(self) -> int:
        """Cut every connection (a network fault): like sshd, hang up the commands still running."""
        servers = list(self._servers)
        for server in servers:
            if server.conn is not None:
                server.conn.abort()
        return len(servers)

    async def stop(self) -> None:
        """Stop listening and drop every connection (what a guest going down does to its clients)."""
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for server in list(self._servers):
            for session in server.sessions:
                session.ended = True  # the guest is going away: its processes end with it
            if server.conn is not None:
                server.conn.close()
        self._servers.clear()
