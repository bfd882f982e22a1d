"""The lab guest as part of the lab's world: it outlives the lab process, follows a load model in its
/proc files, can be paused, snapshotted and rolled back, and talks to the Proxmox side through the
world's protocols."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backend.lab.guest import support
from backend.lab.guest.load import LoadPoint
from backend.lab.shutdown import end_guests
from tests.lab_fixtures import boot, connect, fresh_guest, hardware, open_lab  # noqa: F401


def _cpu(stat: str) -> list[int]:
    return [int(x) for x in stat.split("\n", 1)[0].split()[1:9]]


async def test_the_guest_outlives_the_lab_process_with_its_detached_job(tmp_path):
    lab = open_lab(tmp_path / "lab")
    try:
        guest = boot(lab, hardware(100))
        async with connect(guest) as conn:
            await conn.run("setsid nohup bash -c 'while sleep 0.05; do date +%s%N >> /tmp/ticks; done' "
                           ">/dev/null 2>&1 < /dev/null &", check=True)
        holder = lab.guest(100).holder
        lab.close()  # the lab process goes away; the guest does not
        assert holder is not None and holder.alive()
        time.sleep(0.2)

        lab = open_lab(tmp_path / "lab")
        assert lab.boot_state(100) == "up"
        assert lab.guest(100).holder == holder
        guest = guest.__class__(lab, 100, guest.hw)
        async with connect(guest) as conn:
            ticks = int((await conn.run("wc -l < /tmp/ticks")).stdout)
            await asyncio.sleep(0.2)
            later = int((await conn.run("wc -l < /tmp/ticks")).stdout)
        assert later > ticks > 2
    finally:
        lab.shutdown()


def test_a_guest_whose_namespace_died_meanwhile_is_booted_again(tmp_path):
    lab = open_lab(tmp_path / "lab")
    try:
        guest = boot(lab, hardware(100))
        first = lab.guest(100).holder
        lab.close()
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        time.sleep(0.1)
        lab = open_lab(tmp_path / "lab")
        assert lab.boot_state(100) in ("booting", "up")
        assert lab.wait_state(100, "up") == "up"
        assert lab.guest(100).holder != first
        assert guest.vmid == 100
    finally:
        lab.shutdown()


def test_a_lab_closed_while_a_guest_boots_leaves_nothing_end_guests_cannot_end(tmp_path):
    """The lab closed while a guest's namespace was starting (a short run ends as its VM boots):
    the namespace still starts, and its record names it, so end_guests ends it and a later lab
    boots the guest afresh instead of leaving a second one running."""
    starting, go_on = threading.Event(), threading.Event()

    def slow_boot_hook(disk, runtime, hw):  # noqa: ANN001 - the lab's BootHook
        starting.set()
        go_on.wait(10)

    lab = open_lab(tmp_path / "lab", on_boot=slow_boot_hook)
    try:
        lab.power_on(hardware(100))
        assert starting.wait(30)
        threading.Timer(0.3, go_on.set).start()  # the boot finishes while the lab is closing
        lab.close()
        first = lab.guest(100).holder
        assert first is not None and first.alive()  # recorded before close() returned

        lab = open_lab(tmp_path / "lab")  # a resume: the half-done boot is ended and done again
        assert lab.wait_state(100, "up") == "up"
        assert not first.alive() and lab.guest(100).holder != first
        lab.close()
        assert end_guests(tmp_path / "lab") == 1
        assert not lab.guest(100).holder.alive()
    finally:
        lab.shutdown()


async def test_proc_files_follow_the_load_model(fresh_guest):
    lab, vmid = fresh_guest.lab, fresh_guest.vmid

    class Busy:
        def at(self, lab_time: float) -> LoadPoint:
            return LoadPoint(user=60.0, system=10.0, steal=20.0, load=(31.5, 28.0, 22.25), tasks=812,
                             mem_available=4 * 1024**3, cached=2 * 1024**3)

    lab.set_load(vmid, Busy())
    async with connect(fresh_guest) as conn:
        await asyncio.sleep(0.3)
        first = (await conn.run("cat /proc/stat")).stdout
        await asyncio.sleep(1.0)
        second = (await conn.run("cat /proc/stat")).stdout
        loadavg = (await conn.run("cat /proc/loadavg")).stdout.split()
        available = (await conn.run("awk '/MemAvailable/ {print $2}' /proc/meminfo")).stdout
        cpus = (await conn.run("grep -c '^cpu[0-9]' /proc/stat")).stdout
    delta = [b - a for a, b in zip(_cpu(first), _cpu(second), strict=True)]
    total = sum(delta)
    assert 12 * 100 * 0.8 < total < 12 * 100 * 1.5  # 12 CPUs x USER_HZ x ~1 s
    assert delta[0] / total == pytest.approx(0.60, abs=0.03)
    assert delta[7] / total == pytest.approx(0.20, abs=0.03)
    assert loadavg[:4] == ["31.50", "28.00", "22.25", "1/812"]
    assert int(available) == 4 * 1024**2
    assert cpus == "12\n"


async def test_pause_stops_every_guest_process_for_lab_time(fresh_guest):
    lab, vmid = fresh_guest.lab, fresh_guest.vmid
    async with connect(fresh_guest) as conn:
        await conn.run("setsid nohup sleep 30 >/dev/null 2>&1 < /dev/null &", check=True)
        stopped = lab.pause(vmid, 120_000)  # 120 lab-seconds = 0.2 s at speed 600
        assert stopped >= 2
        def states() -> set[str]:
            found = set()
            for pid in lab.guest(vmid).processes():
                with contextlib.suppress(OSError):
                    found.add(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])
            return found

        for _ in range(50):  # signals are delivered asynchronously
            if states() == {"T"}:
                break
            await asyncio.sleep(0.005)
        assert states() == {"T"}
        await asyncio.sleep(0.8)
        result = await conn.run("ps -o stat= -C sleep")
    assert result.stdout.strip().startswith("S")


async def test_a_command_a_stall_stopped_still_reports_its_end(fresh_guest):
    """The session's nsenter stops itself when its command is stopped (util-linux); a stall of the
    guest must not leave the session hanging once the command has ended."""
    lab, vmid = fresh_guest.lab, fresh_guest.vmid
    async with connect(fresh_guest) as conn:
        command = asyncio.ensure_future(conn.run("sleep 0.5; echo done"))
        while "sleep" not in lab.guest(vmid).holder.commands():
            await asyncio.sleep(0.005)
        assert lab.pause(vmid, 60_000) >= 2  # 60 lab-seconds: 0.1 s at speed 600
        result = await asyncio.wait_for(command, timeout=15)  # a guard: it ends within a second
    assert (result.exit_status, result.stdout) == (0, "done\n")


async def test_snapshot_and_rollback_bring_the_disk_back(fresh_guest):
    lab, vmid = fresh_guest.lab, fresh_guest.vmid
    async with connect(fresh_guest) as conn:
        await conn.run("echo before > /home/centos/marker", check=True)
        lab.snapshot(vmid, "pre-install")
        await conn.run("echo after > /home/centos/marker && sudo touch /etc/after", check=True)
    lab.power_off(vmid, graceful=True)
    lab.rollback(vmid, "pre-install")
    lab.power_on(fresh_guest.hw)
    assert lab.wait_state(vmid, "up") == "up"
    async with connect(fresh_guest) as conn:
        result = await conn.run("cat /home/centos/marker; test -e /etc/after; echo $?; touch /home/centos/w && echo ok")
    assert result.stdout == "before\n1\nok\n"


async def test_the_guest_agent_and_a_reboot_from_inside_go_through_the_world(tmp_path):
    asked: list[tuple[int, str]] = []

    class Power:
        def guest_initiated(self, vmid: int, action: str) -> None:
            asked.append((vmid, action))

    lab = open_lab(tmp_path / "lab", power=Power())
    try:
        guest = boot(lab, hardware(100))
        assert not lab.agent_running(100) and lab.agent_interfaces(100) == []
        async with connect(guest) as conn:
            await conn.run("sudo dnf install -y qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent",
                           check=True)
        assert lab.agent_running(100)
        eth0 = lab.agent_interfaces(100)[1]
        assert eth0["name"] == "eth0" and eth0["hardware-address"] == "bc:24:11:5a:3c:09"
        assert eth0["ip-addresses"][0] == {"ip-address-type": "ipv4", "ip-address": "192.168.30.109", "prefix": 24}
        async with connect(guest) as conn:
            result = await asyncio.wait_for(conn.run("sudo poweroff"), timeout=5.0)
        assert result.exit_status is None  # the connection dropped under the command: no exit status
        assert asked == [(100, "poweroff")]
        assert lab.wait_state(100, "off") == "off"
        assert not lab.guest(100).processes()
    finally:
        lab.shutdown()


async def test_boot_hook_target_fields_and_resume_serve_the_rest_of_the_lab(tmp_path):
    booted: list[tuple[str, int]] = []

    def on_boot(disk: Path, runtime: Path, hw) -> None:
        (disk / "opt/lab").mkdir(parents=True, exist_ok=True)
        (disk / "opt/lab/tool.sh").write_text("#!/bin/bash\necho tool ran > /opt/lab/out\n")
        (disk / "opt/lab/tool.sh").chmod(0o755)
        (runtime / "run/lab/scenario.json").write_text('{"boot": 1}')
        booted.append((runtime.name, hw.vmid))

    lab = open_lab(tmp_path / "lab", on_boot=on_boot)
    try:
        guest = boot(lab, hardware(100))
        assert booted == [("runtime", 100)]
        async with connect(guest) as conn:
            result = await conn.run("sudo /opt/lab/tool.sh && cat /opt/lab/out /run/lab/scenario.json")
        assert result.stdout == 'tool ran\n{"boot": 1}'
        fields = lab.target_fields()
        assert fields["route"]("192.168.30.109", 22) == guest.address
        assert fields["known_hosts"].read_text().startswith("192.168.30.109 ssh-ed25519 ")
        assert fields["guest_password"].reveal() == "centos"
        lab.resume([hardware(100), hardware(101, ip="192.168.30.110")])
        assert lab.wait_state(101, "up") == "up" and lab.boot_state(100) == "up"
        assert len(booted) == 2
    finally:
        lab.shutdown()


def test_routes_and_known_hosts_name_the_labs_key(fresh_guest):
    lab = fresh_guest.lab
    host, port = lab.route("192.168.30.109", 22)
    assert host == "127.0.0.1" and port == lab.guest(100).ssh_port
    assert lab.route("10.1.2.3", 22) == ("10.1.2.3", 22)
    lab.add_route("192.168.30.109", 443, ("127.0.0.1", 8443))
    assert lab.route("192.168.30.109", 443) == ("127.0.0.1", 8443)
    key = " ".join(lab.host_key().split()[:2])
    assert lab.known_hosts_path().read_text().splitlines() == [f"192.168.30.109 {key}", f"[127.0.0.1]:{port} {key}"]


def test_without_user_namespaces_the_lab_says_so_in_one_sentence(monkeypatch):
    support.guest_unavailable_reason.cache_clear()

    def refuse(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "unshare: unshare failed: Operation not permitted\n")

    monkeypatch.setattr(support.subprocess, "run", refuse)
    try:
        reason = support.guest_unavailable_reason()
    finally:
        support.guest_unavailable_reason.cache_clear()
    assert reason is not None
    assert reason.count(".") == 1 and reason.endswith("the lab guest is a Linux feature.")
    assert "user namespaces" in reason and "Operation not permitted" in reason


def test_a_guest_whose_state_directory_is_deleted_ends_itself(tmp_path):
    import shutil

    lab = open_lab(tmp_path / "lab")
    boot(lab, hardware(100))
    holder = lab.guest(100).holder
    lab.close()
    shutil.rmtree(tmp_path / "lab")
    deadline = time.monotonic() + 15
    while holder.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not holder.alive()
