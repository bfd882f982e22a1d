"""The readers of the field engineer's monitoring formats, on small hand-made lines of each format."""

from __future__ import annotations

import calendar

import pytest

from backend.analysis import traces
from backend.analysis.traces import FileStats, parse_size

GIB = 1024**3


def utc(text: str) -> float:
    date, clock = text.split()
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in clock.split(":"))
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


def stats(kind: str = "x") -> FileStats:
    return FileStats("test.log", kind)


@pytest.mark.parametrize("text, expected", [
    ("61Gi", 61 * GIB), ("412.5MiB", 412.5 * 1024**2), ("3.141MiB", 3.141 * 1024**2), ("0B", 0),
    ("41.2GB", 41.2e9), ("73kB", 73e3), ("1.5KiB", 1536), ("300Mi", 300 * 1024**2), ("12", 12),
    ("2.1TiB", 2.1 * 1024**4), ("nonsense", None), ("1.2XB", None),
])
def test_sizes_as_docker_and_free_print_them(text, expected):
    assert parse_size(text) == pytest.approx(expected) if expected is not None else parse_size(text) is None


def test_heartbeat_skips_torn_lines():
    s = stats()
    lines = ["2026-03-01 10:00:00.100\n", "2026-03-01 10:00:01.1", "garbage\n", "2026-03-01 10:00:02.350\n", "\n"]
    times = list(traces.read_heartbeat(lines, s))
    assert times == [utc("2026-03-01 10:00:00") + 0.1, utc("2026-03-01 10:00:01") + 0.1,
                     pytest.approx(utc("2026-03-01 10:00:02") + 0.35)]
    assert s.skipped == 1 and s.records == 3


def test_loadavg_fields_and_odd_lines():
    s = stats()
    lines = ["2026-03-01 10:00:00.500 12.50 8.25 3.10 17/2200 99123\n",
             "2026-03-01 10:00:01.502 12.60 8.26\n",  # torn
             "2026-03-01 10:00:02.505 13.00 8.30 3.12 5/2201\n"]
    records = list(traces.read_loadavg(lines, s))
    assert records[0] == (utc("2026-03-01 10:00:00") + 0.5, {"load": [12.5, 8.25, 3.1], "runnable": 17, "tasks": 2200})
    assert records[1][1]["load"] == [13.0, 8.3, 3.12]
    assert s.skipped == 1


MEMORY = """=== 2026-03-01 10:00:00.000 ===
              total        used        free      shared  buff/cache   available
Mem:           62Gi        10Gi        50Gi       1.0Mi       2.0Gi        51Gi
Swap:            0B          0B          0B
MemTotal:       65000000 kB
MemFree:        52000000 kB
MemAvailable:   53000000 kB
Buffers:            2000 kB
Cached:          1000000 kB

=== 2026-03-01 10:00:05.000 ===
              total        used        free      shared  buff/cache   available
Mem:           62Gi        60Gi       1.5Gi       1.0Mi       0.5Gi       1.5Gi

=== 2026-03-01 10:00:10.000 ===
nothing useful here
"""


def test_memory_blocks_prefer_meminfo_and_fall_back_to_free():
    s = stats()
    records = list(traces.read_memory(MEMORY.splitlines(keepends=True), s))
    assert len(records) == 2 and s.skipped == 1
    t, mem = records[0]
    assert t == utc("2026-03-01 10:00:00")
    assert mem["total"] == 65000000 * 1024 and mem["available"] == 53000000 * 1024
    assert mem["used"] == (65000000 - 53000000) * 1024  # used = total - available, as the agent defines it
    assert mem["buffers"] == 2000 * 1024
    _, rounded = records[1]
    assert rounded["total"] == 62 * GIB and rounded["available"] == pytest.approx(1.5 * GIB)


DOCKER = """=== 2026-03-01 10:00:00.000 ===
Docker not running

=== 2026-03-01 10:00:07.000 ===
NAME                  CPU %     MEM USAGE / LIMIT     MEM %     NET I/O   BLOCK I/O         PIDS
vast_platform_a       211.40%   21.25GiB / 61GiB      34.84%    0B / 0B   12.1GB / 3.3GB    402
mcvms                 2.50%     412.5MiB / 61GiB      0.66%     0B / 0B   73kB / 11.2kB     7
registry              0.00%     3.141MiB / 61GiB      0.01%     0B / 0B   2.20MB / 64kB     12
this line is torn

=== 2026-03-01 10:00:14.000 ===
CONTAINER ID   NAME       CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS
0123456789ab   vast_vms   --        512KiB / 2GiB       0.02%     0B / 0B   0B / 0B     1
"""


def test_docker_stats_units_and_layouts():
    s = stats()
    records = list(traces.read_docker_stats(DOCKER.splitlines(keepends=True), s))
    assert [r[1] for r in records][0] == {}  # Docker not running: a measurement of no containers
    containers = records[1][1]
    assert containers["vast_platform_a"]["mem"] == pytest.approx(21.25 * GIB)
    assert containers["vast_platform_a"]["limit"] == pytest.approx(61 * GIB)
    assert containers["vast_platform_a"]["cpu_pct"] == 211.4
    assert containers["mcvms"]["mem"] == pytest.approx(412.5 * 1024**2)
    assert containers["registry"]["mem"] == pytest.approx(3.141 * 1024**2)
    assert records[2][1] == {"vast_vms": {"mem": 512 * 1024, "limit": 2 * GIB}}  # with the CONTAINER ID column
    assert s.skipped == 1


VMSTAT = """procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu----- -----timestamp-----
 r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st                 UTC
 4  0      0 2000000   1024 250000    0    0   150     7  300  250  2  1 97  0  0 2026-03-01 10:00:00
 2  1      0 1990000   1024 250100    0    0   900    12 1500 1300 40  9 30  1 20 2026-03-01 10:00:01
procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu----- -----timestamp-----
 r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st                 UTC
 7  0      0 1980000   1024 250200    0    0     0     8  700  640  3  2 95  0  0 2026-03-01 10:00:02
 7  0      0 10000
"""


def test_vmstat_skips_the_since_boot_line_and_repeated_headers():
    s = stats()
    records = list(traces.read_vmstat(VMSTAT.splitlines(keepends=True), s))
    assert [t for t, _ in records] == [utc("2026-03-01 10:00:01"), utc("2026-03-01 10:00:02")]
    first = records[0][1]
    assert first["cpu"] == {"user": 40.0, "sys": 9.0, "idle": 30.0, "iowait": 1.0, "steal": 20.0}
    assert first["runnable"] == 2 and first["blocked"] == 1
    assert s.skipped == 1  # the torn last line
    assert any("since boot" in note for note in s.notes)


IOSTAT_12H = """Linux 4.18.0-553.el8_10.x86_64 (guest.example) \t03/01/2026 \t_x86_64_\t(12 CPU)

03/01/2026 11:59:59 AM
avg-cpu:  %user   %nice %system %iowait  %steal   %idle
           1.10    0.00    0.60    0.20    0.05   98.05

Device            r/s     w/s     rkB/s     wkB/s   rrqm/s   wrqm/s  %rrqm  %wrqm r_await w_await aqu-sz rareq-sz wareq-sz  svctm  %util
sda             88.20    3.10   1900.10     61.00     0.10     0.40   0.11  11.43    0.20    0.41   0.02    21.54    19.68   0.07   0.66

03/01/2026 12:00:00 PM
avg-cpu:  %user   %nice %system %iowait  %steal   %idle
          10.00    0.00    5.00    2.00   26.50   56.50

Device            r/s     w/s     rkB/s     wkB/s   rrqm/s   wrqm/s  %rrqm  %wrqm r_await w_await aqu-sz rareq-sz wareq-sz  svctm  %util
sda            200.00  150.00  8000.00   6000.00     0.00     0.00   0.00   0.00    4.50   12.25   1.00    40.00    40.00   0.10  55.00
loop0            1.00    0.00      4.00      0.00     0.00     0.00   0.00   0.00    0.50    0.00   0.00     4.00     0.00   0.00   0.10

03/02/2026 12:00:01 AM
avg-cpu:  %user   %nice %system %iowait  %steal   %idle
           1.00    0.00    1.00    0.00    0.00   98.00

Device            r/s     w/s     rkB/s     wkB/s   rrqm/s   wrqm/s  %rrqm  %wrqm r_await w_await aqu-sz rareq-sz wareq-sz  svctm  %util
sda              0.00    1.00      0.00      4.00     0.00     0.00   0.00   0.00    0.00    1.00   0.00     0.00     4.00   0.00   0.00

03/02/2026 01:30:02 PM
avg-cpu:  %user   %nice %system %iowait  %steal
"""


def test_iostat_12_hour_clock_first_report_and_devices():
    s, facts = stats(), {}
    records = list(traces.read_iostat(IOSTAT_12H.splitlines(keepends=True), s, facts))
    # the first report (since boot) is left out; 12:00 PM is noon, 12:00 AM is midnight
    assert [t for t, _ in records] == [utc("2026-03-01 12:00:00"), utc("2026-03-02 00:00:01")]
    noon = records[0][1]
    assert noon["cpu"] == {"user": 10.0, "nice": 0.0, "sys": 5.0, "iowait": 2.0, "steal": 26.5, "idle": 56.5}
    assert noon["disks"] == {"sda": {"r_s": 200.0, "w_s": 150.0, "rkb_s": 8000.0, "wkb_s": 6000.0, "r_await": 4.5,
                                     "w_await": 12.25, "aqu_sz": 1.0, "util": 55.0}}  # loop devices skipped
    assert facts == {"kernel": "4.18.0-553.el8_10.x86_64", "hostname": "guest.example", "ncpu": 12}
    assert s.skipped == 1  # the torn avg-cpu block of the last report


IOSTAT_OLD = """Linux 3.10.0 (old) \t03/01/26 \t_x86_64_\t(4 CPU)

03/01/26 18:00:00
avg-cpu:  %user   %nice %system %iowait  %steal   %idle
           1.00    0.00    1.00    0.00    0.00   98.00

Device:         rrqm/s   wrqm/s     r/s     w/s    rkB/s    wkB/s avgrq-sz avgqu-sz   await r_await w_await  svctm  %util
vda               0.00     0.00    1.00    2.00     4.00     8.00     8.00     0.00    1.00    1.00    1.00   0.50   0.10

2026-03-01T18:00:01+0000
avg-cpu:  %user   %nice %system %iowait  %steal   %idle
           2.00    0.00    1.00    0.00    3.00   94.00

Device:         rrqm/s   wrqm/s     r/s     w/s    rkB/s    wkB/s avgrq-sz avgqu-sz   await r_await w_await  svctm  %util
vda               0.00     0.00    9.00    3.00    36.00    12.00     8.00     0.10    2.00    7.00    0.50   0.50   3.00
"""


def test_iostat_older_layout_24_hour_and_iso_stamps():
    s = stats()
    records = list(traces.read_iostat(IOSTAT_OLD.splitlines(keepends=True), s, {}))
    assert len(records) == 1
    t, record = records[0]
    assert t == utc("2026-03-01 18:00:01")
    assert record["cpu"]["steal"] == 3.0
    assert record["disks"]["vda"]["r_await"] == 7.0 and record["disks"]["vda"]["w_await"] == 0.5
    assert record["disks"]["vda"]["r_s"] == 9.0 and record["disks"]["vda"]["aqu_sz"] == 0.1


SS = """=== 2026-03-01 10:00:00.000 ===
State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess

=== 2026-03-01 10:00:01.000 ===
State  Recv-Q Send-Q   Local Address:Port    Peer Address:Port Process
ESTAB  0      0             11.0.0.1:41000       11.0.0.1:6001
ESTAB  12     4096          11.0.0.1:6001        11.0.0.1:41000
CLOSE-WAIT 1  0             11.0.0.1:6001        11.0.0.1:41010
torn
"""


def test_ss_blocks_count_states_and_queues():
    s = stats()
    records = list(traces.read_ss(SS.splitlines(keepends=True), s))
    assert records[0][1] == {"states": {}, "recv_q_max": 0, "send_q_max": 0}
    assert records[1][1] == {"states": {"ESTAB": 2, "CLOSE-WAIT": 1}, "recv_q_max": 12, "send_q_max": 4096}
    assert s.skipped == 1


DMESG = """[Sun Mar  1 09:58:00 2026] Linux version 4.18.0-553.el8_10.x86_64 (builder@example) #1 SMP
[Sun Mar  1 09:58:00 2026] DMI: QEMU Standard PC (Q35 + ICH9, 2009), BIOS test-bios 01/01/2026
[Sun Mar  1 09:58:00 2026] Hypervisor detected: KVM
[Sun Mar  1 09:58:00 2026] smpboot: CPU0: Example CPU 8-Core Processor (family: 0x17, model: 0x8, stepping: 0x2)
[Sun Mar  1 09:58:01 2026] smp: Brought up 1 node, 8 CPUs
[Sun Mar  1 09:58:02 2026] scsi host0: Virtio SCSI HBA
[  123.456789] a line stamped in seconds since boot
[Sun Mar  1 10:20:00 2026] vast_platform invoked oom-killer: gfp_mask=0x6200ca(GFP_HIGHUSER_MOVABLE), order=0
"""


def test_dmesg_times_and_guest_facts():
    s, facts = stats(), {}
    lines = list(traces.read_dmesg(DMESG.splitlines(keepends=True), s, facts))
    assert lines[-1] == (utc("2026-03-01 10:20:00"), lines[-1][1])
    assert "invoked oom-killer" in lines[-1][1]
    assert s.skipped == 1  # the uptime-stamped line
    assert facts["kernel"] == "4.18.0-553.el8_10.x86_64" and facts["hypervisor"] == "KVM"
    assert facts["cpu_model"] == "Example CPU 8-Core Processor" and facts["ncpu"] == 8
    assert facts["machine"] == "QEMU Standard PC (Q35 + ICH9, 2009)"
    assert facts["scsi_controller"] == "Virtio SCSI HBA"
