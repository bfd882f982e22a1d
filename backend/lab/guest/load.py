"""How busy the guest is, and the /proc and cgroup files that show it.

A `GuestLoad` answers `at(lab_time) -> LoadPoint`: CPU shares (user/sys/iowait/steal... in % of
all CPU time), load averages, memory, disk rates and latencies, container memory, OOM kills. The
default, `IdleLoad`, is an idle Rocky guest; the scenarios of the install issue plug in the field
run's curves (see `GuestLab.set_load`).

`ProcState` integrates a load into the kernel's cumulative counters and renders the files the
guest reads: /proc/stat (per CPU, USER_HZ 100, as the kernel counts), /proc/loadavg,
/proc/meminfo, /proc/diskstats (the 4.18 format with discard fields), /proc/vmstat and the cgroup v1 memory files of the containers (`memory/docker/<id>/`).

Time: the guest's own clock is this machine's wall clock (its `date`, its processes' timers), so
counters advance by rate x wall seconds, which is what a monitoring agent inside divides by. The
*shape* of the load follows the lab clock: the rates at any moment are `load.at(lab_now)`. A run at
`--speed 120` therefore replays a 30-minute curve in 15 wall seconds with rates as in the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from backend.lab.guest import rocky

UPTIME_AT_BOOT = 25  # the guest's uptime when the lab starts its userspace (see namespace.py)
GIB = 1024**3
MIB = 1024**2
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass
class DiskLoad:
    """Per-second rates of one disk, as iostat -x shows them."""

    r_s: float = 0.0
    w_s: float = 0.6
    rkb_s: float = 0.0
    wkb_s: float = 4.0
    r_await: float = 0.5  # ms per read
    w_await: float = 1.2  # ms per write
    util: float | None = None  # % of time busy; derived from the IOPS when None


@dataclass
class LoadPoint:
    """The guest at one moment. CPU values are % of all CPU time (idle is the rest)."""

    user: float = 0.6
    nice: float = 0.0
    system: float = 0.4
    iowait: float = 0.05
    irq: float = 0.0
    softirq: float = 0.02
    steal: float = 0.0
    steal_max_cpu: float | None = None  # the most-stolen CPU's steal; None: even over CPUs
    load: tuple[float, float, float] = (0.02, 0.02, 0.0)
    running: int = 1
    tasks: int = 340
    mem_available: int | None = None  # bytes; None: an idle guest's
    mem_free: int | None = None
    buffers: int = 4 * MIB
    cached: int = 315 * MIB
    disks: dict[str, DiskLoad] = field(default_factory=lambda: {"sda": DiskLoad()})
    containers: dict[str, int] = field(default_factory=dict)  # container name -> memory in use (bytes)
    oom_kill: int = 0  # cumulative OOM kills since boot
    ctxt_s: float = 450.0
    intr_s: float = 300.0
    forks_s: float = 2.0


class GuestLoad(Protocol):
    def at(self, lab_time: float) -> LoadPoint:
        """The guest's load at `lab_time` (lab epoch seconds)."""


class IdleLoad:
    """An idle Rocky guest: ~1 % CPU, 1 GiB used, a write now and then."""

    def at(self, lab_time: float) -> LoadPoint:
        return LoadPoint()


def _cpu_shares(point: LoadPoint, ncpu: int) -> list[dict[str, float]]:
    base = {"user": point.user, "nice": point.nice, "system": point.system, "iowait": point.iowait,
            "irq": point.irq, "softirq": point.softirq}
    steals = [point.steal] * ncpu
    if point.steal_max_cpu is not None and ncpu > 1:
        rest = max(0.0, (point.steal * ncpu - point.steal_max_cpu) / (ncpu - 1))
        steals = [point.steal_max_cpu] + [rest] * (ncpu - 1)
    shares = []
    for steal in steals:
        share = dict(base, steal=steal)
        busy = sum(share.values())
        if busy > 100:
            share = {k: v * 100 / busy for k, v in share.items()}
            busy = 100.0
        share["idle"] = 100.0 - busy
        shares.append(share)
    return shares


@dataclass
class DiskCounters:
    major: int
    minor: int
    reads: float = 0.0
    rmerged: float = 0.0
    rsect: float = 0.0
    rticks: float = 0.0
    writes: float = 0.0
    wmerged: float = 0.0
    wsect: float = 0.0
    wticks: float = 0.0
    ioticks: float = 0.0
    queue: float = 0.0

    def advance(self, disk: DiskLoad, dt: float) -> None:
        self.reads += disk.r_s * dt
        self.writes += disk.w_s * dt
        self.rsect += disk.rkb_s * 2 * dt
        self.wsect += disk.wkb_s * 2 * dt
        self.rmerged += disk.r_s * 0.1 * dt
        self.wmerged += disk.w_s * 0.3 * dt
        self.rticks += disk.r_s * disk.r_await * dt
        self.wticks += disk.w_s * disk.w_await * dt
        busy_ms = (disk.r_s * disk.r_await + disk.w_s * disk.w_await) * dt
        util = disk.util if disk.util is not None else min(100.0, busy_ms / (10 * dt) if dt else 0.0)
        self.ioticks += util * 10 * dt
        self.queue += busy_ms

    def line(self, name: str, scale: float = 1.0, major: int | None = None, minor: int | None = None) -> str:
        v = [int(x * scale) for x in (self.reads, self.rmerged, self.rsect, self.rticks, self.writes,
                                      self.wmerged, self.wsect, self.wticks)]
        major = self.major if major is None else major
        minor = self.minor if minor is None else minor
        return (f"{major:4d} {minor:7d} {name} {v[0]} {v[1]} {v[2]} {v[3]} {v[4]} {v[5]} {v[6]} {v[7]} "
                f"0 {int(self.ioticks * scale)} {int(self.queue * scale)} 0 0 0 0\n")


class ProcState:
    """The kernel's counters of one boot, advanced by a load and rendered as /proc files."""

    def __init__(self, vcpus: int, mem_total_kib: int, boot_wall: float, thp: str = "always",
                 swap_kib: int = rocky.SWAP_KIB) -> None:
        self.ncpu = max(1, vcpus)
        self.mem_total_kib = mem_total_kib  # MemTotal, as the kernel on the disk leaves it (image.GuestKernel)
        self.swap_kib = swap_kib  # the swap partition's (blockdev.Layout.swap_kib)
        self.boot_wall = boot_wall
        self.now_wall = boot_wall
        self.thp = thp
        # A few seconds of boot work already on the counters.
        self.cpu = [dict(user=180.0, nice=1.0, system=120.0, idle=2400.0, iowait=15.0, irq=0.0, softirq=4.0,
                         steal=0.0) for _ in range(self.ncpu)]
        self.ctxt = 150_000.0
        self.intr = 90_000.0
        self.processes = 2100.0
        self.last_pid = 2100
        self.disks = {"sda": DiskCounters(8, 0, reads=9000, rsect=600_000, rticks=4000, writes=700, wsect=40_000,
                                          wticks=900, ioticks=5000, queue=5000)}
        self.vm = {"pgpgin": 300_000.0, "pgpgout": 20_000.0, "pgfault": 900_000.0, "pgmajfault": 2000.0,
                   "thp_fault_alloc": 0.0}
        self.point = LoadPoint()

    # -- advancing -------------------------------------------------------------------------------
    def advance(self, point: LoadPoint, now_wall: float) -> None:
        dt = max(0.0, now_wall - self.now_wall)
        self.now_wall = now_wall
        self.point = point
        if dt <= 0:
            return
        for counters, share in zip(self.cpu, _cpu_shares(point, self.ncpu), strict=True):
            for name, pct in share.items():
                counters[name] += pct / 100.0 * rocky.USER_HZ * dt
        self.ctxt += point.ctxt_s * self.ncpu * dt
        self.intr += point.intr_s * self.ncpu * dt
        self.processes += point.forks_s * dt
        self.last_pid = int(self.processes)
        for name, disk in point.disks.items():
            counters = self.disks.setdefault(name, DiskCounters(8, 16 * len(self.disks)))
            counters.advance(disk, dt)
            self.vm["pgpgin"] += disk.rkb_s * dt
            self.vm["pgpgout"] += disk.wkb_s * dt
        self.vm["pgfault"] += (200 + 50 * (point.user + point.system)) * dt
        if self.thp == "always":
            self.vm["thp_fault_alloc"] += 0.2 * (point.user + point.system) * dt

    def restore(self, stat_text: str, diskstats_text: str, vmstat_text: str) -> None:
        """Continue from the counters a previous lab process left in the files (after a restart)."""
        cpus = [line.split() for line in stat_text.splitlines() if line.startswith("cpu") and line[3:4].isdigit()]
        if len(cpus) == self.ncpu:
            for counters, fields in zip(self.cpu, cpus, strict=True):
                for name, value in zip(CPU_FIELDS, fields[1:9], strict=False):
                    counters[name] = float(value)
        for line in stat_text.splitlines():
            key, _, rest = line.partition(" ")
            if key in ("ctxt", "processes") and rest.strip().isdigit():
                setattr(self, key, float(rest))
            elif key == "intr" and rest.split():
                self.intr = float(rest.split()[0])
        for line in diskstats_text.splitlines():
            parts = line.split()
            if len(parts) >= 14 and parts[2] in self.disks:
                d = self.disks[parts[2]]
                (d.reads, d.rmerged, d.rsect, d.rticks, d.writes, d.wmerged, d.wsect, d.wticks) = map(
                    float, parts[3:11])
                d.ioticks, d.queue = float(parts[12]), float(parts[13])
        for line in vmstat_text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in self.vm:
                self.vm[parts[0]] = float(parts[1])
        self.last_pid = int(self.processes)

    # -- rendering -------------------------------------------------------------------------------
    def stat(self) -> str:
        def row(label: str, values: dict[str, float]) -> str:
            numbers = " ".join(str(int(values[name])) for name in CPU_FIELDS)
            return f"{label} {numbers} 0 0\n"

        total = {name: sum(c[name] for c in self.cpu) for name in CPU_FIELDS}
        lines = [row("cpu ", total)] + [row(f"cpu{i}", c) for i, c in enumerate(self.cpu)]
        lines.append(f"intr {int(self.intr)}" + " 0" * 48 + "\n")
        lines.append(f"ctxt {int(self.ctxt)}\n")
        lines.append(f"btime {int(self.boot_wall) - UPTIME_AT_BOOT}\n")
        lines.append(f"processes {int(self.processes)}\n")
        lines.append(f"procs_running {max(1, self.point.running)}\n")
        lines.append(f"procs_blocked {int(self.point.iowait * self.ncpu / 100 + 0.5)}\n")
        soft = int(self.intr * 0.6)
        lines.append(f"softirq {soft} 1 {soft // 3} 10 {soft // 8} {soft // 9} 0 {soft // 50} {soft // 4} 0 {soft // 7}\n")
        return "".join(lines)

    def loadavg(self) -> str:
        l1, l5, l15 = self.point.load
        return f"{l1:.2f} {l5:.2f} {l15:.2f} {max(1, self.point.running)}/{self.point.tasks} {self.last_pid}\n"

    def memory(self) -> dict[str, int]:
        """The memory figures in KiB (MemTotal, MemFree, MemAvailable, Buffers, Cached, ...)."""
        total = self.mem_total_kib
        p = self.point
        buffers, cached = p.buffers // 1024, p.cached // 1024
        if p.mem_available is None:
            used = GIB // 1024
            free = max(0, total - used - buffers - cached)
            available = max(0, free + int(cached * 0.8) - int(total * 0.02))
        else:
            available = min(total, max(0, p.mem_available // 1024))
            free = p.mem_free // 1024 if p.mem_free is not None else max(0, available - int(cached * 0.8))
        free = min(free, total)
        anon = max(0, total - free - buffers - cached - 120_000)
        return {"MemTotal": total, "MemFree": free, "MemAvailable": available, "Buffers": buffers,
                "Cached": cached, "AnonPages": anon}

    def meminfo(self) -> str:
        m = self.memory()
        total, free, anon, cached, buffers = m["MemTotal"], m["MemFree"], m["AnonPages"], m["Cached"], m["Buffers"]
        shmem = 8 * 1024
        slab_r, slab_u = 60_000 + total // 2000, 55_000 + total // 3000
        hugepages_anon = (anon * 6 // 10) // 2048 * 2048 if self.thp == "always" else 0
        rows = [
            ("MemTotal", total), ("MemFree", free), ("MemAvailable", m["MemAvailable"]), ("Buffers", buffers),
            ("Cached", cached), ("SwapCached", 0), ("Active", anon // 2 + cached // 3),
            ("Inactive", anon // 2 + cached * 2 // 3), ("Active(anon)", anon // 2), ("Inactive(anon)", anon // 2),
            ("Active(file)", cached // 3), ("Inactive(file)", cached * 2 // 3), ("Unevictable", 0), ("Mlocked", 0),
            ("SwapTotal", self.swap_kib), ("SwapFree", self.swap_kib), ("Dirty", 120), ("Writeback", 0),
            ("AnonPages", anon), ("Mapped", 90_000 + cached // 10), ("Shmem", shmem),
            ("KReclaimable", slab_r), ("Slab", slab_r + slab_u), ("SReclaimable", slab_r), ("SUnreclaim", slab_u),
            ("KernelStack", 6_000 + 400 * self.ncpu), ("PageTables", 8_000 + anon // 500), ("NFS_Unstable", 0),
            ("Bounce", 0), ("WritebackTmp", 0), ("CommitLimit", total // 2 + self.swap_kib),
            ("Committed_AS", anon + 400_000), ("VmallocTotal", 34359738367), ("VmallocUsed", 0),
            ("VmallocChunk", 0), ("Percpu", 2_000 * self.ncpu), ("HardwareCorrupted", 0),
            ("AnonHugePages", hugepages_anon), ("ShmemHugePages", 0), ("ShmemPmdMapped", 0),
            ("FileHugePages", 0), ("FilePmdMapped", 0),
        ]
        text = "".join(f"{(name + ':'):<16}{value:>8} kB\n" for name, value in rows)
        text += ("HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\n"
                 "HugePages_Surp:        0\nHugepagesize:       2048 kB\nHugetlb:               0 kB\n")
        direct = total + 200_000
        text += f"DirectMap4k:     {262_000:>8} kB\nDirectMap2M:     {direct // 2:>8} kB\n"
        text += f"DirectMap1G:     {direct // 2:>8} kB\n"
        return text

    def diskstats(self) -> str:
        sda = self.disks["sda"]
        lines = [sda.line("sda"), DiskCounters(8, 1, 320, 0, 9000, 150, 4, 0, 40, 3, 160, 170).line("sda1"),
                 DiskCounters(8, 2, 110, 0, 4400, 30, 0, 0, 0, 0, 30, 30).line("sda2"), sda.line("sda3", 0.97, 8, 3)]
        for name, counters in self.disks.items():
            if name != "sda":
                lines.append(counters.line(name))
        lines.append(DiskCounters(11, 0, 18, 0, 2048, 9).line("sr0"))
        return "".join(lines)

    def vmstat(self) -> str:
        m = self.memory()
        values = {
            "nr_free_pages": m["MemFree"] // 4, "nr_zone_inactive_anon": m["AnonPages"] // 8,
            "nr_zone_active_anon": m["AnonPages"] // 8, "nr_zone_inactive_file": m["Cached"] // 6,
            "nr_zone_active_file": m["Cached"] // 12, "nr_zone_unevictable": 0, "nr_zone_write_pending": 30,
            "nr_mlock": 0, "nr_page_table_pages": 2000, "nr_kernel_stack": 6000, "nr_bounce": 0,
            "nr_free_cma": 0, "nr_inactive_anon": m["AnonPages"] // 8, "nr_active_anon": m["AnonPages"] // 8,
            "nr_inactive_file": m["Cached"] // 6, "nr_active_file": m["Cached"] // 12, "nr_unevictable": 0,
            "nr_slab_reclaimable": 15000, "nr_slab_unreclaimable": 14000, "nr_isolated_anon": 0,
            "nr_isolated_file": 0, "nr_anon_pages": m["AnonPages"] // 4, "nr_mapped": 23000,
            "nr_file_pages": (m["Cached"] + m["Buffers"]) // 4, "nr_dirty": 30, "nr_writeback": 0,
            "nr_shmem": 2048, "nr_anon_transparent_hugepages": 0, "nr_dirty_threshold": m["MemAvailable"] // 20,
            "nr_dirty_background_threshold": m["MemAvailable"] // 40,
            "pgpgin": self.vm["pgpgin"], "pgpgout": self.vm["pgpgout"], "pswpin": 0, "pswpout": 0,
            "pgalloc_dma": 0, "pgalloc_dma32": 200_000, "pgalloc_normal": self.vm["pgfault"] * 1.2,
            "pgfree": self.vm["pgfault"] * 1.3, "pgactivate": 40_000, "pgdeactivate": 0,
            "pgfault": self.vm["pgfault"], "pgmajfault": self.vm["pgmajfault"], "pgrefill": 0,
            "pgsteal_kswapd": 0, "pgsteal_direct": 0, "pgscan_kswapd": 0, "pgscan_direct": 0,
            "oom_kill": self.point.oom_kill, "compact_stall": 0, "compact_fail": 0, "compact_success": 0,
            "thp_fault_alloc": self.vm["thp_fault_alloc"], "thp_fault_fallback": 0, "thp_collapse_alloc": 0,
            "thp_split_page": 0, "thp_zero_page_alloc": 1, "swap_ra": 0, "swap_ra_hit": 0,
        }
        return "".join(f"{name} {int(value)}\n" for name, value in values.items())


def cgroup_memory_files(usage: int, limit: int = 9223372036854771712) -> dict[str, str]:
    """The cgroup v1 memory files of one container; `docker stats` shows usage - total_inactive_file."""
    inactive_file = min(usage // 50, 64 * MIB)
    rss = max(0, usage - inactive_file * 2)
    stat = {
        "cache": inactive_file * 2, "rss": rss, "rss_huge": 0, "shmem": 0, "mapped_file": inactive_file // 4,
        "dirty": 0, "writeback": 0, "pgpgin": usage // 4096, "pgpgout": 0, "pgfault": usage // 2048,
        "pgmajfault": 0, "inactive_anon": 0, "active_anon": rss, "inactive_file": inactive_file,
        "active_file": inactive_file, "unevictable": 0, "hierarchical_memory_limit": limit,
        "total_cache": inactive_file * 2, "total_rss": rss, "total_rss_huge": 0, "total_shmem": 0,
        "total_mapped_file": inactive_file // 4, "total_dirty": 0, "total_writeback": 0,
        "total_inactive_anon": 0, "total_active_anon": rss, "total_inactive_file": inactive_file,
        "total_active_file": inactive_file, "total_unevictable": 0,
    }
    return {
        "memory.usage_in_bytes": f"{usage}\n",
        "memory.limit_in_bytes": f"{limit}\n",
        "memory.max_usage_in_bytes": f"{usage}\n",
        "memory.stat": "".join(f"{k} {v}\n" for k, v in stat.items()),
    }
