"""Reading VAST install logs: ANSI colours and spinner repaints stripped, facts parsed out.

The VAST tools write progress as `\\r` repaints of one line ending in a spinner character
(`... /`, `... -`, `... \\`, `... |`) and colour it with ANSI codes. `clean_lines` turns raw text
into the lines a person would have read; `parse_line` finds the facts the engine and the report
need (cluster states, task results, bootstrap milestones, PANICs, the install script's phases).
States are never checked against a closed list: VAST 5.4 has more than 5.3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
_ELLIPSIS_SPINNER = re.compile(r"\s+\.\.\.\s+[/\-\\|]?\s*$")
STAMP = re.compile(r"^\[(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:[:.][^\]]*)?\]\s*")

CLUSTER_STATE = re.compile(r"Cluster (?P<name>\S+) state: (?P<state>[A-Za-z_]+)")
TASK_RESULT = re.compile(
    r"Task (?P<name>[A-Za-z_]+) \((?P<id>\d+)\) (?P<result>succeeded|failed|completed)"
    r"(?: \(runtime=(?P<runtime>[\d.]+)\))?"
)
PHASE = re.compile(r"(?:==>\s*|\[STEP\]\s*)Phase (?P<number>\d+): (?P<title>.+)$")
VMS_UP = re.compile(r"Done, VMS is up")
BOOTSTRAP_DONE = re.compile(r"bootstrap finished, please connect at (?P<url>\S+)")
PANIC = re.compile(r"PANIC\[(?P<code>P\d+)[^\]]*")
OOM = re.compile(r"(invoked oom-killer|Out of memory: Kill|Memory cgroup out of memory)")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def _strip_spinner(segment: str) -> str:
    # "[ts] Cluster x state: ACTIVATING ... |" -> "[ts] Cluster x state: ACTIVATING"
    cleaned = _ELLIPSIS_SPINNER.sub("", segment)
    return cleaned.rstrip()


def clean_lines(raw: str) -> list[str]:
    """Lines as a person would have read them: no ANSI, one line per repaint, no spinner."""
    lines: list[str] = []
    for physical in raw.split("\n"):
        for segment in strip_ansi(physical).split("\r"):
            segment = _strip_spinner(segment)
            if segment.strip() and (not lines or lines[-1] != segment):
                lines.append(segment)
    return lines


@dataclass(frozen=True)
class LogFact:
    """One fact found in a log line. `ts` is the line's own timestamp when it has one."""

    kind: str  # "cluster_state" | "task" | "phase" | "vms_up" | "bootstrap_done" | "panic" | "oom"
    ts: float | None
    value: str = ""
    name: str = ""
    task_id: int | None = None
    runtime_s: float | None = None
    line: str = ""


def line_timestamp(line: str, tz: timezone = timezone.utc) -> float | None:
    match = STAMP.match(line)
    if not match:
        return None
    return datetime.strptime(match.group("ts"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).timestamp()


def parse_line(line: str) -> LogFact | None:
    """The fact in one clean line, if any."""
    ts = line_timestamp(line)
    if match := CLUSTER_STATE.search(line):
        return LogFact("cluster_state", ts, match.group("state").upper(), match.group("name"), line=line)
    if match := TASK_RESULT.search(line):
        result = "COMPLETED" if match.group("result") in ("succeeded", "completed") else "FAILED"
        runtime = float(match.group("runtime")) if match.group("runtime") else None
        return LogFact("task", ts, result, match.group("name"), int(match.group("id")), runtime, line)
    if match := PHASE.search(line):
        return LogFact("phase", ts, match.group("title").strip(), match.group("number"), line=line)
    if VMS_UP.search(line):
        return LogFact("vms_up", ts, line=line)
    if match := BOOTSTRAP_DONE.search(line):
        return LogFact("bootstrap_done", ts, match.group("url"), line=line)
    if match := PANIC.search(line):
        return LogFact("panic", ts, match.group("code"), line=line)
    if OOM.search(line):
        return LogFact("oom", ts, line=line)
    return None


