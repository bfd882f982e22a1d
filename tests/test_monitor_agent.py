"""The monitoring agent's numbers on hand-made /proc snapshots: CPU as mpstat computes it, disks as
iostat computes it, memory, load, OOM kills; and the agent itself, run on a fake root, reporting
them, degrading part by part when files are missing, and ending cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.monitor import agent, agent_source
from tests import monitor_snapshots as snap
from tests.monitor_support import AGENT_PYTHON, PY36, AgentProcess, fake_root, rewrite, write


def test_cpu_is_the_sum_of_per_cpu_deltas_like_mpstat():
    prev, _ = agent.parse_stat(snap.STAT_A)
    cur, procs = agent.parse_stat(snap.STAT_B)
    assert agent.cpu_percent(prev, cur) == snap.CPU_EXPECTED
    assert procs == {"procs_running": 7, "procs_blocked": 3}


def test_cpu_counters_going_backwards_count_zero_and_offline_cpus_are_left_out():
    prev, _ = agent.parse_stat("cpu0 100 0 100 800 0 0 0 0 0 0\ncpu1 10 0 10 80 0 0 0 0 0 0\n"
                               "cpu2 10 0 10 80 0 0 0 0 0 0\n")
    # cpu0: idle went back 5 ticks (counts 0) while user +50 and steal +50; cpu1 went offline (no
    # line); cpu3 came online without a reference: both are left out.
    cur, _ = agent.parse_stat("cpu0 150 0 100 795 0 0 0 50 0 0\ncpu2 20 0 20 160 0 0 0 0 0 0\n"
                              "cpu3 1 0 1 1 0 0 0 0 0 0\n")
    result = agent.cpu_percent(prev, cur)
    # cpu0 interval 100 (50 user + 50 steal, idle 0), cpu2 interval 100 (10 user, 10 sys, 80 idle)
    assert result == {"user": 30.0, "nice": 0.0, "sys": 5.0, "iowait": 0.0, "irq": 0.0, "soft": 0.0,
                      "steal": 25.0, "idle": 40.0, "steal_max_cpu": 50.0, "ncpu": 2}


def test_an_idle_tickless_interval_does_not_divide_by_zero():
    prev, _ = agent.parse_stat(snap.STAT_A)
    result = agent.cpu_percent(prev, prev)
    assert result["idle"] == 0.0 and result["ncpu"] == snap.NCPU


def test_disks_are_computed_like_iostat_with_32_bit_tick_counters(tmp_path):
    for name in snap.SYS_BLOCK:
        (tmp_path / "block" / name).mkdir(parents=True)
    names = agent.list_disks(str(tmp_path))
    assert names == {"sda", "sdb"}  # no loop, zram, dm-* nor partitions
    assert agent.list_disks(str(tmp_path), all_disks=True) == {"sda", "sdb", "dm-0"}
    prev = agent.parse_diskstats(snap.diskstats(snap.DISK_A), names)
    cur = agent.parse_diskstats(snap.diskstats(snap.DISK_B), names)
    assert agent.disk_rates(prev, cur, snap.DT) == snap.DISKS_EXPECTED


def test_a_device_that_was_reset_counts_zero_and_a_new_device_waits_for_its_second_sample():
    prev = {"sda": (100, 800, 50, 10, 80, 5, 100, 200)}
    cur = {"sda": (10, 80, 5, 1, 8, 1, 10, 20), "sdc": (5, 5, 5, 5, 5, 5, 5, 5)}
    rates = agent.disk_rates(prev, cur, 1.0)
    assert set(rates) == {"sda"}
    assert rates["sda"]["r_s"] == 0.0 and rates["sda"]["r_await"] == 0.0


def test_memory_load_and_oom_kills():
    assert agent.parse_meminfo(snap.MEMINFO) == snap.MEM_EXPECTED
    old_kernel = agent.parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n")
    assert old_kernel["available"] == 310 * 1024 and old_kernel["used"] == 690 * 1024
    assert agent.parse_loadavg(snap.LOADAVG) == ([38.52, 21.07, 9.33], 14, 1342)
    assert agent.parse_vmstat_counter(snap.VMSTAT, "oom_kill") == 2
    assert agent.parse_vmstat_counter("oom_kill 7\nx 1\n", "oom_kill") == 7
    assert agent.parse_vmstat_counter("pgmajfault 1\n", "oom_kill") is None


def test_the_agent_reports_the_snapshots_on_a_fake_root(tmp_path):
    root = fake_root(tmp_path, psi=True)
    with AgentProcess("--root", str(root), "--interval", "0.5", "--count", "2", "--tick", "0.02") as run:
        hello = run.line("hello")
        # the agent has read snapshot A before saying hello; B is written in place, as the lab does
        rewrite(root / "proc" / "stat", snap.STAT_B)
        rewrite(root / "proc" / "diskstats", snap.diskstats(snap.DISK_B))
        for name in ("cpu", "memory", "io"):
            rewrite(root / "proc" / "pressure" / name, "some avg10=1.00 avg60=0.00 avg300=0.00 total=101000\n"
                    + ("" if name == "cpu" else "full avg10=0.00 avg60=0.00 avg300=0.00 total=500\n"))
        sample = run.line("sample")
        second = run.line("sample")
        assert run.process.wait(10) == 0
    assert hello["version"] == agent.VERSION and hello["ncpu"] == snap.NCPU and hello["interval"] == 0.5
    assert hello["python"].startswith("3.6") or PY36 is None
    assert [w["part"] for w in hello["warnings"]] == ["containers"]  # no cgroup tree under the fake root
    assert sample["cpu"] == snap.CPU_EXPECTED
    assert sample["mem"] == snap.MEM_EXPECTED
    assert (sample["load"], sample["runnable"], sample["tasks"], sample["blocked"]) == ([38.52, 21.07, 9.33], 14, 1342, 3)
    assert sample["oom_kill"] == 2
    assert set(sample["disks"]) == {"sda", "sdb"}
    for name, expected in snap.DISKS_EXPECTED.items():
        got = sample["disks"][name]
        assert (got["r_await"], got["w_await"]) == (expected["r_await"], expected["w_await"])
        # rates are per second of the agent's own monotonic interval
        assert got["r_s"] == pytest.approx(expected["r_s"] * snap.DT / sample["dt"], rel=0.02)
    assert sample["psi"]["cpu_some"] == pytest.approx(100000 / 1e4 / sample["dt"], rel=0.02)
    assert sample["hb"]["n"] > 0 and sample["hb"]["max_ms"] >= 0
    assert sample["gaps_hist"] == {"50": 0, "100": 0, "250": 0, "500": 0, "1000": 0, "2000": 0, "5000": 0}
    assert sample["agent_cpu_s"] > 0 and second["agent_cpu_s"] >= sample["agent_cpu_s"]
    assert second["disks"]["sda"]["r_s"] == 0.0  # nothing changed between the second and third read


def test_missing_parts_degrade_alone_and_are_reported_once(tmp_path):
    root = tmp_path / "root"
    write(root / "proc" / "stat", snap.STAT_A)
    write(root / "proc" / "meminfo", snap.MEMINFO)
    with AgentProcess("--root", str(root), "--interval", "0.3", "--count", "2") as run:
        hello = run.line("hello")
        run.line("sample")
        sample = run.line("sample")
        assert run.process.wait(10) == 0
    parts = [w["part"] for w in hello["warnings"]]
    for part in ("psi", "containers", "kmsg", "disks", "load", "oom_kill"):
        assert part in parts, parts
    assert len(parts) == len(set(parts))
    assert "cpu" in sample and "mem" in sample and "disks" not in sample
    assert not [line for line in run.seen if line["type"] == "warn"]  # already said in hello


def test_a_part_failing_later_is_one_warn_line(tmp_path):
    root = fake_root(tmp_path)
    with AgentProcess("--root", str(root), "--interval", "0.3", "--count", "4") as run:
        run.line("sample")
        rewrite(root / "proc" / "loadavg", "")  # the agent keeps /proc files open: a read that fails
        warn = run.line("warn")
        run.line("sample")
        last = run.line("sample")
    assert warn["part"] == "load" and "loadavg" in warn["text"]
    assert "load" not in last and "cpu" in last
    assert sum(1 for line in run.seen if line["type"] == "warn") == 1


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "stdout closed"])
def test_the_agent_ends_cleanly(tmp_path, how):
    root = fake_root(tmp_path)
    process = subprocess.Popen([AGENT_PYTHON, str(agent.__file__), "--root", str(root), "--interval", "0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(process.stdout.readline())["type"] == "hello"
    if how == "stdout closed":
        process.stdout.close()
    else:
        os.kill(process.pid, getattr(signal, how))
    code = process.wait(10)
    assert code == 0, process.stderr.read()
    assert b"Traceback" not in process.stderr.read()


def test_agent_print_is_exactly_the_shipped_file(capsys):
    from tui.cli import main

    assert main(["agent", "--print"]) == 0
    assert capsys.readouterr().out == agent_source() == Path(agent.__file__).read_text()


def test_the_agent_is_python_3_6_compatible():
    vermin = Path(sys.executable).parent / "vermin"
    if not vermin.exists():
        pytest.skip("vermin is not installed in the venv")
    result = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", agent.__file__],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_runs_under_python_3_6(tmp_path):
    if PY36 is None:
        pytest.skip("no Python 3.6 on this machine (the guest's platform-python)")
    root = fake_root(tmp_path)
    started = time.monotonic()
    result = subprocess.run([PY36, str(agent.__file__), "--root", str(root), "--interval", "0.2", "--count", "1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["hello", "sample"]
    assert lines[0]["python"].startswith("3.6")
    assert time.monotonic() - started < 20


def test_proc_files_stay_open_and_are_read_whole_and_afresh(tmp_path):
    """/proc files are kept open and read from offset 0 at each sample: a file longer than the
    first buffer comes whole, a rewrite shows at the next read, a failing file is opened again."""
    big = write(tmp_path / "stat", "cpu0 " + "1 " * 5000 + "\n")
    files = agent.ProcFiles()
    assert files.read(str(big)) == big.read_text()
    assert files.read(str(big)) == big.read_text()  # the grown buffer is kept
    rewrite(big, "cpu0 2\n")
    assert files.read(str(big)) == "cpu0 2\n"
    os.close(files.fds[str(big)])  # a read that fails: the file is opened again next time
    with pytest.raises(OSError):
        files.read(str(big))
    assert files.read(str(big)) == "cpu0 2\n"


def _oom_counts(root: Path, kmsg: bool) -> tuple[list[int], list[int]]:
    """oom_kill in the samples after the counter rose without a kernel line, then with one."""
    args = ["--root", str(root), "--interval", "0.1", "--tick", "0"] + ([] if kmsg else ["--kmsg", ""])
    with AgentProcess(*args) as run:
        run.line("hello")
        run.line("sample")
        rewrite(root / "proc" / "vmstat", snap.VMSTAT.replace("oom_kill 2", "oom_kill 3"))
        before = [run.line("sample")["oom_kill"] for _ in range(4)]
        with open(root / "dev" / "kmsg", "a") as handle:
            handle.write("3,1202,812345700,-;Out of memory: Killed process 48213 (vms)\n")
        after = [run.line("sample")["oom_kill"] for _ in range(3)]
    return before, after


def test_oom_kills_are_counted_again_when_the_kernel_reports_one(tmp_path):
    """/proc/vmstat (the dearest file) is read again after a kernel OOM line when kernel messages
    are followed; without them, at every sample."""
    before, after = _oom_counts(fake_root(tmp_path / "kmsg"), kmsg=True)
    assert before == [2, 2, 2, 2] and after[-1] == 3  # within 30 samples, only the OOM line reads it
    before, _ = _oom_counts(fake_root(tmp_path / "plain"), kmsg=False)
    assert before[-1] == 3


def test_the_agent_splits_its_own_cpu_by_part(tmp_path):
    root = fake_root(tmp_path)
    with AgentProcess("--root", str(root), "--interval", "0.2", "--count", "6") as run:
        samples = [run.line("sample") for _ in range(6)]
    first, last = samples[1]["agent_cpu"], samples[-1]["agent_cpu"]
    assert set(last) == {"tick", "kmsg", "sample", "out"}
    assert all(last[part] >= first[part] >= 0 for part in last)
    assert last["tick"] > first["tick"] and last["sample"] > first["sample"]
    assert sum(last.values()) <= samples[-1]["agent_cpu_s"] + 0.001
