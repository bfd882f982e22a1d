"""Readers for the monitoring formats the field engineer's hand-made scripts wrote.

One reader per file kind (see ../shared/traces/seed-run-2025-12-29/SOURCES.txt for the formats):
heartbeat, loadavg, memory (`free -h` + /proc/meminfo blocks), docker_stats (`docker stats
--no-stream` blocks), vmstat (`vmstat -t 1`), iostat (`iostat -x -t 1`, 12- or 24-hour clock, or
ISO), ss (blocks of `ss` on one port) and dmesg (`dmesg -T`). Each reader takes lines and yields
`(epoch seconds, record)`; records use the agent's units (bytes, %, ms). Timestamps without a
zone are read as UTC, as the field run's were (vmstat says so). Readers never raise on a torn or
odd line: they count it in their `FileStats` and go on.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

KIB = 1024

# --- time ----------------------------------------------------------------------------------------

_DAY_CACHE: dict[tuple[int, int, int], int] = {}
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                        "nov", "dec"), 1)}
ISO_STAMP = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d\d)-(?P<d>\d\d)[ T](?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?P<f>\.\d+)?"
)


def utc_epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: float = 0.0) -> float:
    """Epoch seconds of a UTC wall time (the day's start is cached: readers call this per line)."""
    key = (year, month, day)
    start = _DAY_CACHE.get(key)
    if start is None:
        start = _DAY_CACHE[key] = calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))
    return start + hour * 3600 + minute * 60 + second


def parse_iso(text: str) -> float | None:
    """`YYYY-mm-dd HH:MM:SS[.fff]` (or with a `T`) anywhere at the start of `text`, as UTC."""
    match = ISO_STAMP.match(text.strip())
    if not match:
        return None
    try:
        frac = float(match.group("f")) if match.group("f") else 0.0
        return utc_epoch(int(match.group("y")), int(match.group("mo")), int(match.group("d")),
                         int(match.group("h")), int(match.group("mi")), int(match.group("s")) + frac)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


@dataclass
class FileStats:
    """What a reader made of one file: records read, lines it could not use, first and last time."""

    name: str
    kind: str
    records: int = 0
    skipped: int = 0
    first: float | None = None
    last: float | None = None
    notes: list[str] = field(default_factory=list)

    def seen(self, t: float) -> None:
        self.records += 1
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "records": self.records, "skipped": self.skipped,
                "first": self.first, "last": self.last, "note": " ".join(self.notes)}


def _blocks(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, list[str]]]:
    """`=== timestamp ===` blocks (memory, docker_stats, ss): the time and the lines under it."""
    stamp: float | None = None
    body: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.startswith("===") and line.rstrip().endswith("==="):
            if stamp is not None:
                yield stamp, body
            stamp = parse_iso(line.strip("= \t"))
            body = []
            if stamp is None:
                stats.skipped += 1
        elif stamp is not None:
            if line.strip():
                body.append(line)
        elif line.strip():
            stats.skipped += 1  # text before the first block header
    if stamp is not None:
        yield stamp, body


# --- heartbeat.log and loadavg.log ---------------------------------------------------------------


def read_heartbeat(lines: Iterable[str], stats: FileStats) -> Iterator[float]:
    """One timestamp per loop iteration."""
    for line in lines:
        t = parse_iso(line)
        if t is None:
            if line.strip():
                stats.skipped += 1
            continue
        stats.seen(t)
        yield t


def read_loadavg(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, dict]]:
    """`timestamp load1 load5 load15 runnable/total lastpid` (the 5 fields of /proc/loadavg)."""
    for line in lines:
        match = ISO_STAMP.match(line.strip())
        t = parse_iso(line) if match else None
        fields = line.strip()[match.end():].split() if match else []
        values = [_number(f) for f in fields[:3]]
        if t is None or len(values) < 3 or None in values:
            if line.strip():
                stats.skipped += 1
            continue
        record: dict = {"load": values}
        if len(fields) > 3 and "/" in fields[3]:
            runnable, _, tasks = fields[3].partition("/")
            if runnable.isdigit() and tasks.isdigit():
                record["runnable"], record["tasks"] = int(runnable), int(tasks)
        stats.seen(t)
        yield t, record


# --- memory.log ----------------------------------------------------------------------------------

_MEMINFO = re.compile(r"^(?P<key>[A-Za-z_()0-9]+):\s+(?P<value>\d+)(?:\s*kB)?\s*$")
_SIZE = re.compile(r"^(?P<num>[\d.,]+)\s*(?P<unit>[KkMmGgTtPp]?i?B?)$")
_UNIT_BYTES = {
    "": 1, "B": 1,
    "K": KIB, "KI": KIB, "KIB": KIB, "KB": 1000,
    "M": KIB**2, "MI": KIB**2, "MIB": KIB**2, "MB": 1000**2,
    "G": KIB**3, "GI": KIB**3, "GIB": KIB**3, "GB": 1000**3,
    "T": KIB**4, "TI": KIB**4, "TIB": KIB**4, "TB": 1000**4,
    "P": KIB**5, "PI": KIB**5, "PIB": KIB**5, "PB": 1000**5,
}


def parse_size(text: str) -> float | None:
    """`61Gi`, `412.5MiB`, `41.2GB`, `73kB`, `0B`, `1.5k` -> bytes (IEC for Ki/Mi/Gi and for
    `free -h`'s bare letters, SI for kB/MB/GB as docker prints them)."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    number = _number(match.group("num"))
    factor = _UNIT_BYTES.get((match.group("unit") or "").upper())
    if number is None or factor is None:
        return None
    return number * factor


def read_memory(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, dict]]:
    """Blocks of `free -h` and the head of /proc/meminfo -> the agent's `mem` dict (bytes).

    /proc/meminfo is exact and preferred; `free -h`'s rounded `Mem:` line is used only when a
    block has no meminfo lines. `used` is total - available (as the agent defines it)."""
    for t, body in _blocks(lines, stats):
        info: dict[str, int] = {}
        free_line: list[str] | None = None
        for line in body:
            match = _MEMINFO.match(line.strip())
            if match:
                info[match.group("key")] = int(match.group("value")) * KIB
            elif line.lstrip().startswith("Mem:"):
                free_line = line.split()[1:]
        mem: dict[str, float] = {}
        if "MemTotal" in info:
            mem["total"] = info["MemTotal"]
            available = info.get("MemAvailable", info.get("MemFree"))
            if available is not None:
                mem["available"] = available
                mem["used"] = info["MemTotal"] - available
            for key, name in (("MemFree", "free"), ("Buffers", "buffers"), ("Cached", "cached"),
                              ("SwapTotal", "swap_total"), ("SwapFree", "swap_free"), ("Dirty", "dirty"),
                              ("AnonPages", "anon")):
                if key in info:
                    mem[name] = info[key]
        elif free_line and len(free_line) >= 6:
            sizes = [parse_size(v) for v in free_line[:6]]
            if None not in sizes:
                total, _used, free, _shared, _cache, available = sizes
                mem = {"total": total, "available": available, "used": total - available, "free": free}
                stats.note("sizes from `free -h` (rounded) where /proc/meminfo was missing")
        if not mem:
            stats.skipped += 1
            continue
        stats.seen(t)
        yield t, mem


# --- docker_stats.log ----------------------------------------------------------------------------

_DOCKER_ROW = re.compile(
    r"^(?:(?P<id>[0-9a-f]{12,64})\s+)?(?P<name>\S+)\s+(?P<cpu>[\d.]+%|--)\s+"
    r"(?P<mem>[\d.]+\s*[A-Za-z]*)\s*/\s*(?P<limit>[\d.]+\s*[A-Za-z]*)\s+(?P<pct>[\d.]+%|--)"
)


def read_docker_stats(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, dict]]:
    """Blocks of `docker stats --no-stream` -> {name: {"mem", "limit", "cpu_pct"}} (bytes, %).

    A block saying Docker is not running (or with no rows) is a measurement of no containers."""
    for t, body in _blocks(lines, stats):
        containers: dict[str, dict] = {}
        for line in body:
            text = line.strip()
            if text.startswith(("NAME", "CONTAINER")) or "not running" in text.lower():
                continue
            match = _DOCKER_ROW.match(text)
            if not match:
                stats.skipped += 1
                continue
            mem, limit = parse_size(match.group("mem")), parse_size(match.group("limit"))
            if mem is None:
                stats.skipped += 1
                continue
            row: dict = {"mem": mem}
            if limit is not None:
                row["limit"] = limit
            if match.group("cpu") != "--":
                row["cpu_pct"] = float(match.group("cpu").rstrip("%"))
            containers[match.group("name")] = row
        stats.seen(t)
        yield t, containers


# --- vmstat.log ----------------------------------------------------------------------------------

_VMSTAT_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)\s+(\d\d):(\d\d):(\d\d)\s*$")


def read_vmstat(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, dict]]:
    """`vmstat -t 1` -> {"cpu": {user, sys, idle, iowait, steal}, "runnable", "blocked"} (integer %).

    The first data line averages since boot, so it is left out; repeated headers are skipped."""
    columns: list[str] = []
    first = True
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("procs"):
            continue
        if line.startswith("r ") and " us " in f" {line} ":
            columns = line.split()
            zone = columns[-1] if columns and not columns[-1].islower() else ""
            if zone and zone.upper() not in ("UTC", "GMT"):
                stats.note(f"timestamps are in {zone}; read as UTC")
            continue
        match = _VMSTAT_TIME.search(line)
        values = line[: match.start()].split() if match else []
        if not match or not columns or not all(v.lstrip("-").isdigit() for v in values):
            stats.skipped += 1
            continue
        if first:
            first = False
            stats.note("first line (averages since boot) left out")
            continue
        row = dict(zip(columns, (int(v) for v in values), strict=False))
        t = utc_epoch(*(int(g) for g in match.groups()))
        cpu = {name: float(row[key]) for key, name in (("us", "user"), ("sy", "sys"), ("id", "idle"),
                                                       ("wa", "iowait"), ("st", "steal")) if key in row}
        record: dict = {"cpu": cpu}
        if "r" in row:
            record["runnable"] = row["r"]
        if "b" in row:
            record["blocked"] = row["b"]
        stats.seen(t)
        yield t, record


# --- iostat.log ----------------------------------------------------------------------------------

_IOSTAT_US = re.compile(r"^(\d\d)/(\d\d)/(\d{2,4})\s+(\d\d):(\d\d):(\d\d)(?:\s*([AaPp][Mm]))?\s*$")
_IOSTAT_HEADER = re.compile(r"^Linux\s+(?P<kernel>\S+)\s+\((?P<host>[^)]*)\).*?(?:\((?P<ncpu>\d+) CPU\))?\s*$")
_DISK_FIELDS = {"r/s": "r_s", "w/s": "w_s", "rkB/s": "rkb_s", "wkB/s": "wkb_s", "r_await": "r_await",
                "w_await": "w_await", "%util": "util", "aqu-sz": "aqu_sz", "avgqu-sz": "aqu_sz"}
_SKIP_DEVICES = ("loop", "ram", "zram", "sr", "scd", "fd")


def _iostat_time(line: str) -> float | None:
    match = _IOSTAT_US.match(line)
    if match:
        month, day, year, hour, minute, second, half = match.groups()
        year_n = int(year) + (2000 if len(year) == 2 else 0)
        hour_n = int(hour)
        if half:  # 12-hour clock: 12:xx AM is 00:xx, 12:xx PM is 12:xx
            hour_n = hour_n % 12 + (12 if half.upper() == "PM" else 0)
        try:
            return utc_epoch(year_n, int(month), int(day), hour_n, int(minute), int(second))
        except ValueError:
            return None
    if ISO_STAMP.match(line):
        return parse_iso(line)
    return None


def read_iostat(lines: Iterable[str], stats: FileStats, facts: dict | None = None) -> Iterator[tuple[float, dict]]:
    """`iostat -x -t 1` reports -> {"cpu": {user, nice, sys, iowait, steal, idle}, "disks": {...}}.

    The first report averages since boot, so it is left out. Loop, ram and optical devices are
    skipped (as the agent does). Device columns are found by name, so older and newer sysstat
    layouts both read."""
    t: float | None = None
    record: dict | None = None
    reports = 0
    columns: list[str] = []
    expect_cpu = False

    def finish() -> Iterator[tuple[float, dict]]:
        if t is not None and record is not None and reports > 1 and (record.get("cpu") or record.get("disks")):
            stats.seen(t)
            yield t, record

    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if expect_cpu:
            expect_cpu = False
            values = [_number(v) for v in line.split()]
            if record is not None and len(values) >= 6 and None not in values:
                user, nice, system, iowait, steal, idle = values[:6]
                record["cpu"] = {"user": user, "nice": nice, "sys": system, "iowait": iowait,
                                 "steal": steal, "idle": idle}
            else:
                stats.skipped += 1
            continue
        stamp = _iostat_time(line)
        if stamp is not None:
            yield from finish()
            t, record, reports = stamp, {"disks": {}}, reports + 1
            continue
        if line.startswith("avg-cpu"):
            expect_cpu = True
            continue
        if line.startswith("Device"):
            columns = [c.rstrip(":") for c in line.split()]
            continue
        if line.startswith("Linux"):
            match = _IOSTAT_HEADER.match(line)
            if match and facts is not None:
                facts.setdefault("kernel", match.group("kernel"))
                facts.setdefault("hostname", match.group("host"))
                if match.group("ncpu"):
                    facts.setdefault("ncpu", int(match.group("ncpu")))
            continue
        parts = line.split()
        if record is None or not columns or len(parts) != len(columns):
            stats.skipped += 1
            continue
        name = parts[0]
        if name.startswith(_SKIP_DEVICES):
            continue
        disk = {}
        for column, value in zip(columns[1:], parts[1:], strict=False):
            key = _DISK_FIELDS.get(column)
            number = _number(value)
            if key and number is not None:
                disk[key] = number
        record["disks"][name] = disk
    if expect_cpu:
        stats.skipped += 1  # a report torn after its avg-cpu header
    yield from finish()
    if reports:
        stats.note("first report (averages since boot) left out")


# --- ss_6001.log ---------------------------------------------------------------------------------


def read_ss(lines: Iterable[str], stats: FileStats) -> Iterator[tuple[float, dict]]:
    """Blocks of `ss` filtered on one port -> {"states": {STATE: n}, "recv_q_max", "send_q_max"}."""
    for t, body in _blocks(lines, stats):
        states: dict[str, int] = {}
        recv_q = send_q = 0
        for line in body:
            parts = line.split()
            if not parts or parts[0] in ("State", "Netid"):
                continue
            if len(parts) < 3 or not (parts[1].isdigit() and parts[2].isdigit()):
                stats.skipped += 1
                continue
            states[parts[0]] = states.get(parts[0], 0) + 1
            recv_q, send_q = max(recv_q, int(parts[1])), max(send_q, int(parts[2]))
        stats.seen(t)
        yield t, {"states": states, "recv_q_max": recv_q, "send_q_max": send_q}


# --- dmesg_live.log ------------------------------------------------------------------------------

_DMESG_T = re.compile(
    r"\[(?:\w{3}\s+)?(?P<mon>\w{3})\s+(?P<day>\d{1,2})\s+(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)\s+(?P<y>\d{4})\]\s?"
)
_DMESG_FACTS = (
    ("kernel", re.compile(r"^Linux version (\S+)")),
    ("hypervisor", re.compile(r"^Hypervisor detected: (.+)$")),
    ("cpu_model", re.compile(r"^smpboot: CPU0: (.+?)(?: \(family:.*)?$")),
    ("machine", re.compile(r"^DMI: (.+?)(?:, BIOS .*)?$")),
    ("ncpu", re.compile(r"^smp: Brought up \d+ nodes?, (\d+) CPUs")),
    ("scsi_controller", re.compile(r"^scsi host\d+: ((?:Virtio SCSI|sym53c8xx|LSI|mptspi|vmw_pvscsi)[^,]*)")),
)


def read_dmesg(lines: Iterable[str], stats: FileStats, facts: dict | None = None) -> Iterator[tuple[float, str]]:
    """`dmesg -T` lines -> (time, text). Lines stamped in seconds since boot cannot be placed in
    time without the boot time and are counted as skipped."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        match = _DMESG_T.search(line)
        month = _MONTHS.get(match.group("mon").lower()) if match else None
        if not match or month is None:
            if line.strip():
                stats.skipped += 1
            continue
        try:
            t = utc_epoch(int(match.group("y")), month, int(match.group("day")), int(match.group("h")),
                          int(match.group("m")), int(match.group("s")))
        except ValueError:
            stats.skipped += 1
            continue
        text = line[match.end():]
        if facts is not None:
            for key, pattern in _DMESG_FACTS:
                if key not in facts and (found := pattern.search(text)):
                    facts[key] = int(found.group(1)) if key == "ncpu" else found.group(1).strip()
            facts.setdefault("boot", t)
        stats.seen(t)
        yield t, text
