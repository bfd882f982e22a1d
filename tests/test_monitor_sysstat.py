"""The agent's CPU and disk numbers against sysstat's own on the same hand-made snapshots.

mpstat and iostat read /proc/stat, /proc/uptime, /sys/block/<dev>/stat and count CPUs in
/sys/devices/system/cpu. Inside `unshare -r -m` (a private mount namespace, no root needed) those
paths are bind-mounted over with FIFOs fed snapshot A at the tool's first read and B at its second,
so each tool computes exactly one interval from our two snapshots; its %usr/%steal/... and
r/s, r_await, w_await, %util... must equal the agent's within the tools' 2-decimal rounding."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backend.monitor import agent
from tests import monitor_snapshots as snap


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not shutil.which("unshare") or not _namespaces_work(),
                                reason="needs `unshare -r -m` (user and mount namespaces)")


class Fifo:
    """A named pipe that hands out one snapshot per open, in order. Between two snapshots it
    waits until the reader surely closed the first (the tools read a few KB within milliseconds
    and open again only after their 1 s interval), so two snapshots never share one open."""

    def __init__(self, path: Path, contents: list[str]) -> None:
        self.path = path
        os.mkfifo(path)
        self.thread = threading.Thread(target=self._feed, args=(contents,), daemon=True)
        self.thread.start()

    def _feed(self, contents: list[str]) -> None:
        for number, text in enumerate(contents):
            if number:
                time.sleep(0.5)
            try:
                fd = os.open(self.path, os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            except OSError:
                return

    def release(self) -> None:
        """Unblock a feeder whose reader never came back (the tool failed)."""
        if self.thread.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            self.thread.join(2)


def run_tool(argv: list[str], binds: list[tuple[Path, str]], feeders: list[Fifo]) -> str:
    """Run `argv` in a private mount namespace with each (source, target) bind-mounted in order."""
    script = " && ".join(f"mount --bind '{source}' '{target}'" for source, target in binds)
    try:
        result = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script + " && exec " + " ".join(argv)],
                                capture_output=True, text=True, timeout=30, env={**os.environ, "LC_ALL": "C"})
    finally:
        for feeder in feeders:
            feeder.release()
    assert result.returncode == 0, result.stderr
    return result.stdout


def proc_fifos(tmp: Path) -> list[Fifo]:
    return [Fifo(tmp / "stat", [snap.STAT_A, snap.STAT_B]), Fifo(tmp / "uptime", [snap.UPTIME_A, snap.UPTIME_B])]


def fake_cpu_dir(tmp: Path) -> Path:
    cpus = tmp / "cpu"
    for n in range(snap.NCPU):
        (cpus / f"cpu{n}").mkdir(parents=True)
    return cpus


def columns(header: str, row: str) -> dict[str, str]:
    """A row of a sysstat table by column name (LC_ALL=C: one token per column)."""
    return dict(zip(header.split(), row.split(), strict=True))


def test_cpu_percentages_equal_mpstats(tmp_path):
    if shutil.which("mpstat") is None:
        pytest.skip("mpstat (sysstat) is not installed")
    cpus = fake_cpu_dir(tmp_path)
    feeders = proc_fifos(tmp_path)
    out = run_tool(["mpstat", "-P", "ALL", "1", "1"], [(feeders[0].path, "/proc/stat"),
                   (feeders[1].path, "/proc/uptime"), (cpus, "/sys/devices/system/cpu")], feeders)
    lines = [line for line in out.splitlines() if line and not line.startswith(("Linux", "Average"))]
    header = next(line for line in lines if "%usr" in line)
    rows = {line.split()[1]: columns(header, line) for line in lines if "%usr" not in line}
    ours = agent.cpu_percent(agent.parse_stat(snap.STAT_A)[0], agent.parse_stat(snap.STAT_B)[0])
    theirs = rows["all"]
    pairs = {"user": "%usr", "nice": "%nice", "sys": "%sys", "iowait": "%iowait", "irq": "%irq", "soft": "%soft",
             "steal": "%steal", "idle": "%idle"}
    print("mpstat all:", theirs)
    for key, column in pairs.items():
        assert ours[key] == pytest.approx(float(theirs[column]), abs=0.006), key
    per_cpu_steal = max(float(rows[str(n)]["%steal"]) for n in range(snap.NCPU))
    assert ours["steal_max_cpu"] == pytest.approx(per_cpu_steal, abs=0.006)


def test_disk_rates_and_latencies_equal_iostats(tmp_path):
    if shutil.which("iostat") is None:
        pytest.skip("iostat (sysstat) is not installed")
    cpus = fake_cpu_dir(tmp_path)
    feeders = proc_fifos(tmp_path)
    block = tmp_path / "block"
    for name in snap.DISK_A:  # iostat 12 reads /sys/block/<dev>/stat (11.x read /proc/diskstats)
        (block / name).mkdir(parents=True)
        feeders.append(Fifo(block / name / "stat", [snap.sys_block_stat(snap.DISK_A[name]),
                                                    snap.sys_block_stat(snap.DISK_B[name])]))
    out = run_tool(["iostat", "-x", "1", "2"], [(feeders[0].path, "/proc/stat"), (feeders[1].path, "/proc/uptime"),
                   (cpus, "/sys/devices/system/cpu"), (block, "/sys/block")], feeders)
    reports = out.split("Device")
    assert len(reports) == 3, out  # since boot, then our interval
    lines = [line for line in reports[2].splitlines() if line.strip()]
    header = "Device" + lines[0]
    rows = {line.split()[0]: columns(header, line) for line in lines[1:]}
    print("iostat:", rows)
    ours = agent.disk_rates(agent.parse_diskstats(snap.diskstats(snap.DISK_A), {"sda", "sdb"}),
                            agent.parse_diskstats(snap.diskstats(snap.DISK_B), {"sda", "sdb"}), snap.DT)
    pairs = {"r_s": "r/s", "w_s": "w/s", "rkb_s": "rkB/s", "wkb_s": "wkB/s", "r_await": "r_await",
             "w_await": "w_await", "aqu_sz": "aqu-sz", "util": "%util"}
    for disk in ("sda", "sdb"):
        for key, column in pairs.items():
            assert ours[disk][key] == pytest.approx(float(rows[disk][column]), abs=0.006), (disk, key)
