"""A full disk under a run (issue 12, item 6): the journal failing is fatal to the run. The run stops
at its next await, says why, and run.json says "stopped" (rewritten in place: no new file fits);
once there is space again, `--resume` takes it to ONLINE. A real full file system: a small tmpfs in
a mount namespace (tests/full_disk_probe.py), filled by a file of zeros while the run prepares the
guest; the lab's world is on a file system of its own, as a real host's would be. The wizard's path
(backend/run/service.py) is shown the same on a journal whose descriptor writes to /dev/full (a real ENOSPC
from a real write)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security_support import REPO

LAB_ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"


def _mount_namespace() -> bool:
    """Root (a container's will do) with `unshare -m`: the lab guest, run as root, switches to its own
    uid, which a user namespace made by `unshare -r` does not map."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _mount_namespace(), reason="needs root and unshare -m to mount a small tmpfs privately")
def test_a_full_disk_stops_the_run_and_a_resume_with_space_finishes_it(tmp_path: Path):
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAB_ANSWERS)
    probe = subprocess.run(["unshare", "-m", sys.executable, "-W", "ignore", "-m", "tests.full_disk_probe",
                            str(tmp_path), str(answers)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["reached_step"] and seen["filled_bytes"] > 0

    # The journal could not write: the run stopped there, said why, and run.json says so.
    assert seen["first_exit"] == 1, seen["first_stderr"]
    assert "the run stopped: the run's journal could not be written" in seen["first_stderr"]
    assert "No space left on device" in seen["first_stderr"] and "--resume" in seen["first_stderr"]
    assert "internal error" not in seen["first_stderr"] and "Traceback" not in seen["first_stderr"]
    meta = seen["meta_after_first"]
    assert isinstance(meta, dict), meta
    assert meta["status"] == "stopped" and "No space left on device" in meta["message"]
    assert meta.get("id") and meta.get("speed") == 120  # the id and options survived the in-place rewrite

    # With space again, the resume takes the same run to ONLINE.
    assert seen["resume_exit"] == 0, seen["resume_stderr"] + seen["resume_stdout_tail"]
    assert "run online (exit 0)" in seen["resume_stdout_tail"]
    after = seen["meta_after_resume"]
    assert after["id"] == meta["id"] and after["status"] == "finished" and after["outcome"] == "online"
    assert seen["report"]


def _make_events_file_full(events: Path) -> int:
    """Point the descriptor this process writes `events` through at /dev/full: every later write
    gets ENOSPC from the kernel, as on a full disk. How many descriptors were pointed."""
    full = os.open("/dev/full", os.O_WRONLY)
    pointed = 0
    try:
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{name}") == str(events):
                    os.dup2(full, int(name))
                    pointed += 1
    finally:
        os.close(full)
    return pointed


def plan_without_fill() -> list:
    from backend.run.engine import Step

    async def done(ctx) -> dict:  # noqa: ANN001
        return {}

    return [Step("fill", "Fill the disk", "provision", done), Step("after", "After", "provision", done)]


async def test_the_wizards_run_stops_at_its_next_await_when_the_journal_cannot_write(tmp_path: Path):
    from backend import events as ev
    from backend.model.answers import Answers
    from backend.run import service
    from backend.run.engine import RunContext, Step
    from tests.tui_helpers import fixed_target

    launch = service.start(Answers.model_validate({"proxmox": {"url": "lab"}}), run_dir=tmp_path / "run")
    ran: list[str] = []

    def plan() -> list[Step]:
        async def fill(ctx: RunContext) -> dict:
            assert _make_events_file_full(launch.run.path / "events.jsonl") == 1
            ctx.progress("the disk is full from here on")  # this event's write fails: the run is halted
            ran.append("fill")
            await asyncio.sleep(3600)  # the next await: the halt stops the run here
            ran.append("went on")
            return {}

        async def after(ctx: RunContext) -> dict:
            ran.append("after")
            return {}

        return [Step("fill", "Fill the disk", "provision", fill), Step("after", "After", "provision", after)]

    seen: list[ev.Event] = []
    code = await asyncio.wait_for(service.drive(launch, seen.append, plan=plan, opener=fixed_target), 60)
    assert code == 1 and ran == ["fill"]
    end = seen[-1]
    assert isinstance(end, ev.RunFinished) and end.outcome == "stopped" and "No space left on device" in end.message
    meta = launch.run.read_meta()
    assert meta["status"] == "stopped" and "events.jsonl" in meta["message"]
    assert launch.lock is not None and not launch.lock.held

    resumed = service.resume(launch.run.path)  # with space again (the descriptor is gone with its journal)
    code = await asyncio.wait_for(service.drive(resumed, seen.append, plan=plan_without_fill, opener=fixed_target), 60)
    assert code == 0 and resumed.run.read_meta()["outcome"] == "done"
