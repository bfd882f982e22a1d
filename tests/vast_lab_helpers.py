"""Helpers for the lab VAST tests: a guest root in a temporary directory with a fast lab clock, the
scenario and the VAST tool stand-ins installed, and a way to run the tools there (no namespace:
LAB_ROOT points the player at the directory). A cluster create logs in to the guest's VMS, so
`create` gives the guest one for its duration (`serve_vms`), as the lab does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.clock import Clock
from backend.lab import scenarios
from backend.lab.vast import EVENTS_PATH, install_guest_files, write_guest_vms_address
from backend.lab.vast.vaststate import VastWorld, fold, read_events
from backend.lab.vms.server import VmsServer
from backend.lab.world import GuestHardware
from backend.lab.worldclock import evaluate

FIELD_START = 1767033133.0  # 2025-12-29 18:32:13 UTC: the lab clock starts where the field run did
IP = "192.168.30.109"
BUILD = "release-5-4-0-2043819"
FIELD_EXTRA_MOUNTS = "-v /file_server:/file_server"  # what the field's script exported for vman.sh
HOLD_LAPSE_WALL_S = 120.0  # a held clock runs on by itself after this (a tool that never starts)
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
    _releasers: list[threading.Thread] = field(default_factory=list)
    _clock_lock: threading.RLock = field(default_factory=threading.RLock)

    def write_clock(self, speed: float, origin_target: float = FIELD_START, *, held: bool = False) -> None:
        """The guest's lab clock: `speed`-fold from `origin_target` now; `held`: standing at
        `origin_target` until `release_clock` (the lab's own work, e.g. this test's setup, is no lab
        time: backend/lab/worldclock.py)."""
        for releaser in list(self._releasers):
            releaser.join()  # a tool's release is older than this write: never over it
            self._releasers.remove(releaser)
        self._write_clock(speed, origin_target, held)

    def _write_clock(self, speed: float, origin_target: float, held: bool) -> None:
        with self._clock_lock:
            self.speed = speed
            clock = self.root / "run/lab/clock.json"
            clock.parent.mkdir(parents=True, exist_ok=True)
            tmp = clock.with_suffix(".tmp")
            now = time.time()
            holds = [[origin_target, now + HOLD_LAPSE_WALL_S]] if held else []
            tmp.write_text(json.dumps({"scale": speed, "origin_wall": now, "origin_target": origin_target,
                                       "holds": holds}))
            os.replace(tmp, clock)

    def _clock(self) -> dict:
        return json.loads((self.root / "run/lab/clock.json").read_text())

    def release_clock(self) -> None:
        """Let a held clock run on from where it stands."""
        with self._clock_lock:
            data = self._clock()
            if data.get("holds"):
                now = evaluate(data["scale"], data["origin_wall"], data["origin_target"],
                               [tuple(h) for h in data["holds"]], time.time())
                self._write_clock(data["scale"], now, held=False)

    def _launch(self, argv: list[str], env: dict[str, str], stdin: int | None = None) -> subprocess.Popen:
        """Start a tool; a held clock runs on once the tool has started (its start recorded in the
        world's events) or ended: the tool's own start-up is the lab's work, not the world's time."""
        tools = sum(e.get("tool") is not None and e.get("phase") == "started" for e in self.events())
        process = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not self._clock().get("holds"):
            return process

        def release_when_started() -> None:
            deadline = time.monotonic() + HOLD_LAPSE_WALL_S
            while process.poll() is None and time.monotonic() < deadline and tools == sum(
                    e.get("tool") is not None and e.get("phase") == "started" for e in self.events()):
                time.sleep(0.005)
            self.release_clock()

        releaser = threading.Thread(target=release_when_started, daemon=True)
        releaser.start()
        self._releasers.append(releaser)
        return process

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "LAB_ROOT": str(self.root), "LAB_DOCKER": str(self.root / "fake-docker"),
                "LAB_PYTHON": sys.executable, "LAB_VAST_PLAYER": str(self.root / "opt/lab/vast/player.py"), **extra}

    def run(self, script: str, *args: str, timeout: float = 30, stdin: str = "",
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run /vast/bundles/vast_bootstrap.sh or /vast/deploy/vman.sh of this guest with bash."""
        argv = ["bash", str(self.root / script.lstrip("/")), *args]
        process = self._launch(argv, self.env(**(env or {})), stdin=subprocess.PIPE)
        try:
            out, err = process.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        return subprocess.CompletedProcess(argv, process.returncode, out, err)

    def start(self, script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return self._launch(["bash", str(self.root / script.lstrip("/")), *args], self.env(**(env or {})))

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
    guest.write_clock(speed, held=True)  # until its first tool starts
    return guest
