"""The scenario follows from the VM the wizard created: its vCPUs, the host's cores, its RAM."""

from __future__ import annotations

import json
import re

import pytest

from backend.lab import scenarios
from backend.sizing import MEMORY_MIN_GIB
from tests.vast_lab_helpers import hardware


@pytest.mark.parametrize(("vcpus", "memory_gib", "expected"), [
    (12, 117, "success"),  # the field's working VM on the seed host
    (12, 97, "oom"),  # attempt 1's RAM
    (24, 117, "overcommit"),  # attempt 2's vCPUs on 12 cores
    (24, 97, "oom"),  # attempt 1 had both: the OOM killer strikes first
    (12, MEMORY_MIN_GIB, "success"),  # the sizing rule's minimum is enough
    (12, MEMORY_MIN_GIB - 1, "oom"),
    (8, 128, "success"),
])
def test_scenario_from_hardware(vcpus, memory_gib, expected):
    hw = hardware(vcpus=vcpus, memory_gib=memory_gib)
    name, reason = scenarios.select(hw)
    assert name == expected and reason
    assert scenarios.build(hw, boot_t=0.0)["name"] == expected


def test_a_bigger_host_takes_more_vcpus():
    assert scenarios.select(hardware(vcpus=24, host_cores=32))[0] == "success"
    assert scenarios.select(hardware(vcpus=13, host_cores=12))[0] == "overcommit"


def test_oom_strikes_once_activation_memory_crosses_the_guests_memory():
    small = scenarios.build(hardware(memory_gib=97), boot_t=0.0)["times"]
    smaller = scenarios.build(hardware(memory_gib=64), boot_t=0.0)["times"]
    assert small["activating"] < small["oom"] < small["activating"] + 120
    assert smaller["oom"] < small["oom"]  # less memory, sooner
    assert small["deploy_failed"] > small["oom"]


def test_overcommit_stalls_grow_from_100_ms_to_seconds_before_the_panic():
    scenario = scenarios.build(hardware(vcpus=24), boot_t=0.0)
    stalls = scenario["stalls"]
    lengths = [ms for _, ms in stalls]
    assert lengths[0] == 100 and max(lengths) >= 2000 and lengths == sorted(lengths)
    assert all(scenario["times"]["activating"] < at < scenario["times"]["panic"] for at, _ in stalls)
    assert scenarios.build(hardware(), boot_t=0.0)["stalls"] == []  # the field's good run had none over 76 ms


def test_the_scenario_file_keeps_no_password_nor_a_hash_of_one():
    """The guest's vcli logs in to its VMS, which holds the password in memory: the guest needs no
    copy of it, not even an (unsalted, brute-forceable) sha256 as it once had."""
    text = json.dumps(scenarios.build(hardware(), boot_t=0.0))
    assert "password_sha256" not in text and "vms_auth" not in text and not re.search(r"[0-9a-fA-F]{64}", text)


def test_on_boot_puts_tools_on_the_disk_and_clock_and_scenario_in_run(tmp_path):
    from backend.clock import Clock
    from backend.lab.vast import GuestPaths

    guest = GuestPaths(tmp_path / "disk", tmp_path / "runtime")
    clock = Clock.scaled(120.0)
    scenario = scenarios.on_boot(guest, hardware(vcpus=24), clock)
    assert scenario["name"] == "overcommit" and scenario["boot_t"] == pytest.approx(clock.now(), abs=5)
    assert (tmp_path / "disk/vast/bundles/vast_bootstrap.sh").stat().st_mode & 0o111
    assert (tmp_path / "disk/vast/deploy/vman.sh").exists() and (tmp_path / "disk/opt/lab/vast/player.py").exists()
    assert scenarios.read_guest_scenario(guest)["name"] == "overcommit"
    assert (tmp_path / "runtime/run/lab/vast/scenario.json").exists()
    assert '"scale": 120.0' in (tmp_path / "runtime/run/lab/clock.json").read_text()
