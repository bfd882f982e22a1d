"""The lab guest over real SSH: commands in real bash, the fixed host key, stdin/stdout/stderr and exit
status, a Rocky PATH, SFTP, and jobs that survive (or not) the connection closing."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import asyncio
import hashlib
import shlex
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from tests.lab_fixtures import boot, connect, guest_lab, hardware, running_guest  # noqa: F401

HOST_FILES = ("/proc/sys/vm/swappiness", "/proc/sys/vm/dirty_ratio", "/proc/sys/kernel/hostname", "/etc/hosts",
              "/sys/kernel/mm/transparent_hugepage/enabled", "/etc/passwd", "/etc/group")


def _host_snapshot() -> dict[str, str]:
    snapshot = {}
    for name in HOST_FILES:
        try:
            snapshot[name] = hashlib.sha256(Path(name).read_bytes()).hexdigest()
        except OSError:
            snapshot[name] = "absent"
    return snapshot


async def test_a_command_runs_in_bash_with_exit_status_and_both_streams(running_guest):
    async with connect(running_guest) as conn:
        result = await conn.run('echo "$0 $BASH_VERSION" | cut -c1-4; echo oops >&2; exit 7')
    assert result.exit_status == 7
    assert result.stdout == "bash\n"
    assert result.stderr == "oops\n"


async def test_stdin_reaches_the_command(running_guest):
    async with connect(running_guest) as conn:
        result = await conn.run("tr a-z A-Z", input="rocky\n")
    assert result.stdout == "ROCKY\n"


async def test_the_guest_looks_like_the_vm_not_this_machine(running_guest):
    async with connect(running_guest) as conn:
        free = (await conn.run("free -g")).stdout.splitlines()[1].split()
        meminfo = (await conn.run("grep MemTotal /proc/meminfo")).stdout.split()
        nproc = (await conn.run("nproc")).stdout.strip()
        release = (await conn.run("cat /etc/redhat-release; uname -r; id -un; whoami; hostname")).stdout.split("\n")
    assert free[0] == "Mem:" and int(free[1]) == 117  # 120 GiB of RAM as the guest's free shows it
    assert int(meminfo[1]) == 123223064  # the field guest's MemTotal (memory.log), from the kernel's overhead (facts)
    assert nproc == "12"
    assert release[:5] == ["Rocky Linux release 8.10 (Green Obsidian)", "4.18.0-553.56.1.el8_10.x86_64",
                           "centos", "centos", "localhost.localdomain"]


async def test_an_interactive_shell_gets_a_terminal_of_the_guest(running_guest):
    async with connect(running_guest) as conn:
        result = await conn.run("tty; stty size", term_type="xterm", term_size=(100, 30))
        shell = await conn.create_process(term_type="xterm")
        shell.stdin.write("echo hello; exit 4\n")
        output = await asyncio.wait_for(shell.stdout.read(), 10)
        await shell.wait()
    tty, size = result.stdout.split("\r\n")[:2]
    assert tty.startswith("/dev/pts/") and size == "30 100"
    assert "[centos@localhost ~]$ " in output and "hello" in output
    assert shell.exit_status == 4


async def test_unknown_commands_fail_as_on_rocky(running_guest):
    async with connect(running_guest) as conn:
        result = await conn.run("apt-get install -y docker")
    assert result.exit_status == 127
    assert "apt-get: command not found" in result.stderr


async def test_the_host_key_is_the_labs_and_a_wrong_one_is_refused(running_guest, tmp_path):
    wrong = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    host, port = running_guest.address
    bad = tmp_path / "known_hosts"
    bad.write_text(f"[{host}]:{port} {wrong[0]} {wrong[1]}\n")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(running_guest, known_hosts=str(bad)):
            pass
    async with connect(running_guest) as conn:
        key = conn.get_server_host_key()
    assert key.get_fingerprint("sha256") == running_guest.lab.host_key_fingerprint()


async def test_a_wrong_password_is_refused(running_guest):
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(running_guest, password="not-centos"):
            pass


async def test_public_key_auth_uses_the_guests_authorized_keys(running_guest):
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode()
    running_guest.run(f"mkdir -p /home/centos/.ssh && echo '{public.strip()}' >> /home/centos/.ssh/authorized_keys")
    async with connect(running_guest, password=None, client_keys=[key]) as conn:
        assert (await conn.run("id -un")).stdout == "centos\n"


async def test_sftp_uploads_land_in_the_guest(running_guest):
    async with connect(running_guest) as conn:
        async with conn.start_sftp_client() as sftp:
            async with sftp.open("/vast/deploy/uploaded.txt", "w") as handle:
                await handle.write("from the jump host\n")
            await sftp.chmod("/vast/deploy/uploaded.txt", 0o600)
        result = await conn.run("cat /vast/deploy/uploaded.txt; stat -c %a /vast/deploy/uploaded.txt")
    assert result.stdout == "from the jump host\n600\n"


async def sleeps_settle(guest, expected: list[str], pattern: str = "^sleep", seconds: float = 60.0) -> list[str]:  # noqa: ANN001
    """The guest's `sleep` processes once they are `expected` (a hung-up command ends a moment after
    its connection, later on a busy machine), or as they are after a generous `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = (await asyncio.to_thread(guest.run, f"ps -eo args | grep {shlex.quote(pattern)} || true")).stdout
        lines = found.split("\n")[:-1]
        if lines == expected or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_a_detached_job_survives_the_connection_and_power_off_ends_it(guest_lab, tmp_path):
    guest = boot(guest_lab, hardware(101, ip="192.168.30.110", mac="BC:24:11:5A:3C:0A"))
    async with connect(guest) as conn:
        await conn.run("setsid nohup sleep 600 > /tmp/job.log 2>&1 < /dev/null &")
        await conn.create_process("sleep 500")  # still running when the client goes: SIGHUP, as with sshd
        await asyncio.sleep(0.1)
    assert await sleeps_settle(guest, ["sleep 600"]) == ["sleep 600"]  # the hung-up one ends, the job stays
    async with connect(guest) as conn:
        result = await conn.run("ps -eo args | grep '^sleep'")
    assert result.stdout.split("\n")[:-1] == ["sleep 600"]
    guest_lab.power_off(guest.vmid, graceful=True)
    assert guest_lab.boot_state(guest.vmid) == "off"
    assert not guest_lab.guest(guest.vmid).processes()


async def test_a_command_whose_client_left_before_it_started_is_hung_up_as_it_starts(running_guest, monkeypatch):
    """sshd never leaves a command running for a client that is gone. On a busy machine the client can
    leave while the command's process is still being started: it is hung up the moment it exists."""
    from backend.lab.guest import sshd

    spawned = threading.Event()  # set on the lab's loop, waited for on this one
    real = asyncio.create_subprocess_exec

    async def slow_start(*args, **kwargs):
        await asyncio.sleep(0.5)  # the client leaves meanwhile
        process = await real(*args, **kwargs)
        spawned.set()
        return process

    async with connect(running_guest) as conn:
        monkeypatch.setattr(sshd.asyncio, "create_subprocess_exec", slow_start)
        await conn.create_process("sleep 503 & wait")  # the hang-up reaches its whole process group
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(spawned.wait, 30.0)
    monkeypatch.undo()
    assert await sleeps_settle(running_guest, [], "^sleep 503", seconds=10.0) == []


async def test_a_dropped_connection_hangs_up_running_commands_but_not_detached_jobs(running_guest):
    async with connect(running_guest) as conn:
        await conn.run("setsid nohup sleep 601 >/dev/null 2>&1 < /dev/null &", check=True)
        await conn.create_process("sleep 602")
        await asyncio.sleep(0.1)
        assert running_guest.lab.drop_connections(running_guest.vmid) >= 1
        with pytest.raises((asyncssh.Error, OSError)):
            await asyncio.wait_for(conn.run("true"), 5)
    await sleeps_settle(running_guest, ["sleep 601"], "^sleep 60")
    async with connect(running_guest) as conn:
        result = await conn.run("ps -eo args | grep '^sleep 60'")
        await conn.run("pkill -f 'sleep 601'")
    assert result.stdout == "sleep 601\n"


async def test_nothing_of_this_machine_changes(running_guest):
    before = _host_snapshot()
    async with connect(running_guest) as conn:
        await conn.run("sudo sh -c 'echo 1 > /proc/sys/vm/swappiness; echo 5 > /proc/sys/vm/dirty_ratio; "
                       "echo never > /sys/kernel/mm/transparent_hugepage/enabled; echo 10.0.0.9 x >> /etc/hosts; "
                       "echo evil > /proc/sys/kernel/hostname; echo bad:x:0:0::/:/bin/sh >> /etc/passwd; "
                       "echo 1 > /proc/sys/net/ipv4/ip_forward; mount -o remount,rw /usr/lib; touch /usr/lib/x'")
        inside = (await conn.run("cat /proc/sys/vm/swappiness")).stdout
    assert inside == "1\n"
    assert _host_snapshot() == before
    assert not Path("/usr/lib/x").exists()
