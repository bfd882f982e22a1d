"""One writer per run directory (issue 12, item 4): while a process drives a run, a second `--resume`
(or the wizard's resume) is refused with who holds it (pid, host, since), exit 2, and changes
nothing; once the first process is gone, the run resumes. The lock goes with its process, kill -9
included."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.run import service
from backend.run.runlock import RunInUse, RunLock
from tests.conftest import ctrl_c_reaches_it
from tests.security_support import REPO, stop_lab_guests

LAB_ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"
WAIT_S = 120.0


def vlb(*args: str) -> list[str]:
    return [sys.executable, "-W", "ignore", "-m", "tui.cli", *args]


def wait_for_step(run_dir: Path, process: subprocess.Popen, step: str) -> None:
    """Until the journal shows `step` started (the run is then well under way)."""
    deadline = time.monotonic() + WAIT_S
    events = run_dir / "events.jsonl"
    while time.monotonic() < deadline:
        assert process.poll() is None, "the first run ended before the test could overlap it"
        if events.exists():
            for line in events.read_text(errors="replace").splitlines():
                if f'"step":"{step}"' in line and '"type":"StepStarted"' in line:
                    return
        time.sleep(0.05)
    pytest.fail(f"the first run did not reach {step}")


def test_a_second_resume_of_a_run_in_use_is_refused_saying_who_holds_it(tmp_path: Path):
    run_dir = tmp_path / "run"
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAB_ANSWERS)
    first = subprocess.Popen(vlb("--auto", str(answers), "--run-dir", str(run_dir), "--speed", "30"), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=ctrl_c_reaches_it)
    try:
        wait_for_step(run_dir, first, "create_vm")
        meta_before = (run_dir / "run.json").read_bytes()
        second = subprocess.run(vlb("--resume", str(run_dir), "--until", "connect"), cwd=REPO, capture_output=True,
                                text=True, timeout=WAIT_S)
        assert second.returncode == 2, second.stderr + second.stdout
        assert f"pid {first.pid} on host {socket.gethostname()}, since " in second.stderr
        assert "internal error" not in second.stderr
        assert (run_dir / "run.json").read_bytes() == meta_before
        with pytest.raises(RunInUse, match=f"pid {first.pid}"):  # the wizard's resume says the same
            service.resume(run_dir)
        assert (run_dir / "run.json").read_bytes() == meta_before
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(WAIT_S)
    try:
        assert first.returncode == 130, first.stderr.read() if first.stderr else ""
        resumed = subprocess.run(vlb("--resume", str(run_dir), "--until", "first_boot"), cwd=REPO,
                                 capture_output=True, text=True, timeout=WAIT_S * 2)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["outcome"] == "stopped" and meta["speed"] == 30
    finally:
        if first.stderr:
            first.stderr.close()
        stop_lab_guests(run_dir)


def test_a_lock_left_by_a_killed_process_does_not_block_a_resume(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom backend.run.runlock import RunLock\n"
                               "lock = RunLock.acquire(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n",
                               str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUse, match=f"pid {holder.pid}"):
            RunLock.acquire(tmp_path)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
        lock = RunLock.acquire(tmp_path)  # the file is still there; the lock went with the process
        assert (tmp_path / "run.lock").exists() and json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(30)
        if holder.stdout:
            holder.stdout.close()


def test_the_lock_file_is_never_reached_through_a_symlink(tmp_path: Path):
    from backend.errors import BadInput

    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.lock").symlink_to(outside)
    with pytest.raises(BadInput, match="symbolic link"):
        RunLock.acquire(run)
    assert outside.read_text() == "keep\n"


async def test_the_wizard_says_who_holds_a_run_and_lists_a_damaged_one_without_crashing(tmp_path: Path):
    from textual.widgets import OptionList

    from backend.model import answers as answers_mod
    from backend.model.answers import Answers
    from backend.run.journal import ANSWERS
    from tests.recorded_runs import write_recorded_run
    from tests.tui_helpers import make_app, small_plan

    held = write_recorded_run(tmp_path / "20260102-000000-held", "oom")
    answers_mod.save(Answers.model_validate({"proxmox": {"url": "lab"}}), held.path / ANSWERS)
    damaged = write_recorded_run(tmp_path / "20260101-000000-damaged", "oom")
    (damaged.path / "run.json").write_text("{torn")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom backend.run.runlock import RunLock\n"
                               "lock = RunLock.acquire(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n",
                               str(held.path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    seen: list = []
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        app = make_app(first_step="start", runs_root=tmp_path, plan=small_plan())
        async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
            await pilot.pause()
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert labels[2].startswith("Resume 20260102-000000-held")
            assert labels[3].startswith("Resume 20260101-000000-damaged") and "cannot be resumed" in labels[3]
            await pilot.press("down", "down", "enter")
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            assert type(app.screen).__name__ == "StartScreen"  # neither run was launched
        said = [m.notification.message for m in seen if type(m).__name__ == "Notify"]
        assert any(f"in use by another vast-loopback (pid {holder.pid}" in text for text in said), said
        assert any("run.json is damaged" in text for text in said), said
        assert (damaged.path / "run.json").read_text() == "{torn"
    finally:
        holder.kill()
        holder.wait(30)
        if holder.stdout:
            holder.stdout.close()
