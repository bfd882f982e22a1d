"""A lab run whose disk fills up, then resumed once there is space: run inside `unshare -m` (a mount
namespace of its own, so the tmpfs mounts are private) by tests/test_security_full_disk.py.

    python -m tests.full_disk_probe WORKDIR ANSWERS

Mounts a small tmpfs at WORKDIR/disk for the run directory. The lab's world (RUN_DIR/lab) gets a
file system of its own, as a real Proxmox host and its guest have their own disks: a first
`--auto ANSWERS --until connect` makes the run directory and the lab's state, which then moves to a
second tmpfs mounted at RUN_DIR/lab. `--resume` then drives the run; when its journal shows the
preflight step started, the run directory's file system is filled with a file of zeros until the kernel
says ENOSPC. The probe waits for the run to exit, frees the space, resumes the run again, and prints
what it saw as one JSON object: exit codes, outputs, run.json after each process, the report.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.security_support import stop_lab_guests

WAIT_S = 240.0
FILL_AT = "preflight"  # a step before the install: a stopped lab ends its guests, and a VAST bootstrap
# cut short that way is not resumed (a real VM keeps running when vast-loopback stops)
SPEED = "120"  # the lab's 15-minute waits take 7.5 s of wall time: room for a loaded machine


def _meta(run: Path) -> object:
    try:
        return json.loads((run / "run.json").read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"


def _wait_for_step(run: Path, process: subprocess.Popen) -> bool:
    """Until the journal has FILL_AT's StepStarted (read as it grows)."""
    deadline = time.monotonic() + WAIT_S
    events, offset, partial = run / "events.jsonl", 0, b""
    while time.monotonic() < deadline and process.poll() is None:
        if events.exists():
            with events.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            offset += len(data)
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                if b'"type":"StepStarted"' in line and f'"step":"{FILL_AT}"'.encode() in line:
                    return True
        time.sleep(0.005)
    return False


def _fill(path: Path) -> int:
    """Write zeros to `path` until the file system is full; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]


def main(workdir: str, answers: str) -> dict:
    work = Path(workdir)
    disk = work / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], check=True)
    run = disk / "run"
    cli = [sys.executable, "-W", "ignore", "-m", "tui.cli"]
    seen: dict = {}
    try:
        subprocess.run([*cli, "--auto", answers, "--run-dir", str(run), "--speed", SPEED, "--until", "connect"],
                       check=True, capture_output=True)
        shutil.move(run / "lab", work / "lab")
        (run / "lab").mkdir(mode=0o700)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g,mode=0700", "tmpfs", str(run / "lab")], check=True)
        shutil.copytree(work / "lab", run / "lab", dirs_exist_ok=True)
        with (work / "first.err").open("w") as err, (work / "first.out").open("w") as out:
            first = subprocess.Popen([*cli, "--resume", str(run)], stdout=out, stderr=err)
            seen["reached_step"] = _wait_for_step(run, first)
            seen["filled_bytes"] = _fill(disk / "filler") if seen["reached_step"] else 0
            filled_at = time.monotonic()
            seen["first_exit"] = first.wait(WAIT_S)
            seen["first_exit_after_fill_s"] = round(time.monotonic() - filled_at, 2)
        seen["first_stderr"] = (work / "first.err").read_text(errors="replace")
        seen["first_stdout_tail"] = (work / "first.out").read_text(errors="replace")[-2000:]
        seen["meta_after_first"] = _meta(run)
        (disk / "filler").unlink(missing_ok=True)
        resumed = subprocess.run([*cli, "--resume", str(run)], capture_output=True, text=True, timeout=WAIT_S)
        seen["resume_exit"] = resumed.returncode
        seen["resume_stdout_tail"] = resumed.stdout[-2000:]
        seen["resume_stderr"] = resumed.stderr[-2000:]
        seen["meta_after_resume"] = _meta(run)
        seen["report"] = (run / "report.md").is_file()
    finally:
        stop_lab_guests(run)
        subprocess.run(["umount", "-l", str(run / "lab")], check=False)
        subprocess.run(["umount", "-l", str(disk)], check=False)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
