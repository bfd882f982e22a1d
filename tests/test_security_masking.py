"""The VMS password for vman.sh: it reaches the command through a 0600 file (never a command line we
send), goes on in vman.sh's environment (never its arguments), and whatever the command prints
passes a mask before any log holds it, even a password cut across two writes; the command's exit
status survives the mask."""

from __future__ import annotations

import shlex
import stat
import subprocess
from types import SimpleNamespace

import pytest

from backend.clients.masking import SECRET_WORD, masked_command, store_command
from backend.model.answers import parse
from backend.steps.install import cluster_create_command

HOSTILE = "vms'Rt5\"Yh6;canary $x&7 `id` \\n"


def _store(path, secret: str) -> None:
    subprocess.run(["sh", "-c", store_command(str(path))], input=secret.encode(), check=True)


def _masked(tmp_path, command: str) -> subprocess.CompletedProcess:
    line = masked_command(command, str(tmp_path / "secret"), str(tmp_path / "status"))
    return subprocess.run(["sh", "-c", line], capture_output=True, timeout=30)


@pytest.mark.parametrize("secret", [HOSTILE, "ab", "aaaa"])
def test_the_secret_is_masked_in_all_output_and_the_exit_status_kept(tmp_path, secret):
    _store(tmp_path / "secret", secret)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    command = (f"printf 'vcli -u admin -p %s -c cluster create\\n' {SECRET_WORD}; "
               f"printf '%s' {SECRET_WORD} | head -c 2; sleep 0.2; printf '%s' {SECRET_WORD} | tail -c +3; "
               f"printf ' on stderr: %s\\r' {SECRET_WORD} >&2; exit 7")
    result = _masked(tmp_path, command)
    assert result.returncode == 7
    assert secret.encode() not in result.stdout and result.stderr == b""
    assert result.stdout.startswith(b"vcli -u admin -p ****** -c cluster create\n******")
    assert result.stdout.endswith(b" on stderr: ******\r")
    assert not (tmp_path / "secret").exists()  # read and deleted before the command ran


def test_the_command_gets_the_secret_itself(tmp_path):
    _store(tmp_path / "secret", HOSTILE)
    result = _masked(tmp_path, f"[ {SECRET_WORD} = {shlex.quote(HOSTILE)} ] && echo same")
    assert result.returncode == 0 and result.stdout == b"same\n"


def test_without_the_secret_file_the_command_does_not_run(tmp_path):
    result = _masked(tmp_path, "echo ran")
    assert result.returncode == 1 and b"ran" not in result.stdout


def test_cluster_create_names_the_password_by_reference_and_quotes_every_answers_value(monkeypatch):
    monkeypatch.setenv("VLB_TEST_VMS", HOSTILE)
    answers = parse("proxmox: {url: lab}\nvast: {build: release-5-4-0-2043819, cluster_name: lb_Vast-54, admin_user: ad.min-1,"
                    " admin_password: 'env:VLB_TEST_VMS'}")
    line = cluster_create_command(SimpleNamespace(answers=answers), "/home/centos/.vast-loopback/jobs/x")
    assert HOSTILE not in line and "canary" not in line
    inner = line.split("{ ( ", 1)[1].split(" ) 2>&1;", 1)[0]  # the vman.sh command inside the mask
    words = shlex.split(inner)
    vman = words[words.index("./vman.sh"):]
    assert vman[:8] == ["./vman.sh", "release-5-4-0-2043819", "/vast/deploy/ssh_key.pem", "vcli", "-u", "ad.min-1",
                        "-c", "cluster"]
    assert "-p" not in vman  # never an argument: in the environment of vman.sh alone
    assert words[words.index("./vman.sh") - 1] == f"VMS_PASSWORD=${SECRET_WORD[2:-1]}"
    assert vman[vman.index("--name") + 1] == "lb_Vast-54"


def test_with_the_documented_default_password_the_command_is_the_field_ones_without_p():
    line = cluster_create_command(SimpleNamespace(answers=parse("{proxmox: {url: lab}}")), "/x")
    assert "VMS_PASSWORD=123456 ./vman.sh" in line and "vcli -u admin -c cluster create" in line
    assert " -p " not in line and "VLB_MASK" not in line


def test_vman_gets_extra_volume_mounts_exported_as_the_field_script_did():
    line = cluster_create_command(SimpleNamespace(answers=parse("{proxmox: {url: lab}}")), "/x")
    words = shlex.split(line)
    vman = words.index("./vman.sh")
    assert "EXTRA_VOLUME_MOUNTS=-v /file_server:/file_server" in words[:vman]
    assert "DISABLE_IPV6_FOR_LOOPBACK=yes" in words[:vman]
