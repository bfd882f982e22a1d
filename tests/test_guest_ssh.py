"""The guest client over real SSH (a real asyncssh server running real bash): commands, sudo with a
password on stdin, host-key checks, reconnects, detached jobs that survive dropped connections."""

from __future__ import annotations

import asyncio
import os
import socket

import asyncssh
import pytest

from backend.clients.guestssh import JOB_LOST, GuestClient, GuestConnectionLost, GuestCredentials
from backend.clock import Clock
from backend.errors import RunFailed, TargetUnreachable
from backend.events import GuestDisconnected, GuestReconnected
from backend.run.bus import EventBus
from backend.secrets import Secret
from tests.sshd_fixture import start_sshd

FAST = Clock.scaled(1000)  # backoff of 1 target second = 1 ms of wall time


@pytest.fixture
async def sshd(tmp_path):
    server = await start_sshd(tmp_path, sudo_password=True)
    yield server
    await server.close()


@pytest.fixture
def bus():
    b = EventBus(FAST)
    b.seen = []
    b.subscribe(b.seen.append)
    return b


async def connect(sshd, bus=None, **kwargs) -> GuestClient:
    kwargs.setdefault("pinned_host_key", sshd.fingerprint)
    return await GuestClient.connect(
        sshd.host, sshd.port, GuestCredentials("centos", password=Secret(sshd.password)),
        bus=bus, clock=FAST, label="centos@guest", **kwargs)


async def test_run_returns_exit_status_and_both_outputs(sshd):
    guest = await connect(sshd)
    result = await guest.run("echo out; echo err >&2; exit 3")
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    with pytest.raises(RunFailed, match="exit status 3: err"):
        await guest.run("echo err >&2; exit 3", check=True)
    await guest.close()


async def test_sudo_feeds_the_password_on_stdin_never_in_argv(sshd):
    guest = await connect(sshd)
    result = await guest.run("cat; echo done", sudo=True, input="payload line\n")
    assert result.ok, result.stderr
    assert result.stdout == "payload line\ndone\n"  # the password line went to sudo, not the command
    argv_log = (sshd.home / ".sudo-argv").read_text()
    for text in [*sshd.commands, argv_log]:
        assert sshd.password not in text
    await guest.close()


async def test_sudo_with_a_wrong_password_is_a_clear_error(sshd):
    guest = await GuestClient.connect(sshd.host, sshd.port, GuestCredentials("centos", key=None,
                                      password=Secret(sshd.password)), pinned_host_key=sshd.fingerprint,
                                      clock=FAST, label="centos@guest")
    guest.credentials = GuestCredentials("centos", password=Secret("wrong-password-1"))
    with pytest.raises(RunFailed, match="refused the password of centos"):
        await guest.run("true", sudo=True)
    await guest.close()


async def test_a_different_host_key_is_refused_naming_both_fingerprints(sshd, tmp_path):
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256").rstrip("=")
    with pytest.raises(RunFailed) as caught:
        await connect(sshd, pinned_host_key=other)
    message = str(caught.value)
    assert sshd.fingerprint in message and other in message and "refusing" in message

    known = tmp_path / "known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    known.write_text(f"[{sshd.host}]:{sshd.port} {impostor.export_public_key().decode().strip()}\n")
    asked = []

    async def confirm(fingerprint: str) -> bool:
        asked.append(fingerprint)
        return True

    with pytest.raises(RunFailed, match="refusing"):
        await connect(sshd, pinned_host_key=None, known_hosts=known, confirm_new_host_key=confirm)
    assert asked == []  # a mismatch is never offered for confirmation


async def test_an_unknown_host_key_is_refused_headless_and_asked_otherwise(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    with pytest.raises(RunFailed) as caught:
        await connect(sshd, pinned_host_key=None, known_hosts=known)
    assert "unknown host key" in str(caught.value) and sshd.fingerprint in str(caught.value)
    assert f"guest.host_key: {sshd.fingerprint}" in str(caught.value)

    async def decline(fingerprint: str) -> bool:
        return False

    with pytest.raises(RunFailed, match="not accepted"):
        await connect(sshd, pinned_host_key=None, known_hosts=known, confirm_new_host_key=decline)

    asked = []

    async def accept(fingerprint: str) -> bool:
        asked.append(fingerprint)
        return True

    guest = await connect(sshd, pinned_host_key=None, known_hosts=known, confirm_new_host_key=accept)
    assert asked == [sshd.fingerprint] and guest.host_key == sshd.fingerprint
    await guest.close()
    # The confirmed key was remembered: the next connection needs nobody to ask.
    guest = await connect(sshd, pinned_host_key=None, known_hosts=known)
    assert (await guest.run("echo ok")).stdout == "ok\n"
    await guest.close()


async def test_known_hosts_entry_under_the_guests_own_address_is_trusted(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line("192.0.2.10"))
    guest = await connect(sshd, pinned_host_key=None, known_hosts=known, aliases=(("192.0.2.10", 22),))
    assert guest.host_key == sshd.fingerprint
    await guest.close()


async def test_a_refused_login_is_not_retried_and_says_why(sshd):
    with pytest.raises(RunFailed, match="refused the SSH login"):
        await GuestClient.connect(sshd.host, sshd.port, GuestCredentials("centos", password=Secret("nope-nope")),
                                  pinned_host_key=sshd.fingerprint, clock=FAST, wait_s=600)


async def test_key_authentication(tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await start_sshd(tmp_path, client_keys=[key])
    try:
        text = key.export_private_key().decode()
        guest = await GuestClient.connect(server.host, server.port, GuestCredentials("centos", key=Secret(text)),
                                          pinned_host_key=server.fingerprint, clock=FAST)
        assert (await guest.run("echo ok", sudo=True)).stdout == "ok\n"
        await guest.close()
    finally:
        await server.close()


async def test_an_unreachable_guest_is_one_clear_sentence():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TargetUnreachable) as caught:
        await GuestClient.connect("127.0.0.1", port, GuestCredentials("centos", password=Secret("x" * 8)),
                                  pinned_host_key="SHA256:" + "A" * 43, clock=FAST, label="centos@10.0.0.9",
                                  wait_s=5)
    assert str(caught.value).startswith("cannot reach the guest centos@10.0.0.9 over SSH: connection refused")


async def test_connect_waits_for_a_booting_guest(sshd):
    await sshd.stop_listening()

    async def boot_later():
        await asyncio.sleep(0.2)
        await sshd.start_listening()

    booting = asyncio.create_task(boot_later())
    guest = await connect(sshd, wait_s=3600)
    await booting
    assert (await guest.run("echo up")).stdout == "up\n"
    await guest.close()


async def test_commands_reconnect_after_a_drop_with_events(sshd, bus):
    guest = await connect(sshd, bus)
    assert (await guest.run("echo one")).ok
    assert sshd.drop_all() == 1
    await asyncio.sleep(0.05)
    assert (await guest.run("echo two")).stdout == "two\n"
    kinds = [type(e) for e in bus.seen]
    assert GuestDisconnected in kinds and GuestReconnected in kinds
    assert kinds.index(GuestDisconnected) < kinds.index(GuestReconnected)
    await guest.close()


async def test_a_command_cut_by_a_drop_is_not_rerun_when_it_must_not_be(sshd):
    guest = await connect(sshd)
    marker = sshd.home / "runs"
    task = asyncio.create_task(guest.run(f"echo x >> {marker}; sleep 5", retry=False))
    for _ in range(3000):  # the command has run its first part (a generous minute on a busy machine)
        if marker.exists():
            break
        await asyncio.sleep(0.02)
    sshd.drop_all()
    with pytest.raises(GuestConnectionLost):
        await task
    assert marker.read_text() == "x\n"
    await guest.close()


JOB = "for i in $(seq 1 {n}); do echo \"line $i\"; sleep {pause}; done"


async def test_a_detached_job_survives_drops_and_follow_loses_no_line(sshd, bus):
    guest = await connect(sshd, bus)
    job = await guest.run_detached("count", JOB.format(n=60, pause=0.01))
    seen: list[str] = []
    offsets = []
    drops = 0
    async for lines, offset in guest.follow(job, poll_s=20):
        seen.extend(lines)
        offsets.append(offset)
        if drops < 3:
            drops += sshd.drop_all()
    assert drops == 3
    assert seen == [f"line {i}" for i in range(1, 61)]
    assert offsets == sorted(offsets) and offsets[-1] == sum(len(f"line {i}\n") for i in range(1, 61))
    assert await guest.job_exit_status(job) == 0
    assert sum(isinstance(e, GuestReconnected) for e in bus.seen) >= 3
    await guest.close()


async def test_a_detached_job_outlives_the_client_and_is_reattached_by_offset(sshd):
    guest = await connect(sshd)
    job = await guest.run_detached("long", JOB.format(n=30, pause=0.02) + "; exit 7")
    first: list[str] = []
    offset = 0
    async for lines, end in guest.follow(job, poll_s=20):
        first.extend(lines)
        offset = end
        if len(first) >= 5:
            break
    await guest.close()  # the program went away; the job carries on

    again = await connect(sshd)
    job2 = await again.run_detached("long", "echo must not run")  # same id: re-attach, not rerun
    assert job2 == job
    rest: list[str] = []
    async for lines, _ in again.follow(job2, offset, poll_s=20):
        rest.extend(lines)
    assert first + rest == [f"line {i}" for i in range(1, 31)]
    assert await again.job_exit_status(job2) == 7
    await again.close()


async def test_a_partial_last_line_is_held_back_until_complete(sshd):
    guest = await connect(sshd)
    job = await guest.run_detached("partial", "printf 'abc'; sleep 0.4; printf 'def\\nghi'")
    batches = [lines async for lines, _ in guest.follow(job, poll_s=20)]
    assert [line for batch in batches for line in batch] == ["abcdef", "ghi"]
    await guest.close()


async def test_a_job_killed_without_a_status_is_reported_lost(sshd):
    guest = await connect(sshd)
    job = await guest.run_detached("victim", "echo started; sleep 30")
    async for lines, _ in guest.follow(job, poll_s=20):
        if lines == ["started"]:
            break
    pid = int((await guest.run(f"cat {job.log_path.rsplit('/', 1)[0]}/pid")).stdout)
    os.kill(pid, 9)
    await asyncio.sleep(0.1)
    assert await guest.job_exit_status(job) == JOB_LOST
    await guest.close()


async def test_sudo_job_and_upload(sshd):
    guest = await connect(sshd)
    job = await guest.run_detached("rooted", "id -un", sudo=True)
    assert [line async for lines, _ in guest.follow(job, poll_s=20) for line in lines] == ["root"]
    target = sshd.home / "etc" / "conf"
    target.parent.mkdir()
    await guest.upload(b"a=1\n", str(target), 0o600, sudo=True)
    assert target.read_bytes() == b"a=1\n" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert not list((sshd.home / ".vast-loopback").glob("upload-*"))
    await guest.close()


async def test_stream_yields_lines_and_a_drop_ends_it(sshd):
    guest = await connect(sshd)
    got = []
    with pytest.raises(GuestConnectionLost):
        async for line in guest.stream("for i in 1 2 3; do echo s$i; done; sleep 30"):
            got.append(line)
            if len(got) == 3:
                sshd.drop_all()
    assert got == ["s1", "s2", "s3"]
    assert [line async for line in guest.stream("echo again")] == ["again"]
    await guest.close()


async def test_a_reconnection_to_a_different_host_key_is_refused(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line())
    guest = await connect(sshd, pinned_host_key=None, known_hosts=known)
    await sshd.stop_listening()
    sshd.drop_all()
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    sshd._options["server_host_keys"] = [impostor]
    await sshd.start_listening()
    with pytest.raises(RunFailed) as caught:
        await guest.run("true")
    message = str(caught.value)
    assert sshd.fingerprint in message and impostor.get_fingerprint("sha256").rstrip("=") in message
    await guest.close()
