"""The guest's own record, read directly, for a diagnosis that does not depend on having watched.

The monitor reports lines as they happen; what the guest wrote while vast-loopback was not running
(killed, a closed laptop) or before a restarted agent caught up is not in its stream. So at a failure,
and when a resumed run had a gap, `read_guest_record` asks the guest, read-only, in one SSH command
bounded in time:

    boot    /proc/sys/kernel/random/boot_id, /proc/uptime and the guest's clock (to date records)
    kernel  the kernel's log since this boot: /dev/kmsg read without blocking (each record with its
            sequence number), else `dmesg`, else `journalctl -k -b` (text only)
    vmstat  /proc/vmstat oom_kill: the OOM killer's kills since this boot
    docker  `docker inspect` of every container: State.Status, OOMKilled, ExitCode, FinishedAt
    logs    VAST's logs (`workers.log` PANIC lines, `vms.log`): the lines that matter, by byte offset

Only this boot counts: the ring buffer and the counter start again at a boot, and a container that
finished before it or a log line stamped before it is left out, so after a rollback (the guest boots
again) nothing of an earlier attempt comes back. Lines that matter (the monitoring agent's own
`match_line`) and that the attempt's events do not hold yet (kernel records by sequence number and
text, log lines by offset) are emitted as KernelMessageSeen with source "record:kmsg" or
"record:<log path>"; then one GuestRecordRead counts them and carries the counter and the
containers. The diagnosis concludes from those events as from any other. A guest that cannot be
reached or does not answer in time gives a GuestRecordRead that says so; the diagnosis goes on with
what it has.

The install log is not read here: its follower goes on from the offset the journal holds, so none
of its lines is lost across a gap.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from backend.clients.commands import sh
from backend.errors import VlbError
from backend.events import Event, GuestRecordRead, KernelMessageSeen
from backend.monitor.agent import match_line, parse_kmsg_record
from backend.run.engine import RunContext
from backend.secrets import redact
from backend.steps.prepare import guest_client

RECORD = "record:"  # prefix of the source of a line read from the record
KMSG = "kmsg"  # the monitor's source of kernel records
READ_TIMEOUT_S = 60.0  # target seconds for the whole read, connecting included
MIN_READ_WALL_S = 20.0  # ... and at least this many wall seconds, however compressed the clock
TOOL_TIMEOUT_S = 10  # guest seconds for each tool (a /dev/kmsg that blocks, a docker that hangs)
LOG_LINES = 200  # the last candidate lines of each log
STAMP_TOLERANCE_S = 14 * 3600.0  # a log line is older than the boot only beyond any time zone's offset
CANDIDATES = r"PANIC|[Pp]anic|oom|Out of memory|Killed process|blocked for more than|lockup|LOCKUP|stall"
DOCKER_FORMAT = "{{.Name}}|{{.State.Status}}|{{.State.OOMKilled}}|{{.State.ExitCode}}|{{.State.FinishedAt}}"
MARK = b"@@vlb-record "
DMESG_LINE = re.compile(r"^\[\s*(\d+)\.(\d{1,6})\]\s?(.*)$")
STAMP = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)")
ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class KernelLine:
    text: str
    seq: int | None = None  # None: read through dmesg or journalctl (text only)
    usec: int | None = None  # since boot
    level: str = ""


@dataclass(frozen=True)
class LogLine:
    path: str
    offset: int  # byte offset after the line, as the monitoring agent reports it
    text: str


@dataclass
class Record:
    """What one read of the guest's record found."""

    boot_id: str = ""
    boot_epoch: float | None = None  # the guest's clock
    kernel_source: str = ""  # "kmsg" | "dmesg" | "" (nothing readable)
    kernel: list[KernelLine] = field(default_factory=list)
    oom_kills: int | None = None
    containers: list[dict] = field(default_factory=list)
    log_sizes: dict[str, int] = field(default_factory=dict)  # path -> bytes read (where a tail goes on)
    logs: list[LogLine] = field(default_factory=list)

    @property
    def last_seq(self) -> int | None:
        """The newest kernel record's sequence number (where a monitor goes on after this read)."""
        return max((line.seq for line in self.kernel if line.seq is not None), default=None)


# --- the command and its output ----------------------------------------------------------------


def record_command(logs: Sequence[str]) -> str:
    """One read-only shell command printing every part of the record after a marker line."""
    mark = MARK.decode()
    t = TOOL_TIMEOUT_S
    parts = [
        f"printf '{mark}boot %s %s %s\\n' \"$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\" "
        "\"$(cut -d' ' -f1 /proc/uptime 2>/dev/null)\" \"$(date +%s.%N)\"",
        f"printf '{mark}vmstat\\n'; grep '^oom_kill ' /proc/vmstat 2>/dev/null",
        f"printf '{mark}kmsg\\n'; timeout {t} dd if=/dev/kmsg iflag=nonblock bs=16384 status=none 2>/dev/null"
        " | awk '{ print } END { exit NR == 0 }'"
        f" || {{ printf '{mark}dmesg\\n'; timeout {t} dmesg 2>/dev/null"
        f" || timeout {t} journalctl -k -b -q --no-pager -o cat 2>/dev/null; }}",
        f"printf '{mark}docker\\n'; timeout {t} docker ps -a -q 2>/dev/null"
        f" | xargs -r timeout {2 * t} docker inspect --format {sh(DOCKER_FORMAT)} 2>/dev/null",
    ]
    for path in logs:
        quoted = sh(path)
        parts.append(f"if s=$(stat -c %s -- {quoted} 2>/dev/null); then printf '{mark}log %s %s\\n' \"$s\" {quoted}; "
                     f"head -c \"$s\" -- {quoted} | grep -a -b -E {sh(CANDIDATES)} | tail -n {LOG_LINES}; fi")
    return "; ".join(parts) + "; true"


def _iso_epoch(text: str) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, Z) as epoch seconds; None for its zero time."""
    match = ISO.match(text.strip())
    if not match or match.group(1).startswith("0001-"):
        return None
    moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    zone = match.group(3)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return moment + float(match.group(2) or 0.0)


def _container(line: str) -> dict | None:
    fields = line.split("|")
    if len(fields) != 5:
        return None
    name, status, oom, code, finished = fields
    return {"name": name.lstrip("/"), "status": status, "oom_killed": oom.strip() == "true",
            "exit_code": int(code) if code.strip().lstrip("-").isdigit() else None,
            "finished": _iso_epoch(finished)}


def _kernel_line(raw: str, source: str) -> KernelLine | None:
    if source == KMSG:
        if raw.startswith(" "):
            return None  # a record's continuation line (" KEY=value")
        parsed = parse_kmsg_record(raw)
        if parsed is None:
            return None
        level, seq, usec, text = parsed
        return KernelLine(text, seq, usec, level)
    match = DMESG_LINE.match(raw)
    if match:
        return KernelLine(match.group(3), None, int(match.group(1)) * 1_000_000 + int(match.group(2).ljust(6, "0")))
    return KernelLine(raw) if raw.strip() else None


def parse_record(output: bytes) -> Record:
    """The record from `record_command`'s output (parts that printed nothing stay empty)."""
    record = Record()
    part, path = "", ""
    for raw in output.split(b"\n"):
        if raw.startswith(MARK):
            words = raw[len(MARK):].decode("utf-8", "replace").split(" ", 2)
            part = words[0]
            if part == "boot":
                record.boot_id = words[1] if len(words) > 1 else ""
                try:
                    uptime, now = words[2].split(" ")
                    record.boot_epoch = float(now) - float(uptime)
                except (IndexError, ValueError):
                    record.boot_epoch = None
            elif part in (KMSG, "dmesg"):
                record.kernel_source = part
            elif part == "log" and len(words) == 3 and words[1].isdigit():
                path = words[2]
                record.log_sizes[path] = int(words[1])
            continue
        text = raw.decode("utf-8", "replace")
        if part == "vmstat" and text.startswith("oom_kill "):
            value = text.split()[-1]
            record.oom_kills = int(value) if value.isdigit() else None
        elif part in (KMSG, "dmesg"):
            line = _kernel_line(text, part)
            if line is not None:
                record.kernel.append(line)
        elif part == "docker" and text:
            container = _container(text)
            if container is not None:
                record.containers.append(container)
        elif part == "log" and path:
            start, sep, rest = raw.partition(b":")
            if sep and start.isdigit():
                record.logs.append(LogLine(path, int(start) + len(rest) + 1,
                                           rest.decode("utf-8", "replace").rstrip("\r")))
    return record


# --- what is new, and from this boot ------------------------------------------------------------


def _stamp(text: str) -> float | None:
    match = STAMP.search(text)
    if not match:
        return None
    day = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H:%M:%S")
    return day.replace(tzinfo=timezone.utc).timestamp()


def new_lines(record: Record, seen: Iterable[Event], ctx: RunContext) -> list[KernelMessageSeen]:
    """The record's lines that matter and that `seen` (this attempt's events) does not hold yet."""
    kernel_keys: set[tuple[int, str]] = set()
    kernel_texts: set[str] = set()
    log_keys: set[tuple[str, int]] = set()
    for event in seen:
        if not isinstance(event, KernelMessageSeen):
            continue
        source = event.source.removeprefix(RECORD)
        if source == KMSG:
            kernel_texts.add(event.text)
            if event.seq is not None:
                kernel_keys.add((event.seq, event.text))
        elif event.offset is not None:
            log_keys.add((source, event.offset))
    boot = ctx.clock.to_target(record.boot_epoch) if record.boot_epoch is not None else None
    out: list[KernelMessageSeen] = []
    for line in record.kernel:
        match = match_line(line.text)
        known = (line.seq, line.text) in kernel_keys if line.seq is not None else line.text in kernel_texts
        if not match or known:
            continue
        kernel_texts.add(line.text)
        ts = ctx.clock.to_target(record.boot_epoch + line.usec / 1e6) \
            if record.boot_epoch is not None and line.usec is not None else 0.0
        out.append(KernelMessageSeen(ts=ts, source=RECORD + KMSG, text=line.text, level=line.level, match=match,
                                     seq=line.seq))
    for log_line in record.logs:
        match = match_line(log_line.text)
        stamp = _stamp(log_line.text)
        if not match or (log_line.path, log_line.offset) in log_keys:
            continue
        if stamp is not None and boot is not None and stamp + STAMP_TOLERANCE_S < boot:
            continue  # written before this boot: an earlier install's
        out.append(KernelMessageSeen(ts=stamp or 0.0, source=RECORD + log_line.path, text=log_line.text,
                                     match=match, offset=log_line.offset))
    return out


def this_boots(record: Record, ctx: RunContext) -> list[dict]:
    """The containers as Docker reports them, but for those that finished before this boot; the
    time they finished on the target's clock."""
    boot = record.boot_epoch
    return [{**c, "finished": ctx.clock.to_target(c["finished"]) if c["finished"] is not None else None}
            for c in record.containers if c["finished"] is None or boot is None or c["finished"] >= boot]


def describe(event: GuestRecordRead) -> str:
    """One sentence on a read of the record (for the headless output, the dashboard and the report)."""
    when = "at the failure" if event.reason == "failure" else "after the gap" if event.reason == "resume" else event.reason
    if not event.reachable:
        return (f"the guest's record could not be read {when}: {event.error}; the diagnosis rests on what "
                "the monitor delivered")
    kills = "unknown" if event.oom_kills is None else str(event.oom_kills)
    text = (f"the guest's record read {when}: {event.kernel_records} kernel records since boot, "
            f"{event.new_lines} new lines that matter, OOM kills since boot: {kills}")
    ended = [f"{c.get('name')} exited {c.get('exit_code')}" + (" (OOMKilled)" if c.get("oom_killed") else "")
             for c in event.containers if c.get("status") != "running"]
    if ended:
        text += "; containers " + ", ".join(ended)
    return text + (f"; {event.error}" if event.error else "")


# --- reading -----------------------------------------------------------------------------------


async def _read(ctx: RunContext, logs: Sequence[str]) -> bytes:
    guest = await guest_client(ctx)
    return await guest.run_bytes(record_command(logs), sudo=True, timeout=READ_TIMEOUT_S)


def _why(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, VlbError) else (str(exc) or type(exc).__name__)
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:300]


async def read_guest_record(ctx: RunContext, reason: str, *, logs: Sequence[str],
                            seen: Iterable[Event]) -> Record | None:
    """Read the record, emit its new lines and a GuestRecordRead; None when the guest did not answer
    (the GuestRecordRead says why). Never raises, and never takes longer than the read's bound."""
    bound = max(MIN_READ_WALL_S, ctx.clock.wall_seconds(READ_TIMEOUT_S))
    try:
        output = await asyncio.wait_for(_read(ctx, logs), timeout=bound)
    except asyncio.TimeoutError:
        ctx.emit(GuestRecordRead(reason=reason, reachable=False,
                                 error=f"the guest did not answer within {READ_TIMEOUT_S:.0f} s"))
        return None
    except Exception as exc:  # noqa: BLE001 - an unreachable guest must not hide the failure itself
        ctx.emit(GuestRecordRead(reason=reason, reachable=False, error=_why(exc)))
        return None
    record = parse_record(output)
    lines = new_lines(record, seen, ctx)
    for line in lines:
        ctx.emit(line)
    missing = [name for name, ok in (("the kernel's log", record.kernel_source),
                                     ("/proc/vmstat oom_kill", record.oom_kills is not None)) if not ok]
    ctx.emit(GuestRecordRead(
        reason=reason, boot_id=record.boot_id, oom_kills=record.oom_kills, containers=this_boots(record, ctx),
        kernel_records=len(record.kernel), new_lines=len(lines),
        error=f"could not read {' nor '.join(missing)}" if missing else ""))
    return record
