"""Detached jobs on the guest: the shell commands that start, poll and read them.

A job lives in its own folder (`~/.vast-loopback/jobs/<job_id>/`):
    started   created atomically by the first launch, so a second launch re-attaches instead
    pid       the job's process (setsid + nohup: it survives the SSH connection closing)
    log       stdout and stderr of the job, appended
    status    the exit status, written (atomically) once the job has ended

`follow` reads the log by byte offset: the state is read before the bytes, so once the state says
"exited" the bytes read after it are the complete rest of the log. Only complete lines advance the
offset; a partial last line is read again next time, until the job has ended.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from backend.clients.commands import sh

JOBS_DIR = ".vast-loopback/jobs"
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
READ_CHUNK = 1 << 20  # bytes read per poll

STATES = ("running", "exited", "lost", "absent")


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID.match(job_id) or ".." in job_id:
        raise ValueError(f"job id {job_id!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    return job_id


def job_dir(home: str, job_id: str) -> str:
    return f"{home.rstrip('/')}/{JOBS_DIR}/{check_job_id(job_id)}"


def prepare_command(folder: str) -> str:
    """Create the job's folder as the SSH user (a job run with sudo writes into it as root)."""
    return sh("mkdir", "-p", "--", folder)


def launch_command(folder: str, command: str) -> str:
    """Start `command` detached in `folder`, unless a job already started there (then re-attach).

    Prints "started" or "attached". The job runs in a subshell so that an `exit` inside `command`
    still records its status; the status file appears atomically (written, then renamed). The
    launcher ignores SIGHUP: a connection dropped between creating `started` and starting the job
    must not leave a job that is marked started but never ran; so sending the launch again after a
    drop is safe (it re-attaches).
    """
    q = shlex.quote
    log, status, tmp = f"{folder}/log", f"{folder}/status", f"{folder}/status.tmp"
    inner = f"( {command} ) >> {q(log)} 2>&1 < /dev/null; echo $? > {q(tmp)}; mv -f {q(tmp)} {q(status)}"
    return (
        "trap '' HUP; "
        f"cd {q(folder)} || exit 1; "
        "if ! ( set -C; : > started ) 2>/dev/null; then echo attached; exit 0; fi; "
        f": >> {q(log)}; "
        f"{sh('setsid', 'nohup', 'sh', '-c', inner)} < /dev/null > /dev/null 2>&1 & "
        "echo $! > pid; echo started"
    )


def state_script(folder: str) -> str:
    """Prints one line: `running`, `exited N`, `lost` (no status and no live process) or `absent`.
    A zombie (killed, not yet reaped) counts as gone."""
    q = shlex.quote
    return (
        f"if [ ! -e {q(folder + '/started')} ]; then echo absent; "
        f"elif [ -f {q(folder + '/status')} ]; then echo \"exited $(cat {q(folder + '/status')})\"; "
        f"else vlb_pid=$(cat {q(folder + '/pid')} 2>/dev/null); "
        "if [ -n \"$vlb_pid\" ] && [ -r \"/proc/$vlb_pid/stat\" ] "
        "&& ! grep -q '^[0-9]* (.*) Z' \"/proc/$vlb_pid/stat\" 2>/dev/null; then echo running; "
        "else echo lost; fi; fi"
    )


def poll_command(folder: str, offset: int, limit: int = READ_CHUNK) -> str:
    """The job's state line, then up to `limit` bytes of its log from byte `offset`."""
    if offset < 0 or limit <= 0:
        raise ValueError("offset must be >= 0 and limit > 0")
    log = shlex.quote(f"{folder}/log")
    return f"{state_script(folder)}; tail -c +{int(offset) + 1} {log} 2>/dev/null | head -c {int(limit)}"


@dataclass(frozen=True)
class JobState:
    state: str  # running | exited | lost | absent
    exit_status: int | None = None


def parse_state(line: str) -> JobState:
    words = line.strip().split()
    if not words or words[0] not in STATES:
        return JobState("lost")
    if words[0] == "exited":
        try:
            return JobState("exited", int(words[1]))
        except (IndexError, ValueError):
            return JobState("exited", 255)
    return JobState(words[0])


def split_poll(output: bytes) -> tuple[JobState, bytes]:
    """Split `poll_command`'s output into the state and the log bytes."""
    head, _, data = output.partition(b"\n")
    return parse_state(head.decode("utf-8", "replace")), data


def complete_lines(data: bytes, final: bool) -> tuple[list[str], int]:
    """The complete lines in `data` and how many bytes they span. With `final` (the job has ended and
    `data` is the rest of the log) a last line without a newline counts as complete. A carriage return
    also ends what came before it: progress tools repaint one line with `\r` for minutes before its
    newline, and each repaint is news. Lines are split on newlines only: carriage returns stay in
    them for the log parser (backend/clients/installlog.py) to handle."""
    cut = len(data) if final else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if cut <= 0:
        return [], 0
    text = data[:cut].decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, cut
