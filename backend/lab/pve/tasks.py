"""Proxmox worker tasks: UPIDs, their status and their log, on the lab clock.

A task is planned when it starts: how long it takes (lab seconds), the log lines it prints and
when, and whether it ends in an error. The lab's state finishes it when the clock passes its end
(see `state.PveState.advance`), also after a restart of the lab, so a task that was running when
the process died still ends at the right lab time.

UPID format (pve-common src/PVE/UPID.pm):
    UPID:<node>:<pid 8 hex>:<pstart 8 hex>:<starttime 8 hex>:<type>:<id>:<user>:
"""

from __future__ import annotations

import re

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)


def make_upid(node: str, pid: int, pstart: int, starttime: int, kind: str, ident: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{ident}:{user}:"


def new_task(*, node: str, pid: int, pstart: int, now: float, kind: str, ident: str, user: str,
             duration: float, lines: list[tuple[float, str]] | None = None, error: str | None = None,
             op: str = "", args: dict | None = None) -> dict:
    """A running task that ends `duration` lab seconds from `now` (with `error`, or OK)."""
    starttime = int(now)
    return {
        "upid": make_upid(node, pid, pstart, starttime, kind, ident, user),
        "node": node, "pid": pid, "pstart": pstart, "starttime": starttime, "type": kind, "id": ident,
        "user": user, "start": now, "end": now + max(0.0, duration),
        "lines": [[float(t), text] for t, text in (lines or [])],
        "error": error, "op": op, "args": args or {},
        "status": "running", "exitstatus": None, "endtime": None,
    }


def status_view(task: dict) -> dict:
    view = {key: task[key] for key in ("upid", "node", "pid", "pstart", "starttime", "type", "id", "user")}
    view["status"] = task["status"]
    if task["status"] == "stopped":
        view["exitstatus"] = task["exitstatus"]
    return view


def list_view(task: dict) -> dict:
    """An entry of GET /nodes/{node}/tasks: `status` is the exit status once stopped."""
    view = {key: task[key] for key in ("upid", "node", "pid", "pstart", "starttime", "type", "id", "user")}
    if task["status"] == "stopped":
        view["status"] = task["exitstatus"]
        view["endtime"] = int(task["endtime"] or task["end"])
    return view


def log_lines(task: dict, now: float) -> list[str]:
    """The lines printed so far; a stopped task ends with 'TASK OK' or 'TASK ERROR: ...'."""
    elapsed = now - task["start"]
    lines = [text for offset, text in task["lines"] if offset <= elapsed or task["status"] == "stopped"]
    if task["status"] == "stopped":
        status = task["exitstatus"]
        lines.append("TASK OK" if status == "OK" else f"TASK {status}" if status.startswith("WARNINGS")
                     else f"TASK ERROR: {status}")
    return lines


def log_view(task: dict, now: float, start: int, limit: int) -> tuple[list[dict], int]:
    lines = log_lines(task, now)
    limit = limit or 50
    chunk = lines[start:start + limit]
    return [{"n": start + i + 1, "t": text} for i, text in enumerate(chunk)], len(lines)


def human_bytes(size: float) -> str:
    """Proxmox's progress units ('600.0 GiB')."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {units[unit]}"


def transfer_lines(start: float, seconds: float, total: int, steps: int = 100) -> list[tuple[float, str]]:
    """qemu-img convert progress lines, one per percent, spread over `seconds`."""
    lines = []
    for step in range(steps + 1):
        done = total * step / steps
        lines.append((start + seconds * step / steps,
                      f"transferred {human_bytes(done)} of {human_bytes(total)} ({100 * step / steps:.2f}%)"))
    return lines
