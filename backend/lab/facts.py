"""The lab's world as facts: every number and behaviour the lab's Proxmox host, Rocky 8.10 guest
and VMS follow, each with its source.

The lab stands in for the real world, so it must answer as the real world does, never as our own
rules say it should: nothing here (nor anywhere in `backend/lab/`) imports the product's rules
(sizing, tuning, vmconfig, provision, prepare, install, diagnose, recovery, preflight). Sources are
named by the aliases of `../shared/research/ground-truth.md` §0 (mem, dmesg, inst, seed, jv,
lustre-cfg, dracut8, pve-network, qemu-server, pve-storage, apidata, vms54) with the section (§n)
where the fact is stated, or by the upstream file the behaviour comes from.
"""

from __future__ import annotations

# --- memory: the kernel's overhead and the field run's demand ------------------------------------

# What a Rocky 8.10 guest's kernel keeps of its VM's RAM, decomposed from the field guest's boot log
# (dmesg, ground-truth §2): the VM had `memory: 122880` (MiB) and its MemTotal was 123223064 kB.
KIB = 1024
E820_HOLES_KIB = 572  # present RAM: 31457137 pages, the VM's RAM less 572 kB of e820 holes [dmesg]
MEMMAP_FRACTION = 64  # struct page memmap: 64 + 8128 + 483328 pages = exactly 1/64 of RAM [dmesg]
# crashkernel=auto (the guest's cmdline [dmesg]) on RHEL 8 x86_64: 192 MB for 1-4 GB of RAM, 256 MB
# for 4-64 GB, 512 MB above [Red Hat, RHEL 8 "Managing, monitoring and updating the kernel", kdump
# memory requirements; §2]; the field's "System RAM: 122879MB" got 512 MB [dmesg].
CRASHKERNEL_TIERS_MB = ((1024, 0), (4096, 192), (65536, 256))  # (System RAM below this many MB, reserve)
CRASHKERNEL_TOP_MB = 512
# The rest of the early reserve: kernel image (~45 MB), initrd (23.9 MB), SWIOTLB (64 MB), per-CPU
# areas...: 2637936 kB in all, less the memmap (1966080 kB) and the crashkernel (524288 kB) [dmesg].
KERNEL_FIXED_RESERVE_KIB = 2_637_936 - 1_966_080 - 524_288
INIT_FREED_KIB = 32_452  # "Freeing unused kernel memory": initrd, init text and gaps [dmesg]

FIELD_VM_MEMORY_MIB = 122_880
FIELD_MEM_TOTAL_KIB = 123_223_064  # the field guest's MemTotal in all 634 samples [mem §1]


def crashkernel_mb(system_ram_mb: int) -> int:
    for below, reserve in CRASHKERNEL_TIERS_MB:
        if system_ram_mb < below:
            return reserve
    return CRASHKERNEL_TOP_MB


def guest_memtotal_kib(memory_mib: int) -> int:
    """MemTotal (kB) of the Rocky 8.10 guest of a VM with `memory_mib` of RAM, as its kernel arrives
    at it: the RAM less the e820 holes, the memmap, the crashkernel and the fixed reserve, plus the
    init memory freed after boot (122880 MiB gives the field's 123223064 kB exactly)."""
    present_kib = memory_mib * KIB - E820_HOLES_KIB
    crash_kib = crashkernel_mb(present_kib // KIB) * KIB
    kept = memory_mib * KIB // MEMMAP_FRACTION + crash_kib + KERNEL_FIXED_RESERVE_KIB
    return max(64 * KIB, present_kib - kept + INIT_FREED_KIB)


# The field run's memory demand: used = MemTotal - MemAvailable (GiB) of its guest, in seconds on the
# field axis (since the install started, 2025-12-29 18:32:13 UTC; bootstrap 0..887, cluster create
# 887..1961, ACTIVATING at 986, ONLINE at 1627). From memory.log's 634 samples (every ~5 s,
# 18:28:56-19:21:47): Ramer-Douglas-Peucker on the raw samples with 0.4 GiB tolerance, split at the
# peak so that it is kept exactly: 116.30 GiB (121947036 kB) at 19:21:37.8 = 2965 s, 17 min after the
# deploy finished [mem §1]. Checked against the trace by tests/test_scenarios_curves.py.
FIELD_DEMAND_GIB: tuple[tuple[float, float], ...] = (
    (-196.5, 3.14), (-166.5, 3.65), (-51.3, 3.62), (-41.3, 4.37), (239.1, 4.40), (339.3, 5.34), (774.9, 5.21),
    (789.9, 5.53), (794.9, 7.48), (799.9, 8.46), (829.9, 8.35), (839.9, 10.93), (855.0, 11.88), (920.0, 12.20),
    (925.0, 16.55), (930.1, 23.14), (935.1, 27.40), (940.1, 27.84), (945.1, 29.74), (955.1, 29.42),
    (965.1, 37.79), (970.2, 39.64), (980.2, 40.49), (995.3, 45.64), (1005.3, 47.25), (1010.3, 50.96),
    (1015.3, 55.81), (1020.3, 66.29), (1025.3, 79.48), (1030.3, 90.71), (1035.4, 103.59), (1040.4, 112.11),
    (1045.4, 112.30), (1065.5, 112.74), (1070.6, 112.30), (1100.7, 112.10), (1115.7, 112.65), (1150.8, 112.16),
    (1165.8, 112.83), (1190.9, 112.27), (1211.0, 112.34), (1216.0, 112.87), (1251.2, 112.13), (1261.2, 112.30),
    (1266.3, 113.03), (1281.3, 112.44), (1341.4, 112.53), (1346.4, 113.05), (1401.5, 112.63), (1416.6, 113.19),
    (1421.6, 112.71), (1461.6, 112.67), (1466.6, 113.39), (1481.7, 112.68), (1521.7, 112.68), (1526.7, 113.13),
    (1611.9, 112.65), (1621.9, 112.76), (1626.9, 114.21), (1647.0, 114.87), (1692.1, 114.25), (1707.1, 114.89),
    (1802.3, 114.57), (1822.3, 114.63), (1827.3, 115.19), (1842.4, 114.63), (1947.6, 115.37), (1962.7, 114.69),
    (1992.7, 115.03), (1997.7, 114.58), (2007.7, 115.22), (2022.8, 114.74), (2062.9, 115.04), (2067.9, 115.82),
    (2093.0, 115.23), (2123.0, 115.24), (2128.0, 115.80), (2148.1, 115.16), (2188.2, 115.85), (2203.2, 115.34),
    (2248.3, 115.83), (2298.4, 115.47), (2308.5, 116.10), (2323.5, 115.41), (2368.6, 116.10), (2403.6, 115.53),
    (2428.7, 116.20), (2443.8, 115.60), (2488.9, 116.08), (2599.1, 115.53), (2689.3, 116.11), (2699.3, 115.68),
    (2864.6, 116.14), (2869.6, 115.70), (2909.7, 116.25), (2949.8, 115.79), (2964.8, 116.30), (2974.9, 116.06)
)
FIELD_PEAK_USED_KIB = 121_947_036  # the last keypoint but one [mem §1]
# free(1)'s "used" (procps in RHEL 8: total - free - buffers - cache) leaves out what the kernel holds
# that MemAvailable does not count as available; the field run's used exceeded free's by 7.15-7.33 GiB
# from the activation plateau on [mem: MemTotal - MemAvailable vs the `free -h` lines of each block].
FREE_USED_GAP_GIB = 7.2

# The overcommitted world's demand (attempt 2: 24 vCPUs on 12 cores, a 109Gi guest = a 112 GiB VM):
# `free` showed 69Gi used "at steady state after containers started" and 83Gi at the failure, and
# dmesg had no OOM [jv docs/archive/VAST_Support_Case_Summary.md; §15]. So the starved activation never
# reached the good run's 112 GiB plateau: its demand (in MemTotal - MemAvailable, with the gap above)
# rose from 76 GiB once the containers ran to 90 GiB at the PANIC, 1058 s into ACTIVATING.
OVERCOMMIT_FREE_USED_GIB = (69.0, 83.0)  # (containers started, the failure)
# Not decided by any source: attempt 1 (97 GB, OOM during activation) has no vCPU count of its own; the
# seed's "Failed Config" column gives both failed attempts 24 vCPUs. If it had 24, an overcommitted
# activation can also allocate as the good run did before it starves (its guest of ~97.8 GiB met the
# OOM killer). The lab models both readings (`OVERCOMMIT_DEMANDS`): "support-case" (the default,
# attempt 2's figures) and "field-ramp" (the good run's demand until the nodes fall out at UNKNOWN).
OVERCOMMIT_DEMANDS = ("support-case", "field-ramp")


# --- kernel: the Rocky 8.10 kernel's storage drivers ---------------------------------------------


# --- kernel and Docker: what the guest keeps of an OOM kill ----------------------------------------

# The kernel's messages live in its ring buffer from boot on (`dmesg`, /dev/kmsg); Rocky 8's journal
# is volatile (no /var/log/journal, Storage=auto), so `journalctl -k` holds this boot only too; both
# are lost at a reboot (the lab rebuilds /dev/kmsg at every boot, runtime.py). /proc/vmstat oom_kill
# counts the OOM killer's kills since boot (mm/oom_kill 8e675f7af507, 4.13; research/monitoring.md).
#
# The VAST containers run without --memory, so the kernel's global OOM killer, not a cgroup limit,
# strikes. The lab lets the victim (`.env`, timeline.oom_messages) be the node container's main
# process (modelled: the field notes of attempt 1 only say the cluster was left in INIT), so Docker
# reports that container exited with 128 + SIGKILL.
OOM_KILLED_EXIT_CODE = 137
# Docker sets State.OOMKilled from containerd's OOM event, which cgroup v1 (Rocky 8) signals on the
# container cgroup's memory.oom_control for an OOM within the cgroup's own limit, not for the global
# OOM killer; users and maintainers report the flag unreliable for a "system OOM" (moby/moby#15621,
# moby/moby#38352, kubernetes/kubernetes#22322). Not verified on a Rocky 8 guest: the product must
# conclude from the kernel's record whichever way this goes.
DOCKER_OOMKILLED_ON_GLOBAL_OOM = False


# --- the OVA: its import metadata and its initramfs ----------------------------------------------


# --- network: how a guest's address can be known ---------------------------------------------------


# --- disk: the field guest's layout ----------------------------------------------------------------


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------
