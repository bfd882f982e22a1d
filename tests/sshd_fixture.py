"""A real SSH server for the guest client's tests: asyncssh on 127.0.0.1, every command run by real
bash in a temporary home, with a `sudo` that checks a password on stdin like `sudo -S` does.

It is not the lab guest (that one emulates Rocky Linux); it is the plain thing the client must work
against: real sockets, real host keys, real processes, and a hook to drop every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

SUDO = r"""#!/bin/bash
# sudo for tests: runs the command as the same user. With SUDO_TEST_PASSWORD set, a password is
# required: -S reads it from stdin's first line (the rest of stdin stays for the command).
nopass=0
from_stdin=0
validate=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nopass=1 ;;
    -S) from_stdin=1 ;;
    -p) shift ;;
    -v) validate=1 ;;
    --) shift; break ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
printf '%s\n' "sudo $*" >> "$HOME/.sudo-argv"
if [ -n "${SUDO_TEST_PASSWORD:-}" ]; then
  if [ "$from_stdin" = 1 ] && [ "$nopass" = 0 ]; then
    IFS= read -r given || true
    if [ "$given" != "$SUDO_TEST_PASSWORD" ]; then echo "Sorry, try again." >&2; exit 1; fi
  else
    echo "sudo: a password is required" >&2
    exit 1
  fi
fi
if [ "$validate" = 1 ]; then exit 0; fi
exec "$@"
"""


@dataclass
class TestSshd:
    host: str
    port: int
    host_key: asyncssh.SSHKey
    home: Path
    password: str
    commands: list[str] = field(default_factory=list)
    connections: set = field(default_factory=set)
    server: asyncssh.SSHAcceptor | None = None
    processes: set = field(default_factory=set)
    _options: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.host_key.get_fingerprint("sha256").rstrip("=")

    def known_hosts_line(self, host: str | None = None) -> str:
        name = host or (self.host if self.port == 22 else f"[{self.host}]:{self.port}")
        return f"{name} {self.host_key.export_public_key('openssh').decode().strip()}\n"

    def drop_all(self) -> int:
        """Cut every client connection as a network failure would (no goodbye)."""
        dropped = 0
        for conn in list(self.connections):
            conn.abort()
            dropped += 1
        return dropped

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def start_listening(self) -> None:
        self.server = await asyncssh.listen(self.host, self.port, **self._options)

    async def close(self) -> None:
        await self.stop_listening()
        self.drop_all()
        for proc in list(self.processes):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


async def start_sshd(root: Path, *, password: str = "s3cret-pass", sudo_password: bool = False,
                     client_keys: list[asyncssh.SSHKey] | None = None,
                     host_key: asyncssh.SSHKey | None = None) -> TestSshd:
    home = root / "home"
    bin_dir = root / "bin"
    home.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    write_executable(bin_dir / "sudo", SUDO)
    key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    sshd = TestSshd("127.0.0.1", 0, key, home, password)
    env = {
        "HOME": str(home),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LANG": "C.UTF-8",
    }
    if sudo_password:
        env["SUDO_TEST_PASSWORD"] = password

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            self.conn = conn
            sshd.connections.add(conn)

        def connection_lost(self, exc: Exception | None) -> None:
            sshd.connections.discard(self.conn)

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return given == password

        def public_key_auth_supported(self) -> bool:
            return bool(client_keys)

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return any(key.public_data == k.public_data for k in client_keys or [])

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        command = process.command or "bash -l"
        sshd.commands.append(command)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=home, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        sshd.processes.add(proc)

        async def feed() -> None:
            try:
                while chunk := await process.stdin.read(65536):
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
            except (asyncssh.Error, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        async def drain(source: asyncio.StreamReader, sink: asyncssh.SSHWriter) -> None:
            while chunk := await source.read(65536):
                sink.write(chunk)

        feeding = asyncio.create_task(feed())
        try:
            await asyncio.gather(drain(proc.stdout, process.stdout), drain(proc.stderr, process.stderr))
            process.exit(await proc.wait())
        except (asyncssh.Error, OSError):
            pass
        finally:
            feeding.cancel()
            sshd.processes.discard(proc)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    sshd._options = dict(server_host_keys=[key], server_factory=Server, process_factory=handle,
                         sftp_factory=True, allow_scp=False, keepalive_interval=0, encoding=None)
    sshd.server = await asyncssh.listen("127.0.0.1", 0, **sshd._options)
    sshd.port = sshd.server.get_port()
    return sshd
