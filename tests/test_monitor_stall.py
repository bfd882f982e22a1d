"""The stall detector against real stalls: the agent process is stopped with SIGSTOP and continued
with SIGCONT after 50, 100, 300 and 1000 ms (how the lab injects stalls). Every stall must be seen,
its length within 10 % or 10 ms. On a loaded machine one run may meet a real scheduling hiccup of
its own: an outlier run is retried once; the measured errors are printed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import monitor_snapshots as snap
from tests.monitor_support import AgentProcess, fake_root, overlapping_gap, rewrite, stop_for

LENGTHS_MS = (50, 100, 300, 1000)


def _run_stalls(root: Path, tick: str) -> tuple[list[tuple[float, float, dict | None]], dict]:
    with AgentProcess("--root", str(root), "--interval", "0.2", "--tick", tick, "--kmsg", "") as run:
        run.line("hello")
        run.line("sample")
        injected = []
        for length in LENGTHS_MS:
            injected.append((length, *stop_for(run.process.pid, length / 1000)))
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        sample = run.line("sample")
        while time.monotonic() < deadline and not overlapping_gap(
                [line for line in run.seen if line["type"] == "gap"], *injected[-1][1:]):
            sample = run.line("sample")
        sample = run.line("sample")  # its histogram counts every gap reported before it
        gaps = [line for line in run.seen if line["type"] == "gap"]
    results = []
    for length, start, end in injected:
        real_ms = (end - start) * 1000
        results.append((length, real_ms, overlapping_gap(gaps, start, end)))
    return results, sample


def _failures(results: list[tuple[float, float, dict | None]]) -> list[str]:
    bad = []
    for length, real_ms, gap in results:
        if gap is None:
            bad.append(f"{length} ms stall not seen")
        elif abs(gap["length_ms"] - real_ms) > max(10.0, 0.1 * real_ms):
            bad.append(f"{length} ms stall: real {real_ms:.1f} ms, seen {gap['length_ms']} ms")
    return bad


@pytest.mark.parametrize("tick", ["0.02", "0"])
def test_every_stop_is_seen_with_its_real_length(tmp_path, tick):
    root = fake_root(tmp_path)
    results, sample = _run_stalls(root, tick)
    if _failures(results):  # a loaded machine: retry an outlier run once
        print("retrying after:", _failures(results))
        results, sample = _run_stalls(root, tick)
    for length, real_ms, gap in results:
        seen = gap["length_ms"] if gap else None
        print(f"tick {tick}: injected {length} ms, real {real_ms:.2f} ms, seen {seen} ms ({gap and gap['how']}), "
              f"error {seen - real_ms if seen is not None else float('nan'):+.2f} ms")
    assert not _failures(results)
    assert all(gap["how"] == "stop" for _, _, gap in results)
    assert sum(sample["gaps_hist"].values()) >= len(LENGTHS_MS)


def _freezer(pid: int) -> Path | None:
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        group = root / f"vlb-test-freeze-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        if (group / "cgroup.freeze").exists():
            try:
                (group / "cgroup.procs").write_text(str(pid))
                return group
            except OSError:
                pass
        group.rmdir()
    return None


@pytest.mark.parametrize(("idle_tick", "err_ms"), [("0.02", 10.0), (None, 20.0)])
def test_a_freeze_without_signal_is_bounded_by_the_tick(tmp_path, idle_tick, err_ms):
    """A stall the process is not told about (like a vCPU descheduled by the host): the cgroup
    freezer. Only the tick's lateness sees it: the length is within the reported err_ms, half the
    tick (20 ms while the guest is busy, 40 ms once the fake root's guest has been idle a while)."""
    root = fake_root(tmp_path)
    idle = ["--idle-tick", idle_tick] if idle_tick else []
    with AgentProcess("--root", str(root), "--interval", "0.2", "--tick", "0.02", *idle, "--kmsg", "") as run:
        run.line("hello")
        for _ in range(5):  # 3 idle samples: the idle tick
            run.line("sample")
        group = _freezer(run.process.pid)
        if group is None:
            pytest.skip("no cgroup v2 freezer writable here")
        try:
            offset = time.time() - time.monotonic()
            a = time.monotonic()
            (group / "cgroup.freeze").write_text("1")
            start = (a + time.monotonic()) / 2
            time.sleep(0.3)
            c = time.monotonic()
            (group / "cgroup.freeze").write_text("0")
            end = (c + time.monotonic()) / 2
        finally:
            for pid in (group / "cgroup.procs").read_text().split():
                (group.parent / "cgroup.procs").write_text(pid)
            group.rmdir()
        run.line("sample")
        run.line("sample")
        gaps = [line for line in run.seen if line["type"] == "gap"]
    gap = overlapping_gap(gaps, start + offset, end + offset)
    real_ms = (end - start) * 1000
    assert gap is not None and gap["how"] == "late" and gap["err_ms"] == err_ms
    print(f"freeze: real {real_ms:.1f} ms, seen {gap['length_ms']} +- {gap['err_ms']} ms")
    assert abs(gap["length_ms"] - real_ms) <= gap["err_ms"] + 5.0


def test_the_tick_slows_only_while_the_guest_is_idle_and_says_so(tmp_path):
    """Idle guest (no CPU time moves in /proc/stat): after 3 samples the tick doubles to 40 ms; work
    in a sample or a stall brings the 20 ms tick back at once. Every sample's hb says which tick
    ran; a stall's gap line carries its own bound."""
    root = fake_root(tmp_path)
    with AgentProcess("--root", str(root), "--interval", "0.1", "--kmsg", "") as run:
        hello = run.line("hello")
        assert (hello["tick"], hello["idle_tick"]) == (0.02, 0.04)
        idle = [run.line("sample")["hb"]["tick_ms"] for _ in range(5)]
        assert idle[:3] == [20.0, 20.0, 20.0] and idle[-1] == 40.0
        rewrite(root / "proc" / "stat", snap.STAT_B)  # 2.5 cores of work in one sample
        busy = [run.line("sample")["hb"]["tick_ms"] for _ in range(8)]
        assert 20.0 in busy[:3] and busy[-1] == 40.0  # busy once, idle again 3 samples later
        stop_for(run.process.pid, 0.1)
        stalled = [run.line("sample")["hb"]["tick_ms"] for _ in range(3)]
        assert 20.0 in stalled
    with AgentProcess("--root", str(root), "--interval", "0.1", "--idle-tick", "0.02", "--kmsg", "") as run:
        assert run.line("hello")["idle_tick"] == 0.02
        assert {run.line("sample")["hb"]["tick_ms"] for _ in range(6)} == {20.0}
