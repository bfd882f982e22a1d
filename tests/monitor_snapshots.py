"""Hand-made /proc snapshots for the monitoring agent's tests: two snapshots a known delta apart,
and the values mpstat and iostat (and the agent) must compute from them, worked out by hand.

CPU (4 CPUs, 100 ticks each between A and B, so 400 in all):
  cpu0: user +30 (of which guest +10), sys +10, idle +40, iowait +5, irq +1, soft +4, steal +10
  cpu1: user +10, sys +5, idle +80, steal +5
  cpu2: user +20, sys +10, idle +20, steal +50       (the worst single-CPU steal: 50 %)
  cpu3: user +50, sys +40, idle +10
  -> user (guest excluded) 100/400 = 25 %, sys 65 -> 16.25 %, iowait 1.25 %, irq 0.25 %,
     soft 1 %, steal 65 -> 16.25 %, idle 150 -> 37.5 % (guest 2.5 % is not user time).
Disks, 2.00 s apart (/proc/uptime 1000.00 -> 1002.00):
  sda: reads +100 (+2048 sectors, +250 ms), writes +50 (+800 sectors, +600 ms), io_ticks +500,
       time_in_queue +850 -> r/s 50, w/s 25, rkB/s 512, wkB/s 200, r_await 2.5, w_await 12,
       %util 25, aqu-sz 0.425 (printed 0.42)
  sdb: 32-bit tick counters wrap: rd_ticks 4294967000 -> 200 is +496 ms for 8 reads (62 ms),
       wr_ticks 4294967290 -> 10 is +16 ms for 4 writes (4 ms)
  sda1 is a partition, loop0 a loop device, dm-0 a device-mapper volume: not sampled.
"""

from __future__ import annotations

NCPU = 4

STAT_A = """cpu  400 0 120 2000 20 4 16 40 40 0
cpu0 100 0 30 500 5 1 4 10 10 0
cpu1 100 0 30 500 5 1 4 10 10 0
cpu2 100 0 30 500 5 1 4 10 10 0
cpu3 100 0 30 500 5 1 4 10 10 0
intr 123456 1 2 3
ctxt 9999
btime 1767031605
processes 5000
procs_running 2
procs_blocked 1
softirq 1 2 3
"""

STAT_B = """cpu  510 0 185 2150 25 5 20 105 50 0
cpu0 130 0 40 540 10 2 8 20 20 0
cpu1 110 0 35 580 5 1 4 15 10 0
cpu2 120 0 40 520 5 1 4 60 10 0
cpu3 150 0 70 510 5 1 4 10 10 0
intr 123999 1 2 3
ctxt 10999
btime 1767031605
processes 5010
procs_running 7
procs_blocked 3
softirq 1 2 3
"""

CPU_EXPECTED = {"user": 25.0, "nice": 0.0, "sys": 16.25, "iowait": 1.25, "irq": 0.25, "soft": 1.0, "steal": 16.25,
                "idle": 37.5, "steal_max_cpu": 50.0, "ncpu": 4}

UPTIME_A = "1000.00 3900.00\n"
UPTIME_B = "1002.00 3906.00\n"
DT = 2.0

#            rd_ios merges rd_sec rd_ticks wr_ios merges wr_sec wr_ticks inflight io_ticks rq_ticks (+discard, flush)
DISK_A = {
    "sda": (1000, 5, 40000, 3000, 500, 7, 9000, 6000, 0, 10000, 20000, 0, 0, 0, 0, 10, 5),
    "sdb": (100, 0, 800, 4294967000, 40, 0, 320, 4294967290, 0, 50000, 60000, 0, 0, 0, 0, 0, 0),
}
DISK_B = {
    "sda": (1100, 5, 42048, 3250, 550, 7, 9800, 6600, 1, 10500, 20850, 0, 0, 0, 0, 12, 6),
    "sdb": (108, 0, 864, 200, 44, 0, 352, 10, 0, 50100, 60300, 0, 0, 0, 0, 0, 0),
}
DISKS_EXPECTED = {
    "sda": {"r_s": 50.0, "w_s": 25.0, "rkb_s": 512.0, "wkb_s": 200.0, "r_await": 2.5, "w_await": 12.0,
            "aqu_sz": 0.42, "util": 25.0},
    "sdb": {"r_s": 4.0, "w_s": 2.0, "rkb_s": 16.0, "wkb_s": 8.0, "r_await": 62.0, "w_await": 4.0,
            "aqu_sz": 0.15, "util": 5.0},
}
SYS_BLOCK = ("sda", "sdb", "loop0", "dm-0", "zram0")


def diskstats(disks: dict) -> str:
    """/proc/diskstats of 4.18+ (17 fields after the name) with a partition and skipped devices."""
    rows = []
    for minor, (name, values) in enumerate(disks.items()):
        rows.append(f"   8      {minor * 16} {name} " + " ".join(str(v) for v in values))
        if name == "sda":
            rows.append("   8       1 sda1 " + " ".join(str(v // 2) for v in values))
    rows.append("   7       0 loop0 5 0 10 1 0 0 0 0 0 1 1 0 0 0 0 0 0")
    rows.append(" 253       0 dm-0 " + " ".join(str(v) for v in disks["sda"]))
    return "\n".join(rows) + "\n"


def sys_block_stat(values: tuple) -> str:
    """/sys/block/<dev>/stat: the same fields as diskstats, fixed-width."""
    return " ".join(f"{v:>8}" for v in values) + "\n"


MEMINFO = """MemTotal:       123223064 kB
MemFree:        1100000 kB
MemAvailable:   1258291 kB
Buffers:            4188 kB
Cached:         9274464 kB
SwapCached:            0 kB
Active:         1000 kB
SwapTotal:        839676 kB
SwapFree:         839000 kB
Dirty:                16 kB
"""
MEM_EXPECTED = {"total": 123223064 * 1024, "available": 1258291 * 1024, "used": (123223064 - 1258291) * 1024,
                "free": 1100000 * 1024, "buffers": 4188 * 1024, "cached": 9274464 * 1024,
                "swap_total": 839676 * 1024, "swap_free": 839000 * 1024}

LOADAVG = "38.52 21.07 9.33 14/1342 48213\n"

VMSTAT = """nr_free_pages 275000
pgmajfault 12
oom_kill 2
numa_hit 1
"""
