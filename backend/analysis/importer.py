"""Import a hand-made monitoring folder (the field engineer's scripts) as a run directory.

`import_traces(DIR, OUT)` reads what it finds of heartbeat.log, loadavg.log, memory.log,
docker_stats.log, vmstat.log, iostat.log, dmesg_live.log, ss_<port>.log (in DIR or DIR/monitoring)
and the install script's log(s) (DIR/install/ or *install*.log), and writes OUT in the layout of
backend/run/journal.py, so that `vast-loopback report OUT` analyses an old run like a new one:
- `SampleTaken`: the sources merged per second in the agent's format (cpu from iostat's avg-cpu,
  else vmstat; load from loadavg; mem from memory.log; disks from iostat; containers from
  docker_stats). A sample holds only what was measured in that second: memory.log (every 5 s) and
  docker_stats (every ~7 s) are never carried forward.
- `StepStarted`/`StepFinished` for the install phases, `ClusterStateChanged`, `VtaskChanged`,
  `InstallLogAppended` (ANSI and spinner repaints stripped), `KernelMessageSeen` for dmesg lines
  that match a failure signature, `StallDetected` for heartbeat lines that came >= 50 ms late
  (the loop is `sleep 1`: lateness = interval - 1 s; the worst one is always kept),
  `SamplingGapped` where no source wrote anything for a while, and `TracesImported` (files, what
  the traces say about the guest, what was assumed).

Only regular files are read (a symlink, a FIFO or a device in the folder is skipped and said), line
by line: a line longer than MAX_LINE_BYTES is skipped and said, and an install log is kept up to
MAX_INSTALL_LOG_BYTES, so a crafted or damaged folder costs bounded memory. An import that fails
leaves no half-written run directory behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backend import events as ev
from backend.analysis import traces
from backend.analysis.diagnose import classify_line
from backend.clients.installlog import clean_lines, line_timestamp, parse_line
from backend.errors import BadInput
from backend.run.engine import VERSION
from backend.run.journal import Journal, RunDir
from backend.run.safefiles import NotRegular, bounded_lines, open_regular, too_long

STALL_MIN_MS = 50.0
SAMPLING_GAP_S = 5.0
LOG_BATCH_LINES = 200
LOG_BATCH_BYTES = 1024 * 1024  # an InstallLogAppended stays well under the journal's line limit
MAX_LINE_BYTES = 1024 * 1024  # a trace line; the field's longest (a spinner's repaints) is 19.5 KB
MAX_INSTALL_LOG_BYTES = 64 * 1024 * 1024  # an install log kept; the field's is 43 KB
NOTED_LINES = 3  # skipped lines named in a file's note; the rest are counted

KINDS = (  # (kind, file-name pattern), first match wins
    ("heartbeat", re.compile(r"heartbeat", re.I)),
    ("loadavg", re.compile(r"loadavg", re.I)),
    ("memory", re.compile(r"^mem(ory|info)?[_.-]?", re.I)),
    ("docker_stats", re.compile(r"docker", re.I)),
    ("vmstat", re.compile(r"vmstat", re.I)),
    ("iostat", re.compile(r"iostat", re.I)),
    ("dmesg", re.compile(r"dmesg|kmsg", re.I)),
    ("ss", re.compile(r"^ss[_.-]|^ss$|port_\d+", re.I)),
    ("unread", re.compile(r"mpstat|pidstat|pcap", re.I)),
    ("install", re.compile(r"install", re.I)),
)
PHASE_IDS = (  # install-script phase title keyword -> step id (what backend/steps/install.py calls them)
    ("system check", "system_checks"), ("docker", "docker"), ("proxmox", "proxmox_integration"),
    ("network", "network"), ("director", "vast_dirs"), ("ssh", "ssh_keys"), ("clean", "cleanup"),
    ("bootstrap", "bootstrap"), ("creat", "cluster_create"), ("online", "wait_online"), ("verif", "verify"),
)
LOG_FILE_STAMP = re.compile(r"Log file: \S*?(\d{4})(\d\d)(\d\d)_(\d\d)(\d\d)(\d\d)\.log")
INSTALL_FACTS = (
    ("mgmt_ip", re.compile(r"Management IP: (\S+)")),
    ("build", re.compile(r"\b(release-\d+-\d+-\d+-\d+)\b")),
    ("cluster_name", re.compile(r"(?:Creating Cluster|Cluster) (\S+?)(?:\.\.\.| state:)")),
    ("guest_cores_seen_by_installer", re.compile(r"Only (\d+) CPU cores available")),
    ("guest_ram_gb_seen_by_installer", re.compile(r"(\d+)GB RAM available")),
    ("disk_free_gb", re.compile(r"Disk space: (\d+)GB")),
)
COMPLETE = re.compile(r"Installation Complete", re.I)


def phase_step_id(number: str, title: str) -> str:
    lowered = title.lower()
    for word, step in PHASE_IDS:
        if word in lowered:
            return step
    return f"phase_{number}"


# --- finding the files ---------------------------------------------------------------------------


def _classify(path: Path) -> str | None:
    if path.parent.name.lower() in ("install", "install_logs"):
        return "install"
    return next((kind for kind, pattern in KINDS if pattern.search(path.stem)), None)


def find_files(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for place in (folder, folder / "monitoring", folder / "install", folder / "install_logs",
                  folder / "monitoring_logs"):
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):  # not only regular files: the others are skipped and said
            if (path.is_symlink() or not path.is_dir()) and path.suffix in (".log", ".txt", "") \
                    and not path.name.startswith("."):
                kind = _classify(path)
                if kind:
                    found.setdefault(kind, []).append(path)
    return found


def _skip_line(stats: traces.FileStats, number: int, reason: str) -> None:
    stats.skipped += 1
    if stats.skipped <= NOTED_LINES:
        stats.note(f"line {number} skipped: {reason}.")


def _raw_lines(path: Path, stats: traces.FileStats) -> Iterator[tuple[int, str]]:
    """(number, text) of each line of a regular file, over-long lines skipped and counted; a file
    that is not regular is skipped whole, with the reason in `stats`."""
    try:
        handle = open_regular(path)
    except (NotRegular, OSError) as exc:
        what = exc.what if isinstance(exc, NotRegular) else exc.strerror or str(exc)
        stats.note(f"skipped: {what} (only regular files are read).")
        return
    with handle:
        for number, raw in bounded_lines(handle, MAX_LINE_BYTES):
            if raw is None:
                _skip_line(stats, number, too_long(MAX_LINE_BYTES))
            else:
                yield number, raw.decode("utf-8", errors="replace")


def _lines(path: Path, stats: traces.FileStats) -> Iterator[str]:
    for _number, line in _raw_lines(path, stats):
        yield line


# --- the install log -----------------------------------------------------------------------------


@dataclass
class Phase:
    number: str
    title: str
    start: float | None
    index: int  # line index of its header


@dataclass
class InstallLog:
    path: Path
    lines: list[str]
    times: list[float | None]  # each line's own timestamp, or None
    start_hint: float | None = None
    phases: list[Phase] = field(default_factory=list)
    stats: traces.FileStats | None = None  # lines skipped, and why

    @property
    def score(self) -> tuple[int, int, int]:
        stamped = sum(1 for t in self.times if t is not None)
        return (sum(1 for p in self.phases if self.times[p.index] is not None), stamped, len(self.lines))

    def effective_times(self) -> list[float | None]:
        """Each line's time: its own, else the last one seen before it (else the log's start)."""
        result: list[float | None] = []
        last = self.start_hint
        for t in self.times:
            if t is not None:
                last = t
            result.append(last)
        return result


def read_install_log(path: Path, name: str) -> InstallLog:
    """The install log's clean lines (see `clean_lines`), read line by line; kept up to
    MAX_INSTALL_LOG_BYTES (what comes after is counted as skipped)."""
    stats = traces.FileStats(name, "install")
    lines: list[str] = []
    start_hint: float | None = None
    kept = 0
    for number, physical in _raw_lines(path, stats):
        if kept > MAX_INSTALL_LOG_BYTES:
            _skip_line(stats, number, f"the install log is longer than {MAX_INSTALL_LOG_BYTES:,} bytes")
            continue
        kept += len(physical)
        if start_hint is None and (match := LOG_FILE_STAMP.search(physical)):
            start_hint = traces.utc_epoch(*(int(g) for g in match.groups()))
        for line in clean_lines(physical):
            if not lines or lines[-1] != line:
                lines.append(line)
    times = [line_timestamp(line) for line in lines]
    log = InstallLog(path, lines, times, start_hint=start_hint, stats=stats)
    headers = [(i, fact) for i, line in enumerate(lines) if (fact := parse_line(line)) and fact.kind == "phase"]
    effective = log.effective_times()
    for position, (index, fact) in enumerate(headers):
        start = times[index]
        if start is None:  # a colour-only header: the first stamped line inside the phase, else the last before
            end = headers[position + 1][0] if position + 1 < len(headers) else len(lines)
            start = next((times[j] for j in range(index + 1, end) if times[j] is not None), effective[index])
        log.phases.append(Phase(fact.name, fact.value, start, index))
    return log


def _install_events(log: InstallLog, facts: dict) -> tuple[list[ev.Event], str, str]:
    """Events of the primary install log, its final cluster state and cluster_deploy's state."""
    out: list[ev.Event] = []
    effective = log.effective_times()
    first_time = next((t for t in effective if t is not None), None)
    state, deploy = "", ""
    completed = False
    failure_at: float | None = None
    failure_line = ""
    for line, t in zip(log.lines, effective, strict=True):
        for key, pattern in INSTALL_FACTS:
            if key not in facts and (match := pattern.search(line)):
                facts[key] = match.group(1)
        if COMPLETE.search(line):
            completed = True
        fact = parse_line(line)
        if fact is None:
            continue
        when = fact.ts or t or first_time or 0.0
        if fact.kind == "cluster_state" and fact.value != state:
            out.append(ev.ClusterStateChanged(ts=when, state=fact.value, previous=state, source="log"))
            state = fact.value
        elif fact.kind == "task":
            out.append(ev.VtaskChanged(ts=when, name=fact.name, task_id=fact.task_id or 0, state=fact.value,
                                       runtime_s=fact.runtime_s, message=line.strip()))
            if fact.name == "cluster_deploy":
                deploy = fact.value
                if fact.value == "FAILED" and failure_at is None:
                    failure_at, failure_line = when, line.strip()
        elif fact.kind in ("panic", "oom"):
            out.append(ev.KernelMessageSeen(ts=when, source=f"install log {log.path.name}", text=line.strip(),
                                            match=fact.kind))
    completed = completed or deploy == "COMPLETED"
    last_time = next((t for t in reversed(effective) if t is not None), None)
    for position, phase in enumerate(log.phases):
        step = phase_step_id(phase.number, phase.title)
        start = phase.start if phase.start is not None else first_time or 0.0
        out.append(ev.StepStarted(ts=start, step=step, title=f"Phase {phase.number}: {phase.title}",
                                  group="install", detail="from the install script's log"))
        following = log.phases[position + 1] if position + 1 < len(log.phases) else None
        end = following.start if following is not None else last_time
        failed_here = failure_at is not None and start <= failure_at and (end is None or failure_at <= end)
        if failed_here:
            out.append(ev.StepFinished(ts=failure_at or start, step=step, ok=False, error=failure_line,
                                       result={"phase": phase.number}))
        elif following is not None or completed:
            out.append(ev.StepFinished(ts=end if end is not None else start, step=step, ok=True,
                                       result={"phase": phase.number}))
    out.extend(_log_batches(log, effective, first_time))
    return out, state, deploy


def _log_batches(log: InstallLog, effective: list[float | None], first: float | None) -> Iterator[ev.Event]:
    batch: list[str] = []
    batch_t: float | None = None
    offset = 0
    size = 0
    for line, t in zip(log.lines, effective, strict=True):
        t = t if t is not None else first
        if batch and (t != batch_t or len(batch) >= LOG_BATCH_LINES or size + len(line) > LOG_BATCH_BYTES):
            yield ev.InstallLogAppended(ts=batch_t or 0.0, source="install", lines=batch, offset=offset)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
        batch_t = t
        offset += len(line.encode("utf-8")) + 1
    if batch:
        yield ev.InstallLogAppended(ts=batch_t or 0.0, source="install", lines=batch, offset=offset)


# --- samples -------------------------------------------------------------------------------------


class SampleMerger:
    """Readings of every source keyed by the second they fell in."""

    def __init__(self) -> None:
        self.slots: dict[int, dict] = {}
        self.cpu_from: dict[str, int] = {"iostat": 0, "vmstat": 0}

    def slot(self, t: float) -> dict:
        second = int(math.floor(t))
        sample = self.slots.get(second)
        if sample is None:
            sample = self.slots[second] = {"t": float(second)}
        return sample

    def samples(self, ncpu: int | None) -> list[dict]:
        ordered = [self.slots[k] for k in sorted(self.slots)]
        previous: float | None = None
        for sample in ordered:
            sample["dt"] = round(sample["t"] - previous, 3) if previous is not None else 1.0
            previous = sample["t"]
            if ncpu and "cpu" in sample:
                sample["cpu"]["ncpu"] = ncpu
        return ordered


def _heartbeat_events(times: list[float], merger: SampleMerger) -> tuple[list[ev.Event], dict]:
    """Stalls of a `sleep 1; date` loop: lateness = interval - nominal interval."""
    if len(times) < 2:
        return [], {}
    intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
    median = statistics.median(intervals)
    nominal = round(median, 1) if median >= 0.1 else median
    out: list[ev.Event] = []
    worst_i = max(range(len(intervals)), key=intervals.__getitem__)
    for i, interval in enumerate(intervals):
        late_ms = (interval - nominal) * 1000.0
        merger.slot(times[i + 1])["hb"] = {"max_ms": round(max(0.0, late_ms), 1), "n": 1}
        if late_ms >= STALL_MIN_MS or i == worst_i:
            out.append(ev.StallDetected(ts=times[i + 1], start=times[i] + nominal, length_ms=round(late_ms, 1),
                                        interval_ms=round(nominal * 1000.0, 1)))
    summary = {"ticks": len(times), "interval_s": nominal, "max_interval_s": round(max(intervals), 3)}
    return out, summary


# --- the import ----------------------------------------------------------------------------------


def import_traces(traces_dir: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> RunDir:
    """Read a hand-made monitoring folder and write it as a run directory; returns the RunDir."""
    folder = Path(traces_dir)
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder", hint="give the folder that holds heartbeat.log, iostat.log, ...")
    files = find_files(folder)
    readable = {k: v for k, v in files.items() if k != "unread"}
    if not readable:
        raise BadInput(
            f"{folder} holds none of the field monitor's files",
            hint="expected some of heartbeat.log, loadavg.log, memory.log, docker_stats.log, vmstat.log, "
                 "iostat.log, dmesg_live.log, ss_6001.log, install/*.log (in the folder or its monitoring/)",
        )
    facts: dict = {}
    notes: list[str] = ["timestamps without a zone are read as UTC (the field run's vmstat says UTC)"]
    stats: list[traces.FileStats] = []
    events: list[ev.Event] = []
    merger = SampleMerger()

    def file_stats(path: Path, kind: str) -> traces.FileStats:
        item = traces.FileStats(str(path.relative_to(folder)), kind)
        stats.append(item)
        return item

    def source(path: Path, kind: str) -> tuple[Iterator[str], traces.FileStats]:
        """A file's lines for its reader, and the stats both of them fill."""
        item = file_stats(path, kind)
        return _lines(path, item), item

    for path in files.get("iostat", []):
        for t, record in traces.read_iostat(*source(path, "iostat"), facts):
            sample = merger.slot(t)
            if "cpu" in record:
                sample["cpu"] = record["cpu"]
                merger.cpu_from["iostat"] += 1
            if record.get("disks"):
                sample["disks"] = record["disks"]
    for path in files.get("vmstat", []):
        for t, record in traces.read_vmstat(*source(path, "vmstat")):
            sample = merger.slot(t)
            if "cpu" not in sample and record.get("cpu"):
                sample["cpu"] = record["cpu"]
                merger.cpu_from["vmstat"] += 1
            for key in ("runnable", "blocked"):
                if key in record:
                    sample.setdefault(key, record[key])
    for path in files.get("loadavg", []):
        for t, record in traces.read_loadavg(*source(path, "loadavg")):
            merger.slot(t).update(record)
    for path in files.get("memory", []):
        for t, mem in traces.read_memory(*source(path, "memory")):
            merger.slot(t)["mem"] = mem
    for path in files.get("docker_stats", []):
        for t, containers in traces.read_docker_stats(*source(path, "docker_stats")):
            merger.slot(t)["containers"] = containers
    for path in files.get("ss", []):
        port = re.search(r"(\d+)", path.stem)
        key = f"tcp_{port.group(1)}" if port else "tcp"
        for t, record in traces.read_ss(*source(path, "ss")):
            merger.slot(t)[key] = record
    heartbeat_summary: dict = {}
    for path in files.get("heartbeat", []):
        beats = sorted(traces.read_heartbeat(*source(path, "heartbeat")))
        stall_events, heartbeat_summary = _heartbeat_events(beats, merger)
        events.extend(stall_events)
    for path in files.get("dmesg", []):
        for t, text in traces.read_dmesg(*source(path, "dmesg"), facts):
            match = classify_line(text)
            if match:
                events.append(ev.KernelMessageSeen(ts=t, source=path.name, text=text.strip(), match=match))
    for path in files.get("unread", []):
        item = file_stats(path, "unread")
        item.note("format not read by the importer")

    final_state, deploy = "", ""
    install_logs = [read_install_log(p, str(p.relative_to(folder))) for p in files.get("install", [])]
    if install_logs:
        primary = max(install_logs, key=lambda log: log.score)
        install_events, final_state, deploy = _install_events(primary, facts)
        events.extend(install_events)
        item = primary.stats or file_stats(primary.path, "install")
        stats.append(item)
        item.records = len(primary.lines)
        stamped = [t for t in primary.times if t is not None]
        item.first, item.last = (min(stamped), max(stamped)) if stamped else (primary.start_hint, None)
        item.note("the install log imported (ANSI colours and spinner repaints stripped)")
        for other in install_logs:
            if other is primary:
                continue
            extra = other.stats or file_stats(other.path, "install")
            stats.append(extra)
            extra.records = len(other.lines)
            last = other.phases[-1] if other.phases else None
            extra.first = other.start_hint
            extra.note(f"not imported (the primary install log is {primary.path.name})"
                       + (f"; its last phase is {last.number}: {last.title}" if last else ""))
        facts["install_log"] = primary.path.name

    ncpu = facts.get("ncpu") if isinstance(facts.get("ncpu"), int) else None
    samples = merger.samples(ncpu)
    if merger.cpu_from["vmstat"]:
        notes.append(f"cpu from vmstat (whole percents) in {merger.cpu_from['vmstat']} seconds without iostat")
    if heartbeat_summary:
        facts["heartbeat"] = heartbeat_summary
    for before, after in zip(samples, samples[1:], strict=False):
        if after["t"] - before["t"] > SAMPLING_GAP_S:
            events.append(ev.SamplingGapped(ts=after["t"], start=before["t"], end=after["t"],
                                            reason="no trace file has a line in this interval"))

    times = [e.ts for e in events if e.ts] + ([samples[0]["t"], samples[-1]["t"]] if samples else [])
    t0, t1 = (min(times), max(times)) if times else (0.0, 0.0)
    name = str(facts.get("cluster_name") or "imported")
    existed = Path(run_dir).is_dir() and not Path(run_dir).is_symlink()
    run = RunDir.create(run_dir, vm_name=re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40])
    try:  # an import that fails leaves nothing half-written
        opening: list[ev.Event] = [
            ev.RunStarted(ts=t0, run_id=run.run_id, target=f"imported traces: {folder}", vm_name=name, version=VERSION),
            ev.TracesImported(ts=t0, source=str(folder), files=[s.to_dict() for s in stats], facts=facts,
                              notes=notes),
        ]
        if samples:
            opening.append(ev.MonitorStarted(ts=samples[0]["t"], agent_version="field monitor scripts (imported)",
                                             interval_s=1.0))
        events.sort(key=lambda e: e.ts)
        outcome = "online" if final_state == "ONLINE" and deploy == "COMPLETED" else (
            "failed" if deploy == "FAILED" or final_state in ("FAILED",) else "")
        closing: list[ev.Event] = []
        if outcome:
            closing.append(ev.RunFinished(ts=t1, outcome=outcome, exit_code=0 if outcome == "online" else 1,
                                          message="imported from hand-made traces"))
        journal = Journal(run)
        try:
            for event in (*opening, *events, *closing):
                journal(event)
            for sample in samples:
                journal(ev.SampleTaken(ts=sample["t"], sample=sample))
        finally:
            journal.close()
        run.update_meta(status="finished", outcome=outcome or "imported", imported_from=str(folder))
    except BaseException:
        _discard(run, existed)
        raise
    return run


def _discard(run: RunDir, existed: bool) -> None:
    """What a failed import wrote: its files (the folder too, when the import made it)."""
    if not existed:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for child in run.path.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
