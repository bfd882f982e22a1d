"""Helpers for the lab VAST tests: a guest root in a temporary directory with a fast lab clock, the
scenario and the VAST tool stand-ins installed, and a way to run the tools there (no namespace:
LAB_ROOT points the player at the directory). A cluster create logs in to the guest's VMS, so
`create` gives the guest one for its duration (`serve_vms`), as the lab does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backend.clock import Clock
from backend.lab import scenarios
from backend.lab.vast import EVENTS_PATH, install_guest_files, write_guest_vms_address
from backend.lab.vast.vaststate import VastWorld, fold, read_events
from backend.lab.vms.server import VmsServer
from backend.lab.world import GuestHardware

FIELD_START = 1767033133.0  # 2025-12-29 18:32:13 UTC: the lab clock starts where the field run did
IP = "192.168.30.109"
BUILD = "release-5-4-0-2043819"
FIELD_EXTRA_MOUNTS = "-v /file_server:/file_server"  # what the field's script exported for vman.sh
VMS_PASSWORD = "123456"  # the VMS's admin password (the OVA's default)
FAKE_DOCKER = """#!/bin/sh
# records every call; `docker info` fails while $ROOT/docker-down exists (the daemon is not running)
echo "$*" >> "{root}/docker.calls"
if [ "$1" = info ] && [ -e "{root}/docker-down" ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi
exit 0
"""


def hardware(vcpus: int = 12, memory_gib: float = 120, host_cores: int = 12) -> GuestHardware:
    return GuestHardware(
        vmid=100, name="vast54", vcpus=vcpus, sockets=1, cores=vcpus, memory_mib=int(memory_gib * 1024),
        balloon_mib=0, cpu_type="host", scsihw="virtio-scsi-single", disk_iothread=True, disk_gib=1000,
        host_cores=host_cores, host_threads=host_cores * 2, host_cpu_model="AMD Ryzen Threadripper 2920X",
        mac="BC:24:11:00:00:01", ip=IP)


@dataclass
class Guest:
    root: Path
    scenario: dict
    speed: float

    def write_clock(self, speed: float, origin_target: float = FIELD_START) -> None:
        self.speed = speed
        clock = self.root / "run/lab/clock.json"
        clock.parent.mkdir(parents=True, exist_ok=True)
        tmp = clock.with_suffix(".tmp")
        tmp.write_text(json.dumps({"scale": speed, "origin_wall": time.time(), "origin_target": origin_target}))
        os.replace(tmp, clock)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "LAB_ROOT": str(self.root), "LAB_DOCKER": str(self.root / "fake-docker"),
                "LAB_PYTHON": sys.executable, "LAB_VAST_PLAYER": str(self.root / "opt/lab/vast/player.py"), **extra}

    def run(self, script: str, *args: str, timeout: float = 30, stdin: str = "",
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run /vast/bundles/vast_bootstrap.sh or /vast/deploy/vman.sh of this guest with bash."""
        return subprocess.run(["bash", str(self.root / script.lstrip("/")), *args], env=self.env(**(env or {})),
                              capture_output=True, timeout=timeout, input=stdin.encode(), check=False)

    def start(self, script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(["bash", str(self.root / script.lstrip("/")), *args], env=self.env(**(env or {})),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def bootstrap(self) -> subprocess.CompletedProcess:
        return self.run("/vast/bundles/vast_bootstrap.sh", "--interface", IP, "--skip-prompt")

    def create(self, name: str = "lb-vast54", password: str = VMS_PASSWORD,
               extra_mounts: str = FIELD_EXTRA_MOUNTS) -> subprocess.CompletedProcess:
        """vman.sh's cluster create, the password in its environment, with the guest's VMS up meanwhile,
        and EXTRA_VOLUME_MOUNTS exported as the field's script did ("" exports nothing)."""
        env = {"VMS_PASSWORD": password, **({"EXTRA_VOLUME_MOUNTS": extra_mounts} if extra_mounts else {})}
        server = serve_vms(self, self.root.with_name(self.root.name + "-vms"))
        if self.world().vms_up:  # listening before vcli knocks (its retries would cost lab time)
            server.wait_listening(True)
        try:
            return self.run("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", name, "--loopback", env=env)
        finally:
            server.stop()

    def events(self) -> list[dict]:
        return read_events(self.root / EVENTS_PATH.lstrip("/"))

    def world(self) -> VastWorld:
        return fold(self.events())

    def docker_calls(self) -> list[str]:
        path = self.root / "docker.calls"
        return path.read_text().splitlines() if path.exists() else []


CREATE_ARGS = (BUILD, "/vast/deploy/ssh_key.pem", "vcli", "-u", "admin", "-c", "cluster", "create", "--build", BUILD,
               "--vsettings", "CAS_OVER_RPC=true,IN_CLUSTER_COMMUNICATION_TCP=true")


def serve_vms(guest: Guest, state_dir: Path, **options) -> VmsServer:
    """The guest's VMS (admin / VMS_PASSWORD unless `options` say otherwise), its address written
    where the guest's vcli finds it, as the lab does when it gives a guest its VMS."""
    options.setdefault("password", VMS_PASSWORD)
    server = VmsServer(state_dir, Clock.scaled(guest.speed), guest.root, **options).start()
    write_guest_vms_address(guest.root, *server.address)
    return server


def make_guest(root: Path, hw: GuestHardware | None = None, speed: float = 20000.0,
               behaviour: scenarios.VastBehaviour | None = None) -> Guest:
    """A guest root with the VAST stand-ins, the scenario of `hw` (and of the lab's `behaviour` where
    nobody knows the real one) and a lab clock at `speed`."""
    hw = hw or hardware()
    install_guest_files(root, with_package=True)
    scenario = scenarios.write_guest_scenario(root, hw, boot_t=FIELD_START - 300, behaviour=behaviour)
    (root / "vast/deploy/ssh_key.pem").write_text("lab key\n")
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/kmsg").write_text("")
    docker = root / "fake-docker"
    docker.write_text(FAKE_DOCKER.format(root=root))
    docker.chmod(0o755)
    guest = Guest(root, scenario, speed)
    guest.write_clock(speed)
    return guest
