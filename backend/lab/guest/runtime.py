"""A boot's runtime files: the fake /proc, /sys, /dev/kmsg and /run the guest sees, and how they
are mounted.

At every (re)boot `build_runtime` recreates `<guest>/runtime/` from nothing, so every value that was
not persisted on the guest's disk is back at the kernel's default: /proc/sys, transparent huge
pages, the disk's I/O scheduler, /run (services, daemons). The boot script then applies what the
disk persists (/etc/sysctl.d, udev rules, enabled units, the tuned profile), as systemd would.

`mount_plan` lists the mounts the guest's init makes (see init.py): this machine's /usr/lib,
/usr/share, /usr/bin (as /usr/.host/bin) read-only; a fresh procfs for the guest's PID namespace
with the runtime files bound over /proc/{cpuinfo,meminfo,stat,loadavg,diskstats,vmstat,version,
cmdline,swaps} (/proc/uptime is the kernel's, through the guest's time namespace); runtime directories bound over /proc/sys/{vm,kernel,fs} (the rest of
/proc/sys stays this machine's, read-only for the guest's user); this machine's /sys with runtime
directories over /sys/kernel/mm/transparent_hugepage, /sys/block (a VM's `sda`), /sys/fs/cgroup
(cgroup v1, as on Rocky 8) and files over /sys/devices/system/cpu/{online,possible,present}; a
tmpfs /dev with null/zero/full/random/urandom/tty bound from this machine, a private devpts, and
/dev/kmsg as a regular file; /run from the runtime directory.

Multiple-choice sysfs files (THP enabled/defrag, queue/scheduler) accept a bare word from the
guest (`echo never > .../enabled`); `normalise` rewrites them to the kernel's format
(`always madvise [never]`) at the next lab tick and before an SSH command's exit status is sent,
and restores the previous value when the word is not one of the choices (the kernel answers such
a write with EINVAL). Readers should take the bracketed word when there is one, else the file's
single word. Sysctl files likewise keep the last valid value.

/dev/kmsg is a regular file of `pri,seq,usec,flags;text` records, one per line, appended to by the
lab: a reader sees EOF when it has read everything (it does not block like the real device).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from backend.lab import facts
from backend.lab.guest import rocky
from backend.lab.guest.blockdev import Layout, ova_layout, sysfs_files
from backend.lab.guest.fsutil import InPlaceFile, open_beneath, read_beneath, remove_tree
from backend.lab.guest.image import GuestKernel
from backend.lab.guest.load import UPTIME_AT_BOOT, ProcState, cgroup_memory_files
from backend.lab.guest.rootfs import STUBS, cpu_model, hw_env, link_table_text
from backend.lab.guest.support import own_tree
from backend.lab.world import GuestHardware

PROC_FILES = ("cpuinfo", "meminfo", "stat", "loadavg", "diskstats", "vmstat", "version", "cmdline", "swaps")
THP = "sys/kernel/mm/transparent_hugepage"
SCHEDULER = "sys/block/sda/queue/scheduler"
CHOICE_FILES = {f"{THP}/enabled": rocky.THP_ENABLED, f"{THP}/defrag": rocky.THP_DEFRAG,
                f"{THP}/khugepaged/defrag": ("0", "1"), SCHEDULER: rocky.SCHEDULERS}
CGROUP_CONTROLLERS = ("blkio", "cpu,cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
                      "net_cls,net_prio", "perf_event", "pids", "rdma", "systemd")


def cpuinfo(hw: GuestHardware) -> str:
    model = cpu_model(hw)
    flags = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
             "ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm rep_good nopl cpuid extd_apicid tsc_known_freq pni "
             "pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c "
             "rdrand hypervisor lahf_lm cmp_legacy svm cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw "
             "topoext perfctr_core ssbd ibpb vmmcall fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt "
             "sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr arat npt nrip_save arch_capabilities")
    if hw.cpu_type != "host":
        flags = ("fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
                 "syscall nx lm rep_good nopl cpuid extd_apicid tsc_known_freq pni cx16 x2apic hypervisor "
                 "lahf_lm cmp_legacy svm 3dnowprefetch vmmcall")
    blocks = []
    cores = max(1, hw.cores)
    for n in range(max(1, hw.vcpus)):
        blocks.append(
            f"processor\t: {n}\nvendor_id\t: {'AuthenticAMD' if 'AMD' in model else 'GenuineIntel'}\n"
            f"cpu family\t: 23\nmodel\t\t: 8\nmodel name\t: {model}\nstepping\t: 2\nmicrocode\t: 0x1000065\n"
            f"cpu MHz\t\t: 3493.436\ncache size\t: 512 KB\nphysical id\t: {n // cores}\n"
            f"siblings\t: {cores}\ncore id\t\t: {n % cores}\ncpu cores\t: {cores}\napicid\t\t: {n}\n"
            f"initial apicid\t: {n}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 13\nwp\t\t: yes\n"
            f"flags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs null_seg spectre_v1 spectre_v2 spec_store_bypass\n"
            f"bogomips\t: 6986.87\nTLB size\t: 1024 4K pages\nclflush size\t: 64\ncache_alignment\t: 64\n"
            f"address sizes\t: 43 bits physical, 48 bits virtual\npower management:\n\n")
    return "".join(blocks)


@dataclass
class Runtime:
    """The runtime directory of one boot and the files the lab keeps writing."""

    path: Path
    hw: GuestHardware
    proc: ProcState
    files: dict[str, InPlaceFile] = field(default_factory=dict)
    last_good: dict[str, str] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)  # choice files found empty at the last tick
    kmsg_seq: int = 0

    def file(self, rel: str) -> InPlaceFile:
        if rel not in self.files:
            self.files[rel] = InPlaceFile(self.path, rel)
        return self.files[rel]

    def write_proc(self) -> None:
        p = self.proc
        renders = {"meminfo": p.meminfo, "stat": p.stat, "loadavg": p.loadavg, "diskstats": p.diskstats,
                   "vmstat": p.vmstat}
        for name, render in renders.items():
            self.file(f"proc/{name}").write(render())

    def write_containers(self, disk: Path, usage: dict[str, int]) -> None:
        """Fill the cgroup memory files of the running containers the load names (by container name)."""
        if not usage:
            return
        table = read_beneath(disk, "var/lib/lab/docker/containers", "") or ""
        for line in table.splitlines():
            fields = line.split("\t")
            if len(fields) < 4 or fields[1] not in usage or fields[3] != "running" or not fields[0].isalnum():
                continue
            folder = f"sys/fs/cgroup/memory/docker/{fields[0]}"
            if not (self.path / folder).is_dir():
                continue
            for name, text in cgroup_memory_files(int(usage[fields[1]])).items():
                self.file(f"{folder}/{name}").write(text)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files.clear()

    # -- the guest writes to sysfs/sysctl files; keep them in the kernel's shape ------------------
    def normalise(self) -> None:
        for rel, choices in CHOICE_FILES.items():
            try:
                text = self.file(rel).read()
            except OSError:
                continue
            if not text.strip() and rel not in self.truncated:
                # A shell's `>` truncated it and its write is still in flight: look again next tick
                # (rewriting it now would undo that write).
                self.truncated.add(rel)
                continue
            self.truncated.discard(rel)
            word = selected(text)
            if word in choices:
                good = rocky.choice_line(choices, word)
                self.last_good[rel] = word
            else:
                good = rocky.choice_line(choices, self.last_good.get(rel, choices[0]))
            if text != good:
                self.file(rel).write(good)
        self.proc.thp = selected(self.file(f"{THP}/enabled").read())

    def value(self, rel: str) -> str:
        """A runtime file's current value (the selected word of a choice file)."""
        text = self.file(rel).read()
        return selected(text) if rel in CHOICE_FILES else text.strip()

    def kmsg(self, text: str, level: int = 6, facility: int = 0) -> None:
        """Append a kernel message record (usec since boot on the guest's clock)."""
        usec = int((max(0.0, time.time() - self.proc.boot_wall) + UPTIME_AT_BOOT) * 1e6)
        for line in text.splitlines() or [""]:
            record = f"{facility * 8 + level},{self.kmsg_seq},{usec},-;{line}\n"
            self.kmsg_seq += 1
            fd = open_beneath(self.path, "dev/kmsg", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, record.encode())
            finally:
                os.close(fd)


def selected(text: str) -> str:
    """The selected word of a sysfs choice file: the bracketed one, else the file's single word."""
    text = text.strip()
    if "[" in text and "]" in text:
        return text[text.index("[") + 1:text.index("]")]
    return text.split()[0] if text.split() else ""


def _put(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


BOOT_MESSAGES = (
    (5, f"Linux version {rocky.KERNEL_RELEASE} (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) "
        f"(gcc version 8.5.0 20210514 (Red Hat 8.5.0-26) (GCC)) {rocky.KERNEL_VERSION}"),
    (6, "Command line: BOOT_IMAGE=(hd0,msdos1)/vmlinuz-{kver} root=UUID={root_uuid} ro crashkernel=auto "
        "resume=UUID={swap_uuid} biosdevname=0 net.ifnames=0 rhgb quiet"),
    (6, "Hypervisor detected: KVM"),
    (6, "Memory: {memk}K/{ramk}K available"),
    (6, "smp: Brought up 1 node, {vcpus} CPUs"),
    (5, "SCSI subsystem initialized"),
    (6, "{driver_line}"),
    (5, "sd 2:0:0:0: [sda] {sectors} 512-byte logical blocks: ({disk_gb} GB/{disk_gib} GiB)"),
    (6, " sda: sda1 sda2 sda3"),
    (5, "sd 2:0:0:0: [sda] Attached SCSI disk"),
    (6, "{root_mounting}"),
    (6, "{root_mounted}"),
    (6, "Adding {swap_kib}k swap on /dev/sda2.  Priority:-2 extents:1 across:{swap_kib}k SSFS"),
    (6, "systemd[1]: systemd 239 (239-82.el8_10.5) running in system mode."),
    (6, "systemd[1]: Detected virtualization kvm."),
    (6, "systemd[1]: Set hostname to <localhost.localdomain>."),
)
# What the kernel says when it mounts the root filesystem, by type (fs/xfs/xfs_super.c, fs/ext4/super.c).
ROOT_MOUNT_LINES = {"xfs": ("XFS (sda3): Mounting V5 Filesystem", "XFS (sda3): Ending clean mount"),
                    "ext4": ("EXT4-fs (sda3): mounted filesystem with ordered data mode. Opts: (null)",
                             "EXT4-fs (sda3): re-mounted. Opts: (null)")}


def boot_messages(hw: GuestHardware, layout: Layout, kernel: GuestKernel) -> list[tuple[int, str]]:
    driver = rocky.controller_driver(hw)
    driver_line = {"virtio_scsi": "scsi host2: Virtio SCSI HBA", "ahci": "scsi host2: ahci",
                   "ata_piix": "scsi host2: ata_piix", "vmw_pvscsi": "vmw_pvscsi: using 64bit dma"
                   }.get(driver, f"{driver}: controller found")
    mounting, mounted = ROOT_MOUNT_LINES.get(layout.root_fstype, ROOT_MOUNT_LINES["xfs"])
    values = {"kver": rocky.KERNEL_RELEASE, "root_uuid": facts.ROOT_UUID, "swap_uuid": facts.SWAP_UUID,
              "swap_kib": layout.swap_kib, "memk": kernel.memtotal_kib(hw.memory_mib),
              "ramk": hw.memory_mib * 1024, "vcpus": hw.vcpus, "driver_line": driver_line,
              "sectors": hw.disk_gib * 2097152, "disk_gb": int(hw.disk_gib * 1.073741824), "disk_gib": hw.disk_gib,
              "root_mounting": mounting, "root_mounted": mounted}
    return [(level, text.format(**values)) for level, text in BOOT_MESSAGES]


def build_runtime(path: Path, hw: GuestHardware, boot_wall: float, speed: float,
                  layout: Layout | None = None, kernel: GuestKernel | None = None) -> Runtime:
    """Recreate the runtime directory for a fresh boot of `hw` whose disk holds `layout` and `kernel`
    (the OVA's when not given)."""
    layout, kernel = layout or ova_layout(), kernel or GuestKernel()
    remove_tree(path)
    path.mkdir(parents=True)
    mem_kib = kernel.memtotal_kib(hw.memory_mib)
    static = {
        "proc/cpuinfo": cpuinfo(hw),
        "proc/version": BOOT_MESSAGES[0][1] + "\n",
        "proc/cmdline": BOOT_MESSAGES[1][1].format(kver=rocky.KERNEL_RELEASE, root_uuid=facts.ROOT_UUID,
                                                   swap_uuid=facts.SWAP_UUID)[len("Command line: "):] + "\n",
        "proc/swaps": f"Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n/dev/sda2                               "
                      f"partition\t{layout.swap_kib}\t0\t-2\n",
        "sys/devices/system/cpu/online": f"0-{hw.vcpus - 1}\n" if hw.vcpus > 1 else "0\n",
        "sys/devices/system/cpu/possible": f"0-{hw.vcpus - 1}\n" if hw.vcpus > 1 else "0\n",
        "sys/devices/system/cpu/present": f"0-{hw.vcpus - 1}\n" if hw.vcpus > 1 else "0\n",
        f"{THP}/enabled": rocky.choice_line(rocky.THP_ENABLED, rocky.THP_DEFAULTS["enabled"]),
        f"{THP}/defrag": rocky.choice_line(rocky.THP_DEFRAG, rocky.THP_DEFAULTS["defrag"]),
        f"{THP}/khugepaged/defrag": "1\n",
        f"{THP}/khugepaged/pages_to_scan": "4096\n",
        f"{THP}/khugepaged/scan_sleep_millisecs": "10000\n",
        f"{THP}/use_zero_page": "1\n",
        f"{THP}/hpage_pmd_size": "2097152\n",
        f"{THP}/shmem_enabled": "always within_size advise [never] deny force\n",
        SCHEDULER: rocky.choice_line(rocky.SCHEDULERS, rocky.default_scheduler(hw)),
        "sys/block/sda/dev": "8:0\n",
        "sys/block/sda/size": f"{hw.disk_gib * 2097152}\n",
        "sys/block/sda/removable": "0\n",
        "sys/block/sda/ro": "0\n",
        "sys/block/sda/queue/rotational": "1\n",
        "sys/block/sda/queue/nr_requests": "256\n",
        "sys/block/sda/queue/read_ahead_kb": "128\n",
        "sys/block/sda/queue/max_sectors_kb": "1280\n",
        "sys/block/sda/queue/logical_block_size": "512\n",
        "sys/block/sda/queue/physical_block_size": "512\n",
        "sys/block/sda/queue/hw_sector_size": "512\n",
        "sys/block/sda/queue/nr_hw_queues": f"{hw.vcpus if rocky.multiqueue(hw) else 1}\n",
        "sys/block/sda/device/rescan": "",
        **sysfs_files(layout),
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{(mem_kib - 110_000_000 // 1024) * 1024}\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "run/lab/hw.env": hw_env(hw, speed, kernel),
        "run/lab/speed": f"{speed}\n",
        "run/utmp": "",
        "dev/kmsg": "",
    }
    for rel, text in static.items():
        _put(path, rel, text)
    sysctls = rocky.kernel_sysctls(hw.vcpus, mem_kib)
    sysctls["kernel/random/boot_id"] = str(uuid.uuid4())
    sysctls["kernel/random/uuid"] = str(uuid.uuid4())
    for rel, value in sysctls.items():
        _put(path, f"proc/sys/{rel}", value + "\n")
    for controller in CGROUP_CONTROLLERS:
        (path / "sys/fs/cgroup" / controller).mkdir(parents=True, exist_ok=True)
    (path / "sys/fs/cgroup/memory/docker").mkdir(parents=True, exist_ok=True)
    for rel in ("run/lab/units", "run/lab/daemons", "run/lock", "run/user", "run/systemd", "run/docker"):
        (path / rel).mkdir(parents=True, exist_ok=True)
    shutil.copytree(STUBS, path / "stubs", symlinks=True)
    _put(path, "stubs/lib/links.tsv", link_table_text())
    own_tree(path)
    proc = ProcState(hw.vcpus, mem_kib, boot_wall, thp=rocky.THP_DEFAULTS["enabled"], swap_kib=layout.swap_kib)
    runtime = Runtime(path, hw, proc)
    runtime.write_proc()
    for level, text in boot_messages(hw, layout, kernel):
        runtime.kmsg(text, level)
    for rel, _choices in CHOICE_FILES.items():
        runtime.last_good[rel] = selected((path / rel).read_text())
    return runtime


def open_runtime(path: Path, hw: GuestHardware, boot_wall: float, layout: Layout, kernel: GuestKernel) -> Runtime:
    """The runtime of a guest still running from a previous lab process: continue its counters."""
    proc = ProcState(hw.vcpus, kernel.memtotal_kib(hw.memory_mib), boot_wall, swap_kib=layout.swap_kib)
    runtime = Runtime(path, hw, proc)
    proc.restore(runtime.file("proc/stat").read(), runtime.file("proc/diskstats").read(),
                 runtime.file("proc/vmstat").read())
    proc.now_wall = max(boot_wall, (path / "proc/stat").stat().st_mtime)
    for rel in CHOICE_FILES:
        runtime.last_good[rel] = selected(runtime.file(rel).read())
    proc.thp = runtime.last_good[f"{THP}/enabled"]
    try:
        runtime.kmsg_seq = sum(1 for _ in (path / "dev/kmsg").open())
    except OSError:
        runtime.kmsg_seq = 0
    return runtime


def mount_plan(has_py36: bool) -> list[dict]:
    """The mounts init.py makes under the guest's root (targets are guest paths)."""
    plan: list[dict] = [
        {"kind": "bind", "source": "/usr/lib", "target": "/usr/lib", "ro": True, "recursive": True},
        {"kind": "bind", "source": "/usr/lib64", "target": "/usr/lib64", "ro": True, "optional": True},
        {"kind": "bind", "source": "/usr/share", "target": "/usr/share", "ro": True, "recursive": True},
        {"kind": "bind", "source": "/usr/bin", "target": "/usr/.host/bin", "ro": True},
        {"kind": "bind", "source": "/usr/sbin", "target": "/usr/.host/sbin", "ro": True},
        {"kind": "bind", "source": "/usr/libexec", "target": "/usr/.host/libexec", "ro": True, "optional": True},
        {"kind": "bind", "source": "src:runtime/stubs", "target": "/usr/.lab/stubs", "ro": True},
    ]
    if has_py36:
        plan.append({"kind": "bind", "source": "src:py36", "target": "/usr/.lab/python3.6", "ro": True})
    plan.append({"kind": "proc", "target": "/proc", "flags": 2 | 4 | 8})
    for name in PROC_FILES:
        plan.append({"kind": "bind", "source": f"src:runtime/proc/{name}", "target": f"/proc/{name}", "ro": True})
    for name in rocky.SYSCTL_DIRS:
        plan.append({"kind": "bind", "source": f"src:runtime/proc/sys/{name}", "target": f"/proc/sys/{name}"})
    plan += [
        {"kind": "bind", "source": "/sys", "target": "/sys", "recursive": True},
        {"kind": "bind", "source": f"src:runtime/{THP}", "target": f"/{THP}", "make": True},
        {"kind": "bind", "source": "src:runtime/sys/block", "target": "/sys/block"},
        {"kind": "bind", "source": "src:runtime/sys/fs/cgroup", "target": "/sys/fs/cgroup", "make": True},
    ]
    for name in ("online", "possible", "present"):
        plan.append({"kind": "bind", "source": f"src:runtime/sys/devices/system/cpu/{name}",
                     "target": f"/sys/devices/system/cpu/{name}", "ro": True, "make": True})
    plan.append({"kind": "tmpfs", "target": "/dev", "flags": 2, "data": "mode=755,size=65536k"})
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        plan.append({"kind": "bind", "source": f"/dev/{name}", "target": f"/dev/{name}", "make": True,
                     "optional": True})
    plan += [
        {"kind": "bind", "source": "src:runtime/dev/kmsg", "target": "/dev/kmsg", "make": True},
        {"kind": "mkdir", "target": "/dev/pts"},
        {"kind": "devpts", "target": "/dev/pts", "flags": 2 | 8, "data": "newinstance,ptmxmode=0666,mode=620"},
        {"kind": "symlink", "source": "pts/ptmx", "target": "/dev/ptmx"},
        {"kind": "mkdir", "target": "/dev/shm", "mode": 0o1777},
        {"kind": "tmpfs", "target": "/dev/shm", "flags": 2 | 4, "data": "mode=1777"},
        {"kind": "mkdir", "target": "/dev/mqueue"},
        {"kind": "symlink", "source": "/proc/self/fd", "target": "/dev/fd"},
        {"kind": "symlink", "source": "/proc/self/fd/0", "target": "/dev/stdin"},
        {"kind": "symlink", "source": "/proc/self/fd/1", "target": "/dev/stdout"},
        {"kind": "symlink", "source": "/proc/self/fd/2", "target": "/dev/stderr"},
        {"kind": "mkdir", "target": "/dev/virtio-ports"},
        {"kind": "bind", "source": "src:runtime/run", "target": "/run"},
    ]
    return plan
