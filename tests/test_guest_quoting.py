"""Hostile values (`;`, quotes, `$()`, backticks, newlines, globs, leading dashes) through every
command builder that sends something to the guest: each must arrive as one literal argument (or as
the exact file content), and nothing hidden in it may run. Executed by real bash, with recorder
programs first on PATH, and over real SSH for the client's own wrapping (sudo, jobs, uploads)."""

from __future__ import annotations

import os
import subprocess

import pytest

from backend.clients import guestjobs
from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient, GuestCredentials
from backend.clock import Clock
from backend.secrets import Secret
from backend.steps import tuning
from tests.sshd_fixture import start_sshd, write_executable

HOSTILE = [
    "a;touch pwned",
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned`",
    "line1\nline2",
    "-rf",
    "*",
    "a b  c",
    "back\\slash",
    "$HOME",
    "!x && touch pwned || true",
    "| touch pwned",
    "%s%n",
]

PROGRAMS = ["systemctl", "rpm", "dnf", "usermod", "id", "sysctl", "tuned-adm", "dracut", "udevadm",
            "lsinitrd", "rec", "findmnt", "lsblk"]
RECORDER = """#!/bin/bash
# records its name and arguments, NUL-separated, one record per call
{ printf '%s\\0' "$(basename "$0")" "$@"; printf '\\n'; } >> "$ARGV_LOG"
"""


@pytest.fixture
def shell(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in PROGRAMS:
        write_executable(bin_dir / name, RECORDER)
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "argv.log"

    def run(command: str) -> list[list[str]]:
        log.write_bytes(b"")
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGV_LOG": str(log)}
        subprocess.run(["bash", "-c", command], cwd=work, env=env, check=False, capture_output=True, timeout=30)
        assert not list(tmp_path.rglob("pwned")), f"something hidden in a value ran: {command!r}"
        records = log.read_bytes().split(b"\0\n")
        return [[a.decode() for a in r.split(b"\0")] for r in records if r]

    run.work = work  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize("value", HOSTILE)
def test_arguments_arrive_whole(shell, value):
    assert shell(sh("rec", value, "next")) == [["rec", value, "next"]]
    assert shell(sh("usermod", "-aG", "docker", value)) == [["usermod", "-aG", "docker", value]]
    assert shell(sh("id", "-nG", value)) == [["id", "-nG", value]]
    assert shell(tuning.install_command(value, "x")) == [["dnf", "install", "-y", value, "x"]]


@pytest.mark.parametrize("value", HOSTILE)
def test_probes_pass_unit_and_package_names_whole(shell, value):
    calls = shell(tuning.probe_command(tuning.unit_probe(value, value)))
    assert ["systemctl", "is-enabled", value] in calls
    assert ["systemctl", "is-active", value] in calls
    assert ["rpm", "-q", value] in calls


@pytest.mark.parametrize("value", HOSTILE)
def test_files_are_written_exactly(shell, value):
    folder = shell.work / f"dir {value[:4].replace('/', '_')}"
    path = folder / f"f{value.replace('/', '_')}"
    shell(tuning.write_root_file(str(path), value + "\n" + value))
    assert path.read_text() == value + "\n" + value
    sysfs = shell.work / "scheduler"
    shell(tuning.write_sysfs(str(sysfs), value))
    assert sysfs.read_text() == value + "\n"


@pytest.mark.parametrize("value", HOSTILE)
def test_probe_files_named_hostile_are_read_not_run(shell, value):
    (shell.work / "rules.d").mkdir(exist_ok=True)
    (shell.work / "rules.d" / f"x{value.replace('/', '_')}.rules").write_text("content\n")
    command = tuning.probe_command({}, globs=[f"{shell.work}/rules.d/*.rules"])
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    _, files = tuning.parse_probe(result.stdout)
    assert any(text.startswith("content") for text in files.values())
    assert not list(shell.work.rglob("pwned"))


@pytest.mark.parametrize("value", HOSTILE)
def test_detached_job_commands_keep_values_whole(shell, value):
    folder = shell.work / f"job {value[:6].replace('/', '_')}"
    folder_s = str(folder)
    shell(guestjobs.prepare_command(folder_s))
    calls = shell(guestjobs.launch_command(folder_s, sh("rec", value)))
    for _ in range(100):
        if (folder / "status").exists():
            break
        subprocess.run(["sleep", "0.02"])
    assert (folder / "status").read_text().strip() == "0"
    assert calls == [] or calls == [["rec", value]]
    out = subprocess.run(["bash", "-c", guestjobs.poll_command(folder_s, 0)], capture_output=True, timeout=30)
    state, _ = guestjobs.split_poll(out.stdout)
    assert state.state == "exited" and state.exit_status == 0


@pytest.mark.parametrize("value", HOSTILE)
def test_values_that_must_be_names_are_refused(value):
    with pytest.raises(ValueError):
        guestjobs.check_job_id(value)
    with pytest.raises(ValueError):
        tuning.udev_rule(value, "mq-deadline")


async def test_the_client_wrapping_keeps_values_whole_over_ssh(tmp_path):
    """sudo wrapping, detached jobs and uploads, in a home whose path is itself hostile."""
    root = tmp_path / "we'ird $(touch pwned);x `y` \"z\""
    sshd = await start_sshd(root, sudo_password=True)
    write_executable(root / "bin" / "rec", RECORDER.replace('"$ARGV_LOG"', '"$HOME/argv.log"'))
    try:
        guest = await GuestClient.connect(sshd.host, sshd.port, GuestCredentials("centos", password=Secret(sshd.password)),
                                          pinned_host_key=sshd.fingerprint, clock=Clock.scaled(1000))
        log = sshd.home / "argv.log"
        for value in HOSTILE:
            log.write_bytes(b"")
            await guest.run(sh("rec", value), sudo=True, check=True)
            assert log.read_bytes() == b"rec\0" + value.encode() + b"\0\n"

        job = await guest.run_detached("hostile-1", "; ".join(f"printf '%s\\n' {sh(v)}" for v in HOSTILE))
        lines = [line async for batch, _ in guest.follow(job, poll_s=5) for line in batch]
        assert lines == "\n".join(HOSTILE).split("\n")

        for index, value in enumerate(HOSTILE):
            target = sshd.home / f"up {index} {value.replace('/', '_')}"
            await guest.upload(value.encode(), str(target), 0o640, sudo=bool(index % 2))
            assert target.read_bytes() == value.encode()
        await guest.close()
        assert not list(tmp_path.rglob("pwned"))
    finally:
        await sshd.close()
