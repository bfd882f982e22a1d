#!/usr/bin/env python3
"""vast-loopback monitoring agent: one file, standard library only, Python 3.6+ (the guest's
/usr/libexec/platform-python on Rocky 8), shipped as is (`vast-loopback agent --print`).

    python3 agent.py [--interval 1] [--tick 0.02] [--idle-tick 0.04] [--tail '/vast/log/*.log'] [--root DIR] ...

It prints one JSON object per line on stdout, flushed per line:
  hello   once: version, python, interval, tick, idle_tick, pid, ncpu, warnings (parts that are
          unavailable)
  sample  once per interval: CPU % from /proc/stat as mpstat computes them (per-CPU deltas summed,
          guest excluded, counters going backwards clamp to 0) + the worst per-CPU steal; load and
          runnable/tasks; memory (used = total - available); per-disk r/s, w/s, rkB/s, wkB/s,
          r_await, w_await, aqu_sz, %util from /proc/diskstats as iostat computes them (32-bit tick
          counters wrap); per-container memory as `docker stats` computes it (cgroup v1
          usage - total_inactive_file, v2 usage - inactive_file; limit capped at MemTotal); PSI when
          the kernel has it; oom_kill from /proc/vmstat; the agent's own CPU seconds (agent_cpu_s)
          and their split by part (agent_cpu: tick, kmsg, sample, out); the stall detector's worst
          lateness, tick count and tick in effect this interval (hb) and its running histogram.
  gap     every scheduling stall of >= 50 ms: start (epoch s), length_ms, how ("stop"|"late"),
          err_ms (how far off length_ms can be).
  kmsg    kernel messages (/dev/kmsg, or a regular file in its `pri,seq,usec,flags;text` format)
          and lines of tailed log files (--tail, globs allowed) that match the OOM killer, hung
          tasks, soft lockups, RCU stalls or a VAST `PANIC[`.
  warn    a part that stopped working after start (reported once per part).
A part that is missing (no PSI, no cgroup, no permission on /dev/kmsg, no docker) degrades that part
only. SIGTERM, SIGHUP, SIGINT, SIGPIPE or a closed stdout end the agent cleanly (exit status 0).

The stall detector (the hard part, and the agent's main cost)
----------------------------------------------------------------
Every wake-up costs CPU, whatever the primitive: on the 2-vCPU Firecracker VM where this was
measured, time.sleep/select, nanosleep or clock_nanosleep(TIMER_ABSTIME) via ctypes, sigtimedwait
and a timerfd all cost within noise of each other: 35-75 us of CPU per wake-up for Python 3.6,
against 20-26 us for the same loop in C (the kernel's and the hypervisor's share), and more when
the CPUs are idle between wake-ups (every wake-up then leaves the idle state with cold caches: a C
loop costs ~10 us per wake-up on a busy CPU, ~20 on an idle one). Timer slack, pinning and a single
thread saved nothing measurable. So the detector needs no wake-up at all for the stalls the lab
injects, and ticks only for the others:

1. Process stops (SIGSTOP/SIGTSTP ... SIGCONT: how the lab injects stalls; also job control or a
   debugger) are measured exactly with no extra wake-up. The detector thread sleeps in a
   *relative* nanosleep(2) with a `rem` argument and is the only thread with SIGCONT unblocked; a
   (no-op) SIGCONT handler is installed. When the process is stopped, the kernel wakes the
   sleeping thread to take part in the group stop and do_nanosleep() stores the time that was left
   *at that moment*; on SIGCONT the handler makes nanosleep return EINTR and copy that remainder
   out. So the stop began at (sleep start + requested - rem) and ended now: measured +0.0..+0.6 ms
   on 50..1000 ms stops, with any tick, even `--tick 0` (one wake-up a second). (select(2) would
   not do: it computes its remainder at return time.)
   Two rarer cases are caught too: a stop that lands while the thread is awake (a few
   microseconds of Python, or waiting for the GIL) leaves a SIGCONT byte in the signal wake-up
   pipe (signal.set_wakeup_fd) and shows as the tick's lateness; a thread that, on saturated CPUs,
   gets no CPU between being woken for the stop and SIGCONT shows it as run delay in
   /proc/thread-self/schedstat (a baseline taken at each interval's first tick, read again only on
   such events). Since the thread that starts a group stop may itself wait for a CPU, a stop can be
   measured a few ms short: stops are reported from 80 % of the threshold.
2. Every other delay (runqueue waits, a vCPU descheduled by the host, a paused VM) shows only as
   the lateness L of the periodic tick P. A runqueue delay is exactly L; a freeze that began while
   the thread slept lasted between L and L + P. The agent reports length_ms = L + P/2, err_ms = P/2,
   whenever L + P >= 50 ms, so no such stall of 50 ms or more is missed. P = 20 ms (--tick) keeps
   every length within 10 ms (cgroup-freezer stalls: +-8 ms measured) while the guest is busy.
   While it is idle (under a tenth of a core of work for 3 samples in a row, and no stall), P is
   40 ms (--idle-tick; err_ms 20 in those gap lines, hb.tick_ms 40 in those samples): half the
   wake-ups when they are dearest, and back to 20 ms at the first sample with work or a stall.

Cost, measured from outside as a user runs it (bench/agent_outside.py: `python3.6 agent.py`, no
arguments, as root, cgroup CPU accounting including every forked child, 30 s after a 5 s warm-up,
beside the field run's monitor set; README: Performance), on that VM with other work on both cores
(a busy guest: the 20 ms tick): the field set 1.5-1.6 CPU-s/min, the agent 0.19-0.23 (6.4-8.4x
cheaper), of which the ticks are 0.18, reading and computing the 1 Hz sample 0.022, writing it
0.006, kernel messages 0.003. At the idle tick (40 ms) 0.13-0.14 (11x); --tick 0 (exact stops
only) 0.043 (36x). On a quiet machine every wake-up costs more (~1.8x). The ticks run in their own
thread (the main thread may block on a full SSH pipe without making stalls up) with the least
Python per tick: one monotonic read, one ctypes call, two compares. The sampling keeps its /proc
files open (os.pread from offset 0), reads /proc/vmstat (the dearest file, for oom_kill alone)
again only on a kernel OOM line or every 30 samples when kernel messages are followed, and reads
kernel messages once per sample rather than waking for each.
"""

import argparse
import collections
import contextlib
import ctypes
import errno
import glob
import json
import os
import platform
import re
import signal
import stat
import subprocess
import sys
import threading
import time

VERSION = "1"
THRESHOLD_MS = 50.0
HIST_BOUNDS = (50, 100, 250, 500, 1000, 2000, 5000)
DEFAULT_TICK = 0.02
STOP_SLACK = 0.8  # stops are reported from 80 % of the threshold (measurement error under load)
# While the guest is idle the detector ticks twice as slowly (its wake-ups are the agent's main cost,
# and dearest on idle CPUs); its gap lines then say so (err_ms = idle tick / 2). The tick stays under
# the late threshold (a late tick must still bound a stall), and goes back to --tick as soon as the
# guest is busy again: a tenth of a core of work (user, nice, sys, iowait, irq, softirq, steal) in a
# sample, or a stall; idle means IDLE_AFTER_SAMPLES samples in a row without either.
IDLE_TICK_FACTOR = 2.0
IDLE_TICK_MAX = 0.8  # x the late threshold: 40 ms for the 50 ms threshold
BUSY_CORES = 0.1
IDLE_AFTER_SAMPLES = 3
NAME_REFRESH_S = 60.0  # docker ps at most once a minute
LIST_REFRESH_SAMPLES = 5  # container and disk directories and tail globs: listed again every 5 samples
LIST_REFRESH_S = 5.0  # (set from --interval in main: 5 samples)
# /proc/vmstat is the dearest file (the kernel sums every per-CPU event counter) and is read only for
# oom_kill: with kernel messages followed it is read again after a kernel OOM line (every OOM kill
# logs one) and every 30 samples; without them at every sample.
OOM_REFRESH_SAMPLES = 30
SKIP_DISKS = ("loop", "ram", "zram", "dm-")
WRAP32 = 1 << 32

PATTERNS = (
    ("panic", re.compile(r"PANIC\[|Kernel panic")),
    ("oom", re.compile(r"invoked oom-killer|Out of memory|Memory cgroup out of memory|oom-kill:|"
                       r"oom_reaper|Killed process \d+")),
    ("hung_task", re.compile(r"blocked for more than \d+ seconds")),
    ("soft_lockup", re.compile(r"soft lockup|hard LOCKUP")),
    ("rcu_stall", re.compile(r"rcu\S*:? .*detected stall|self-detected stall|detected stalls on CPU")),
)
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class Stop(Exception):
    """The agent must end: a termination signal or stdout went away."""


def match_line(text):
    """The category of a log or kernel line that matters, or None."""
    for name, pattern in PATTERNS:
        if pattern.search(text):
            return name
    return None


def read_text(path):
    """The whole file (os-level reads: no file objects on the 1 Hz path)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
            if len(data) < 4096:  # proc/sysfs files come in one read; a short read is the end
                break
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


class ProcFiles:
    """/proc files kept open and read again from their start with os.pread at each sample (the
    kernel makes such a file anew at every read from offset 0): no open/close per sample. A file
    that fails is closed and opened again at its next read."""

    def __init__(self):
        self.fds = {}
        self.sizes = {}

    def read(self, path):
        fd = self.fds.get(path)
        if fd is None:
            fd = self.fds[path] = os.open(path, os.O_RDONLY)
        size = self.sizes.get(path, 4096)
        try:
            data = os.pread(fd, size, 0)
            while len(data) >= size:  # a full buffer: there may be more
                size *= 4
                self.sizes[path] = size
                data = os.pread(fd, size, 0)
        except OSError:
            del self.fds[path]
            os.close(fd)
            raise
        return data.decode("utf-8", "replace")


# --- CPU: /proc/stat as mpstat computes it -------------------------------------------------------


def parse_stat(text):
    """Per-CPU counters {n: [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice]}
    and {"procs_running": n, "procs_blocked": n} from /proc/stat."""
    cpus = {}
    extra = {}
    for line in text.splitlines():
        if line.startswith("cpu"):
            if line[3:4] in (" ", ""):
                continue  # the aggregate line: mpstat sums the per-CPU lines instead
            parts = line.split()
            values = list(map(int, parts[1:11]))
            cpus[int(parts[0][3:])] = values + [0] * (10 - len(values))
        elif line.startswith("procs_"):
            name, _, value = line.partition(" ")
            extra[name] = int(value)
    return cpus, extra


def cpu_percent(prev, cur):
    """mpstat's CPU "all" line: the per-CPU deltas summed (offline CPUs skipped), %user without
    guest time, a counter that went backwards counts 0; plus the worst single CPU's %steal."""
    sums = [0] * 8  # user nice sys iowait irq soft steal idle
    total = 0
    steal_max = 0.0
    ncpu = 0
    for cpu, c in cur.items():
        p = prev.get(cpu)
        if p is None or not any(c[:8]) or not any(p[:8]):
            continue  # offline now, or back online without a reference
        ncpu += 1
        d_user = max(0, c[0] - p[0])
        d_nice = max(0, c[1] - p[1])
        rest = [max(0, c[2] - p[2]), max(0, c[4] - p[4]), max(0, c[5] - p[5]), max(0, c[6] - p[6]),
                max(0, c[7] - p[7]), max(0, c[3] - p[3])]
        interval = d_user + d_nice + sum(rest)
        sums[0] += max(0, (c[0] - c[8]) - (p[0] - p[8]))
        sums[1] += max(0, (c[1] - c[9]) - (p[1] - p[9]))
        for i, value in enumerate(rest):
            sums[2 + i] += value
        total += interval
        if interval:
            steal_max = max(steal_max, rest[4] * 100.0 / interval)
    total = total or 1  # mpstat: CPU "all" cannot be tickless
    names = ("user", "nice", "sys", "iowait", "irq", "soft", "steal", "idle")
    out = {name: round(value * 100.0 / total, 2) for name, value in zip(names, sums)}  # noqa: B905
    out["steal_max_cpu"] = round(steal_max, 2)
    out["ncpu"] = ncpu
    return out


# --- memory, load, vmstat, PSI -------------------------------------------------------------------

MEMINFO_KEYS = (("MemTotal", "total"), ("MemFree", "free"), ("MemAvailable", "available"), ("Buffers", "buffers"),
                ("Cached", "cached"), ("SwapTotal", "swap_total"), ("SwapFree", "swap_free"))


def parse_meminfo(text):
    """Bytes; used = total - available (MemAvailable, or free + buffers + cached before 3.14)."""
    mem = {}
    text = "\n" + text  # one str.find per key: cheaper than a regex over the whole file
    for name, key in MEMINFO_KEYS:
        at = text.find("\n" + name + ":")
        if at >= 0:
            mem[key] = int(text[at + len(name) + 2:text.find("\n", at + 1)].split()[0]) * 1024
    if "available" not in mem:
        mem["available"] = mem.get("free", 0) + mem.get("buffers", 0) + mem.get("cached", 0)
    mem["used"] = mem.get("total", 0) - mem["available"]
    order = ("total", "available", "used", "free", "buffers", "cached", "swap_total", "swap_free")
    return {key: mem[key] for key in order if key in mem}


def parse_loadavg(text):
    """([load1, load5, load15], runnable, tasks) from /proc/loadavg."""
    parts = text.split()
    running, _, tasks = parts[3].partition("/")
    return [float(parts[0]), float(parts[1]), float(parts[2])], int(running), int(tasks)


def parse_vmstat_counter(text, name):
    at = text.find("\n" + name + " ")
    if at < 0:
        if text.startswith(name + " "):
            at = -1
        else:
            return None
    return int(text[at + len(name) + 2:].split(None, 1)[0])


def parse_psi(text):
    """{"some": total us, "full": total us} from a /proc/pressure file."""
    out = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            if field.startswith("total="):
                out[kind] = int(field[6:])
    return out


# --- disks: /proc/diskstats as iostat computes it ------------------------------------------------


def parse_diskstats(text, names=None):
    """{name: (rd_ios, rd_sectors, rd_ticks, wr_ios, wr_sectors, wr_ticks, io_ticks, rq_ticks)} for
    the whole disks in `names` (every line when None)."""
    disks = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14 or (names is not None and parts[2] not in names):
            continue
        v = [int(x) for x in parts[3:14]]
        disks[parts[2]] = (v[0], v[2], v[3], v[4], v[6], v[7], v[9], v[10])
    return disks


def disk_rates(prev, cur, dt):
    """iostat -x: r/s, w/s, rkB/s, wkB/s, r_await, w_await (ms), aqu-sz, %util over `dt` seconds.
    I/O counts are 64-bit (a decrease means the device was reset: 0); tick counters are read as
    32-bit unsigned and their deltas wrap like iostat's."""
    out = {}
    dt = dt if dt > 0 else 1e-9
    for name, c in cur.items():
        p = prev.get(name)
        if p is None:
            continue
        rd = max(0, c[0] - p[0])
        wr = max(0, c[3] - p[3])
        rd_ticks = (c[2] - p[2]) % WRAP32
        wr_ticks = (c[5] - p[5]) % WRAP32
        out[name] = {
            "r_s": round(rd / dt, 2),
            "w_s": round(wr / dt, 2),
            "rkb_s": round(max(0, c[1] - p[1]) / 2.0 / dt, 2),
            "wkb_s": round(max(0, c[4] - p[4]) / 2.0 / dt, 2),
            "r_await": round(rd_ticks / float(rd), 2) if rd else 0.0,
            "w_await": round(wr_ticks / float(wr), 2) if wr else 0.0,
            "aqu_sz": round(((c[7] - p[7]) % WRAP32) / 1000.0 / dt, 2),
            "util": round(((c[6] - p[6]) % WRAP32) / 10.0 / dt, 2),
        }
    return out


def list_disks(sys_dir, all_disks=False):
    """Whole disks: the entries of /sys/block without loop, ram, zram (and dm-*, which repeat the
    I/O of the disks under them, unless all_disks)."""
    skip = SKIP_DISKS[:3] if all_disks else SKIP_DISKS
    return set(name for name in os.listdir(os.path.join(sys_dir, "block")) if not name.startswith(skip))


# --- containers: docker stats' memory from the cgroup files --------------------------------------


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def container_memory(directory, version, host_total=None):
    """(usage as `docker stats` shows it, limit) of one container's memory cgroup.

    docker/cli calculateMemUsageUnixNoCache: v1 usage - total_inactive_file when smaller than usage,
    else (v2) usage - inactive_file when smaller, else usage. The daemon caps the limit at the
    host's memory."""
    if version == 1:
        usage = int(read_text(os.path.join(directory, "memory.usage_in_bytes")))
        limit_text = read_text(os.path.join(directory, "memory.limit_in_bytes")).strip()
    else:
        usage = int(read_text(os.path.join(directory, "memory.current")))
        limit_text = read_text(os.path.join(directory, "memory.max")).strip()
    stats = parse_kv(read_text(os.path.join(directory, "memory.stat")))
    if version == 1 and "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        mem = usage - stats["total_inactive_file"]
    elif stats.get("inactive_file", 0) < usage:
        mem = usage - stats.get("inactive_file", 0)
    else:
        mem = usage
    limit = None if limit_text == "max" else int(limit_text)
    if host_total and (limit is None or limit > host_total):
        limit = host_total
    return mem, limit


CONTAINER_ID = re.compile(r"^(?:docker-)?([0-9a-f]{64})(?:\.scope)?$")


class Containers:
    """Finds the containers' memory cgroups (v1 or v2, cgroupfs or systemd driver) and their names
    (config.v2.json, else `docker ps` at most once a minute, else the short id)."""

    def __init__(self, cgroup_root, docker_dir, allow_docker_ps=True):
        self.root = cgroup_root
        self.docker_dir = docker_dir
        self.allow_docker_ps = allow_docker_ps
        self.names = {}
        self.dirs = {}
        self.listed_at = -1e9
        self.ps_at = -1e9
        if os.path.exists(os.path.join(cgroup_root, "memory", "memory.usage_in_bytes")) or \
                os.path.isdir(os.path.join(cgroup_root, "memory", "docker")):
            self.version = 1
            self.parents = [os.path.join(cgroup_root, "memory", "docker"),
                            os.path.join(cgroup_root, "memory", "system.slice")]
        elif os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
            self.version = 2
            self.parents = [os.path.join(cgroup_root, "system.slice"), os.path.join(cgroup_root, "docker")]
        else:
            self.version = 0
            self.parents = []

    def _list(self, now):
        dirs = {}
        for parent in self.parents:
            try:
                entries = os.listdir(parent)
            except OSError:
                continue
            for entry in entries:
                m = CONTAINER_ID.match(entry)
                if m:
                    dirs[m.group(1)] = os.path.join(parent, entry)
        self.dirs = dirs
        self.listed_at = now

    def _name(self, cid):
        try:
            config = json.loads(read_text(os.path.join(self.docker_dir, "containers", cid, "config.v2.json")))
            name = str(config.get("Name") or "").lstrip("/")
            if name:
                return name
        except (OSError, ValueError):
            pass
        return None

    def _docker_ps(self, now):
        self.ps_at = now
        try:
            proc = subprocess.Popen(["docker", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            out = proc.communicate(timeout=10)[0].decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            self.allow_docker_ps = False
            return
        for line in out.splitlines():
            cid, _, name = line.partition(" ")
            if cid and name:
                self.names[cid] = name.split(",")[0]

    def sample(self, now, host_total):
        if not self.version:
            return {}
        if now - self.listed_at >= LIST_REFRESH_S:
            self._list(now)
        unknown = [cid for cid in self.dirs if cid not in self.names]
        for cid in unknown:
            name = self._name(cid)
            if name:
                self.names[cid] = name
        if self.allow_docker_ps and any(cid not in self.names for cid in self.dirs) \
                and now - self.ps_at >= NAME_REFRESH_S:
            self._docker_ps(now)
        out = {}
        for cid, directory in sorted(self.dirs.items()):
            try:
                mem, limit = container_memory(directory, self.version, host_total)
            except (OSError, ValueError):
                self.listed_at = -1e9  # gone: list again next time
                continue
            out[self.names.get(cid, cid[:12])] = {"mem": mem, "limit": limit}
        return out


# --- kernel messages and tailed logs -------------------------------------------------------------

KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def parse_kmsg_record(record):
    """(level, seq, usec, text) of one /dev/kmsg record `pri,seq,usec,flags[,...];text`, or None."""
    head, sep, text = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        pri, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except (ValueError, IndexError):
        return None
    text = text.split("\n", 1)[0]  # continuation lines (" KEY=value") follow the text
    text = KMSG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return LEVELS[pri & 7], seq, usec, text


class Kmsg:
    """/dev/kmsg (one record per read, non-blocking) or a regular file in the same format.

    At start every record already there is read once: without `after_seq` only to learn the last
    sequence number (the resume point reported in samples); with it, the records after it that
    matter are reported (a reconnecting session loses no kernel message). Sequence numbers smaller
    than `after_seq` everywhere mean the guest rebooted: then every record that matters is new."""

    def __init__(self, path, after_seq=None):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.device = stat.S_ISCHR(os.fstat(self.fd).st_mode)
        self.buffer = b""
        self.offset = 0
        self.inode = os.fstat(self.fd).st_ino
        self.last_seq = None
        self.pending = []
        existing = self._parsed()
        if after_seq is not None:
            newest = existing[-1][1] if existing else -1
            if newest < after_seq:
                after_seq = -1
            self.pending = [r for r in existing if r[1] > after_seq]

    def read(self):
        """New records that matter: [(level, seq, usec, text, match)]."""
        records, self.pending = self.pending + self._parsed(), []
        out = []
        for level, seq, usec, text in records:
            what = match_line(text)
            if what:
                out.append((level, seq, usec, text, what))
        return out

    def _parsed(self):
        records = []
        for raw in (self._device_records() if self.device else self._file_records()):
            parsed = parse_kmsg_record(raw)
            if parsed is not None:
                if self.last_seq is not None and parsed[1] <= self.last_seq and not self.device:
                    continue  # a file rewritten with old records too
                records.append(parsed)
                self.last_seq = parsed[1]
        return records

    def _device_records(self):
        records = []
        while True:
            try:
                data = os.read(self.fd, 16384)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                if exc.errno == errno.EPIPE:
                    continue  # records were overwritten before we read them
                raise
            if not data:
                break
            records.append(data.decode("utf-8", "replace"))
        return records

    def _file_records(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self.inode or st.st_size < self.offset:
            if st.st_ino != self.inode:
                self.last_seq = None  # a new file: a new boot's messages, numbered from 0 again
            os.close(self.fd)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self.inode = os.fstat(self.fd).st_ino
            self.offset = 0
            self.buffer = b""
        if st.st_size <= self.offset:
            return []
        data = os.pread(self.fd, st.st_size - self.offset, self.offset)
        self.offset += len(data)
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        return [line.decode("utf-8", "replace") for line in lines if line and not line.startswith(b" ")]


class Tail:
    """Follows log files (glob patterns re-expanded every few seconds) for lines that match.
    Files present at start are read from their end (or from a given offset); files that appear
    later are read from their beginning; a truncated or replaced file is read again from 0."""

    def __init__(self, patterns, offsets=None):
        self.patterns = list(patterns) + [path for path in (offsets or {}) if path not in patterns]
        self.files = {}  # path -> [offset, inode, partial line]
        self.expanded_at = -1e9
        self.started = False
        self.offsets = dict(offsets or {})

    def _expand(self, now):
        self.expanded_at = now
        for pattern in self.patterns:
            paths = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
            for path in paths:
                if path in self.files:
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if path in self.offsets:
                    offset = min(self.offsets.pop(path), st.st_size)
                else:
                    offset = 0 if self.started else st.st_size
                self.files[path] = [offset, st.st_ino, b""]
        self.started = True

    def resume_offsets(self):
        """{path: byte offset of the first line not read completely}: where a new agent resumes."""
        return dict((path, state[0] - len(state[2])) for path, state in self.files.items())

    def read(self, now):
        """[(path, offset after the line, text, match)] for new matching lines."""
        if now - self.expanded_at >= LIST_REFRESH_S or not self.started:
            self._expand(now)
        out = []
        for path, state in self.files.items():
            try:
                st = os.stat(path)
            except OSError:
                continue
            if st.st_ino != state[1] or st.st_size < state[0]:
                state[:] = [0, st.st_ino, b""]
            if st.st_size <= state[0]:
                continue
            try:
                with open(path, "rb") as handle:
                    handle.seek(state[0])
                    data = handle.read(st.st_size - state[0])
            except OSError:
                continue
            offset = state[0] - len(state[2])
            lines = (state[2] + data).split(b"\n")
            state[2] = lines.pop()
            state[0] += len(data)
            for raw in lines:
                offset += len(raw) + 1
                text = raw.decode("utf-8", "replace").rstrip("\r")
                what = match_line(text)
                if what:
                    out.append((path, offset, text, what))
        return out


# --- the stall detector --------------------------------------------------------------------------


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _libc_nanosleep():
    """libc's nanosleep(req, rem) (no argtypes and no errno copy: the least work per call; the only
    failure with valid arguments is EINTR)."""
    try:
        function = ctypes.CDLL(None).nanosleep
        function.restype = ctypes.c_int
        return function
    except (OSError, AttributeError):
        return None


def hist_key(length_ms):
    key = HIST_BOUNDS[0]
    for bound in HIST_BOUNDS:
        if length_ms >= bound:
            key = bound
    return str(key)


class StallDetector(threading.Thread):
    """Sleeps `tick` seconds at a time; see the module docstring for how stops are measured exactly
    and how other delays are bounded. Found stalls are queued as (start monotonic, length s, how,
    err s) for the main thread, which alone writes to stdout. The interval's worst lateness and
    tick count live in `box` ([late_max, ticks]), which the main thread reads and resets."""

    def __init__(self, tick, threshold_ms=THRESHOLD_MS, late_threshold_ms=None, idle_tick=None):
        threading.Thread.__init__(self, name="stall-detector")
        self.daemon = True
        self.tick = tick if tick > 0 else 1.0
        self.coarse = tick <= 0  # stops only: late ticks cannot bound a stall to the spec
        self.threshold = threshold_ms / 1000.0
        self.late_threshold = (threshold_ms if late_threshold_ms is None else late_threshold_ms) / 1000.0
        if self.coarse:
            self.idle_tick = self.tick
        elif idle_tick is None:  # twice the tick, short enough that a late tick still bounds a stall
            self.idle_tick = max(self.tick, min(IDLE_TICK_FACTOR * self.tick, IDLE_TICK_MAX * self.late_threshold))
        else:
            self.idle_tick = max(self.tick, idle_tick)
        self.idle = False  # the guest is idle: tick at idle_tick (set by the main thread)
        self.paces = None
        self.pace = None
        self.found = collections.deque(maxlen=10000)
        self.box = [-1.0, 0]
        self.nanosleep = _libc_nanosleep()
        self.ready = threading.Event()
        self.signals_fd = None  # the read end of signal.set_wakeup_fd's pipe (set by main)
        self.delay_base = None
        self.schedstat_fd = None  # this thread's /proc/thread-self/schedstat, opened by the thread

    def _continued(self):
        """Whether a SIGCONT arrived since the last call (drains the signal wake-up pipe)."""
        if self.signals_fd is None:
            return False
        seen = b""
        try:
            while True:
                data = os.read(self.signals_fd, 512)
                if not data:
                    break
                seen += data
        except OSError:
            pass
        return bytes([signal.SIGCONT]) in seen

    def take_interval(self):
        """(worst lateness in s, ticks) since the previous call. The interval's first tick (late_max
        reset to -1) takes the run-delay baseline: in this thread, so that a stop it has not seen
        yet keeps the baseline from before it."""
        box = self.box
        late, ticks = box[0], box[1]
        box[0] = -1.0
        box[1] = 0
        return late, ticks

    def run(self):
        try:  # SIGCONT comes here; termination signals go to the main thread, which acts on them
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCONT})
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
        except (AttributeError, OSError, ValueError):
            pass
        with contextlib.suppress(OSError):
            self.schedstat_fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        self.delay_base = self._run_delay()
        threshold = self.threshold * STOP_SLACK
        self.paces = (self._pace(self.tick, threshold), self._pace(self.idle_tick, threshold))
        self.pace = self.paces[self.idle]
        self.ready.set()
        if self.nanosleep is None:
            self._run_plain()
        else:
            self._run_nanosleep()

    def _schedstat(self, field):
        """A field of this thread's /proc/thread-self/schedstat in seconds (0: CPU time, 1: time
        runnable but not running), or None. The file stays open: any thread may read it."""
        try:
            return int(os.pread(self.schedstat_fd, 128, 0).split()[field]) / 1e9
        except (OSError, TypeError, ValueError, IndexError):
            return None

    def cpu_s(self):
        """This thread's CPU time (s), or None."""
        return self._schedstat(0)

    def _run_delay(self):
        return self._schedstat(1)

    def _waited(self):
        """Run delay since the baseline taken at the start of this sample interval, or None."""
        if self.delay_base is None:
            return None
        now = self._run_delay()
        return None if now is None else now - self.delay_base

    def _worst(self, late):
        """A tick later than any before it in this interval. The interval's first (late_max -1)
        also takes the run-delay baseline that _waited() measures from."""
        if self.box[0] < 0.0:
            self.delay_base = self._run_delay()
        self.box[0] = late

    def _late(self, now, late, pace, threshold):
        """A tick `late` s late (the rare path): queue the stall it shows, if any."""
        tick, half, report_late = pace[0], pace[1], pace[2]
        if self._continued():
            # A stop that did not interrupt the sleep. Either it began while this thread was awake
            # (a few microseconds of Python, or waiting for the GIL): it lasted `late`; or the
            # thread, woken for it, got no CPU until the tick was due (saturated CPUs): then its
            # run delay shows it, and the stop began up to a tick before it was due.
            waited = self._waited()
            if waited is not None and waited >= 0.5 * late:
                length = min(max(waited, late), late + tick)
                self.found.append((now - length, length, "stop", half))
            elif late >= threshold:
                self.found.append((now - late, late, "stop", 0.005))
        elif late >= report_late:
            self.found.append((now - late - half, late + half, "late", half))

    def _pace(self, tick, threshold):
        """(tick, tick / 2, lateness reported as a stall, lateness worth a closer look, nanosleep's
        request) for one tick length."""
        # A late tick may hide a stall of up to late + tick: report it when that reaches the
        # threshold (with the coarse 1 s tick of --tick 0, only lateness beyond the threshold).
        report_late = self.late_threshold if self.coarse else self.late_threshold - tick
        check = min(report_late, threshold) if self.signals_fd is not None else report_late
        req = Timespec(int(tick), int(round((tick - int(tick)) * 1e9)))
        return (tick, tick / 2.0, report_late, check, ctypes.byref(req))

    def set_idle(self, idle):
        """The guest is idle (tick at idle_tick) or busy (tick at tick): from the next sleep on."""
        self.idle = idle
        if self.paces is not None:
            self.pace = self.paces[idle]

    def current_tick(self):
        """The tick in effect (s)."""
        return self.pace[0] if self.pace is not None else self.tick

    def _run_nanosleep(self):
        # A stop is measured a few ms short when a loaded CPU delays the thread that starts the
        # group stop: one measured within 20 % below the threshold may have reached it.
        threshold = self.threshold * STOP_SLACK
        rem = Timespec(0, 0)
        rem_p = ctypes.byref(rem)
        sleep = self.nanosleep
        mono = time.monotonic
        found = self.found
        box = self.box
        # Measured from the previous wake-up, not from a fresh clock read: a stop that hits the
        # few microseconds of Python between two sleeps still shows as lateness. The common path
        # (an on-time tick) is kept to a handful of bytecodes: every tick is a wake-up, and the
        # wake-ups are most of the agent's CPU.
        prev = mono()
        while True:
            pace = self.pace
            tick = pace[0]
            if sleep(pace[4], rem_p):  # -1 (EINTR): SIGCONT ended a stop; rem was taken when it began
                now = mono()
                length = now - (prev + tick - (rem.tv_sec + rem.tv_nsec * 1e-9))
                err = 0.001
                self._continued()
                if length < threshold:
                    # rem is taken when this thread runs after being woken for the stop; on a
                    # saturated CPU that may be only after SIGCONT. Then it waited in the run queue
                    # the whole stop: its run delay tells how long (an upper bound).
                    waited = self._waited()
                    if waited is not None and waited >= threshold:
                        length, err = min(waited, now - prev), 0.005
                box[1] += 1
                if length > box[0]:
                    self._worst(length)
                if length >= threshold:
                    found.append((now - length, length, "stop", err))
                prev = now
                continue
            now = mono()
            late = now - prev - tick
            prev = now
            box[1] += 1
            if late >= pace[3]:  # rare: a stall, or a stop that did not interrupt the sleep
                self._late(now, late, pace, threshold)
            if late > box[0]:  # rare: the interval's first tick, or a new worst
                self._worst(late)

    def _run_plain(self):
        threshold = self.threshold * STOP_SLACK
        mono = time.monotonic
        box = self.box
        prev = mono()
        while True:
            pace = self.pace
            tick = pace[0]
            time.sleep(tick)
            now = mono()
            late = now - prev - tick
            prev = now
            box[1] += 1
            if late >= pace[3]:
                self._late(now, late, pace, threshold)
            if late > box[0]:
                self._worst(late)


# --- the sampler ---------------------------------------------------------------------------------


class Sampler:
    """Reads the files of one sample and turns two snapshots into the `sample` line."""

    def __init__(self, proc, sys_dir, cgroup, docker_dir, allow_docker_ps=True, all_disks=False, warn=None):
        self.proc = proc
        self.sys = sys_dir
        self.all_disks = all_disks
        self.warn = warn or (lambda part, text: None)
        self.containers = Containers(cgroup, docker_dir, allow_docker_ps)
        self.disk_names = None
        self.disks_listed_at = -1e9
        self.prev = None
        self.files = ProcFiles()
        self.oom_kill = None
        self.oom_read_at = -1e9
        self.oom_every_s = 0.0  # /proc/vmstat at every sample unless kernel messages are followed
        self.psi_files = {}
        for name, key in (("cpu", "cpu"), ("memory", "mem"), ("io", "io")):
            path = os.path.join(proc, "pressure", name)
            try:
                parse_psi(self.files.read(path))
                self.psi_files[key] = path
            except OSError as exc:
                self.warn("psi", "no PSI (%s): %s" % (path, exc.strerror or exc))
                break
        if not self.containers.version:
            self.warn("containers", "no memory cgroup under %s: container memory is not sampled" % cgroup)
        for part, name in (("load", "loadavg"), ("mem", "meminfo"), ("oom_kill", "vmstat")):
            path = os.path.join(proc, name)
            if not os.access(path, os.R_OK):
                self.warn(part, "cannot read %s" % path)

    def _disk_names(self, now):
        if now - self.disks_listed_at >= LIST_REFRESH_S:
            self.disks_listed_at = now
            try:
                self.disk_names = list_disks(self.sys, self.all_disks)
            except OSError as exc:
                self.warn("disks", "cannot list %s/block (%s): all whole-looking disks are sampled"
                          % (self.sys, exc.strerror))
                self.disk_names = None
        return self.disk_names

    def _snapshot(self, now):
        snap = {"mono": now}
        try:
            snap["cpus"], snap["procs"] = parse_stat(self.files.read(os.path.join(self.proc, "stat")))
        except (OSError, ValueError, IndexError) as exc:
            self.warn("cpu", "cannot read /proc/stat: %s" % exc)
        try:
            names = self._disk_names(now)
            disks = parse_diskstats(self.files.read(os.path.join(self.proc, "diskstats")), names)
            if names is None:
                disks = {k: v for k, v in disks.items() if not k.startswith(SKIP_DISKS) and not k[-1:].isdigit()
                         or re.match(r"^(nvme\d+n\d+|mmcblk\d+|md\d+)$", k)}
            snap["disks"] = disks
        except (OSError, ValueError) as exc:
            self.warn("disks", "cannot read /proc/diskstats: %s" % exc)
        psi = {}
        for key, path in self.psi_files.items():
            try:
                psi[key] = parse_psi(self.files.read(path))
            except OSError as exc:
                self.warn("psi", "cannot read %s: %s" % (path, exc))
        snap["psi"] = psi
        return snap

    def prime(self, now):
        self.prev = self._snapshot(now)

    def sample(self, now):
        cur = self._snapshot(now)
        prev, self.prev = self.prev, cur
        dt = now - prev["mono"]
        out = {"type": "sample", "t": round(time.time(), 3), "dt": round(dt, 3)}
        if "cpus" in cur and "cpus" in prev:
            out["cpu"] = cpu_percent(prev["cpus"], cur["cpus"])
        try:
            load, runnable, tasks = parse_loadavg(self.files.read(os.path.join(self.proc, "loadavg")))
            out["load"] = load
            out["runnable"] = runnable
            out["tasks"] = tasks
        except (OSError, ValueError, IndexError) as exc:
            self.warn("load", "cannot read /proc/loadavg: %s" % exc)
        if "procs" in cur and "procs_blocked" in cur["procs"]:
            out["blocked"] = cur["procs"]["procs_blocked"]
        host_total = None
        try:
            out["mem"] = parse_meminfo(self.files.read(os.path.join(self.proc, "meminfo")))
            host_total = out["mem"].get("total")
        except (OSError, ValueError, IndexError) as exc:
            self.warn("mem", "cannot read /proc/meminfo: %s" % exc)
        if "disks" in cur and "disks" in prev:
            out["disks"] = disk_rates(prev["disks"], cur["disks"], dt)
        if self.containers.version:
            out["containers"] = self.containers.sample(now, host_total)
        if cur["psi"] and prev["psi"]:
            psi = {}
            for key, totals in cur["psi"].items():
                before = prev["psi"].get(key, {})
                for kind, value in totals.items():
                    if kind in before and dt > 0:
                        psi[key + "_" + kind] = round(max(0, value - before[kind]) / 1e4 / dt, 2)
            out["psi"] = psi
        if now - self.oom_read_at >= self.oom_every_s:
            self.oom_read_at = now
            try:
                self.oom_kill = parse_vmstat_counter(self.files.read(os.path.join(self.proc, "vmstat")), "oom_kill")
                if self.oom_kill is None:
                    self.warn("oom_kill", "no oom_kill counter in /proc/vmstat (kernel before 4.13)")
            except (OSError, ValueError) as exc:
                self.oom_kill = None
                self.warn("oom_kill", "cannot read /proc/vmstat: %s" % exc)
        if self.oom_kill is not None:
            out["oom_kill"] = self.oom_kill
        return out

    def oom_seen(self):
        """A kernel OOM line came: the next sample reads the oom_kill counter again."""
        self.oom_read_at = -1e9


def guest_busy(sample):
    """Whether the guest did a tenth of a core of work in this sample (or its CPU is unknown)."""
    cpu = sample.get("cpu")
    if not cpu:
        return True
    work = sum(cpu.get(key, 0.0) for key in ("user", "nice", "sys", "iowait", "irq", "soft", "steal"))
    return work / 100.0 * cpu.get("ncpu", 1) >= BUSY_CORES


# --- output and the main loop --------------------------------------------------------------------


class Output:
    def __init__(self, fd=1):
        self.fd = fd

    def emit(self, obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
                raise Stop() from None
            raise


class CpuParts:
    """The agent's own CPU time split by part, cumulative seconds (every sample's `agent_cpu`):
    tick (the stall detector's thread), kmsg (kernel messages and tailed logs, read and written),
    sample (reading the files and computing the sample), out (encoding and writing it). The rest of
    agent_cpu_s is the main thread's wake-ups and the start-up."""

    def __init__(self, detector):
        self.detector = detector
        self.clock = getattr(time, "CLOCK_THREAD_CPUTIME_ID", None)
        self.parts = {"kmsg": 0.0, "sample": 0.0, "out": 0.0}
        self.mark = 0.0

    def start(self):
        if self.clock is not None:
            self.mark = time.clock_gettime(self.clock)

    def add(self, part):
        """The main thread's CPU since the previous start() or add() counts to `part`."""
        if self.clock is not None:
            now = time.clock_gettime(self.clock)
            self.parts[part] += now - self.mark
            self.mark = now

    def report(self):
        out = {"tick": round(self.detector.cpu_s() or 0.0, 5)}
        for part, value in self.parts.items():
            out[part] = round(value, 5)
        return out


def _stop(signum, frame):
    raise Stop()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="agent.py", description="vast-loopback monitoring agent")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    parser.add_argument("--tick", type=float, default=DEFAULT_TICK,
                        help="stall detector tick in seconds (default 0.02; 0: exact stops only)")
    parser.add_argument("--idle-tick", type=float,
                        help="the tick while the guest is idle (default: twice --tick, at most 80 %% of the late "
                             "threshold; equal to --tick: never slower)")
    parser.add_argument("--threshold-ms", type=float, default=THRESHOLD_MS, help="smallest stall reported")
    parser.add_argument("--late-threshold-ms", type=float,
                        help="smallest late tick reported (default: --threshold-ms; a time-compressed lab "
                             "lowers --threshold-ms for its stops but keeps this at the physical 50)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many samples (0: never)")
    parser.add_argument("--root", default="/", help="prefix of /proc, /sys, /dev/kmsg and /var/lib/docker")
    parser.add_argument("--proc", help="the /proc directory")
    parser.add_argument("--sys", dest="sys_dir", help="the /sys directory")
    parser.add_argument("--cgroup", help="the cgroup root (default SYS/fs/cgroup)")
    parser.add_argument("--docker-dir", help="docker's data directory (default ROOT/var/lib/docker)")
    parser.add_argument("--kmsg", help="kernel messages: /dev/kmsg or a file in its format ('' disables)")
    parser.add_argument("--kmsg-after", type=int, help="resume: read kmsg from the start, after this seq")
    parser.add_argument("--tail", action="append", default=[], metavar="PATH",
                        help="follow a log file (glob allowed) for PANIC/OOM lines; repeatable")
    parser.add_argument("--tail-at", action="append", default=[], metavar="OFFSET:PATH",
                        help="follow PATH from byte OFFSET (resume); repeatable")
    parser.add_argument("--no-docker-ps", action="store_true", help="never run `docker ps` for names")
    parser.add_argument("--all-disks", action="store_true", help="also sample dm-* devices")
    return parser.parse_args(argv)


def set_list_refresh(interval):
    """Directories are listed again every few samples, so a file that appears (a VAST log created at
    its first PANIC) is followed within a few samples however fast the sampling."""
    global LIST_REFRESH_S
    LIST_REFRESH_S = max(0.1, LIST_REFRESH_SAMPLES * interval)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_list_refresh(args.interval)
    root = args.root
    proc = args.proc or os.path.join(root, "proc")
    sys_dir = args.sys_dir or os.path.join(root, "sys")
    cgroup = args.cgroup or os.path.join(sys_dir, "fs", "cgroup")
    docker_dir = args.docker_dir or os.path.join(root, "var", "lib", "docker")
    kmsg_path = os.path.join(root, "dev", "kmsg") if args.kmsg is None else args.kmsg
    out = Output()
    warnings = []
    warned = set()
    started = [False]

    def warn(part, text):
        if part in warned:
            return
        warned.add(part)
        if started[0]:
            out.emit({"type": "warn", "t": round(time.time(), 3), "part": part, "text": text})
        else:
            warnings.append({"part": part, "text": text})

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed stdout shows as EPIPE: Stop
    signal.signal(signal.SIGCONT, lambda signum, frame: None)  # makes nanosleep return EINTR
    detector = StallDetector(args.tick, args.threshold_ms, args.late_threshold_ms, args.idle_tick)
    try:  # the C-level handler also writes the signal's number here, from whichever thread ran it
        read_end, write_end = os.pipe()
        for fd in (read_end, write_end):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(write_end)
        detector.signals_fd = read_end
    except (OSError, ValueError, AttributeError):
        pass
    if detector.nanosleep is None:
        warn("stall", "no libc nanosleep via ctypes: stops are measured to within the tick only")
    try:
        detector.start()
        detector.ready.wait(5)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCONT})  # SIGCONT goes to the detector
        sampler = Sampler(proc, sys_dir, cgroup, docker_dir, not args.no_docker_ps, args.all_disks, warn)
        kmsg = None
        if kmsg_path:
            try:
                kmsg = Kmsg(kmsg_path, args.kmsg_after)
            except OSError as exc:
                warn("kmsg", "cannot read %s (%s): kernel messages are not followed"
                     % (kmsg_path, exc.strerror or exc))
        if kmsg is not None:
            sampler.oom_every_s = OOM_REFRESH_SAMPLES * args.interval
        offsets = {}
        for item in args.tail_at:
            offset, _, path = item.partition(":")
            offsets[path] = int(offset)
        tail = Tail(args.tail, offsets) if (args.tail or offsets) else None
        try:
            uptime = float(read_text(os.path.join(proc, "uptime")).split()[0])
        except (OSError, ValueError, IndexError):
            uptime = time.monotonic()
        boot_epoch = time.time() - uptime
        mono = time.monotonic
        now = mono()
        sampler.prime(now)
        if tail:
            tail.read(now)
        hello = {"type": "hello", "version": VERSION, "python": platform.python_version(),
                 "interval": args.interval, "tick": args.tick, "idle_tick": detector.idle_tick,
                 "threshold_ms": args.threshold_ms,
                 "late_threshold_ms": detector.late_threshold * 1000.0,
                 "pid": os.getpid(), "t": round(time.time(), 3),
                 "ncpu": len(sampler.prev.get("cpus", {})), "warnings": warnings}
        out.emit(hello)
        started[0] = True
        hist = dict((str(b), 0) for b in HIST_BOUNDS)
        cpu_clock = getattr(time, "CLOCK_PROCESS_CPUTIME_ID", None)
        parts = CpuParts(detector)
        samples = 0
        quiet = 0  # samples in a row with an idle guest and no stall
        next_at = now + args.interval
        while True:
            # One wake-up per sample: kernel messages wait for it too (each record carries its own
            # time, and waking for every message costs a wake-up each: a busy guest logs many).
            delay = next_at - mono()
            if delay > 0:
                time.sleep(delay)
            now = mono()
            parts.start()
            if kmsg is not None:
                try:
                    for level, seq, usec, text, what in kmsg.read():
                        out.emit({"type": "kmsg", "t": round(boot_epoch + usec / 1e6, 3), "source": "kmsg",
                                  "text": text, "match": what, "level": level, "seq": seq})
                        if what == "oom":
                            sampler.oom_seen()
                except OSError as exc:
                    warn("kmsg", "reading %s failed: %s" % (kmsg_path, exc))
                    kmsg = None
                    sampler.oom_every_s = 0.0
            if tail:
                for path, offset, text, what in tail.read(now):
                    out.emit({"type": "kmsg", "t": round(time.time(), 3), "source": path, "text": text,
                              "match": what, "offset": offset})
            parts.add("kmsg")
            to_epoch = time.time() - mono()
            stalled = bool(detector.found)
            while detector.found:
                start, length, how, err = detector.found.popleft()
                length_ms = round(length * 1000.0, 1)
                hist[hist_key(length_ms)] += 1
                out.emit({"type": "gap", "start": round(start + to_epoch, 3), "length_ms": length_ms,
                          "how": how, "err_ms": round(err * 1000.0, 1)})
            sample = sampler.sample(now)
            late, ticks = detector.take_interval()
            sample["hb"] = {"max_ms": round(max(0.0, late) * 1000.0, 1), "n": ticks,
                            "tick_ms": round(detector.current_tick() * 1000.0, 1)}
            quiet = 0 if stalled or guest_busy(sample) else quiet + 1
            detector.set_idle(quiet >= IDLE_AFTER_SAMPLES)
            sample["gaps_hist"] = dict(hist)
            cpu_s = time.clock_gettime(cpu_clock) if cpu_clock is not None else sum(os.times()[:2])
            sample["agent_cpu_s"] = round(cpu_s, 4)
            if kmsg is not None or tail is not None:
                sample["resume"] = {"kmsg_seq": kmsg.last_seq if kmsg is not None else None,
                                    "tail": tail.resume_offsets() if tail is not None else {}}
            parts.add("sample")
            sample["agent_cpu"] = parts.report()
            out.emit(sample)
            parts.add("out")
            samples += 1
            if args.count and samples >= args.count:
                return 0
            next_at += args.interval
            if next_at <= mono():
                next_at = mono() + args.interval  # we were stopped or starved: no catch-up burst
    except (Stop, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    code = main()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    os._exit(code)
