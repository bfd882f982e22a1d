"""The lab's Proxmox hosts.

`seed` is the field report's host: Proxmox VE 9.1 on an AMD Ryzen Threadripper 2920X (1 socket,
12 cores, 24 threads), 128 GiB of RAM (the OS sees about 125.8 GiB), NVMe storage `local-lvm`,
and `local` with content `import` holding the OVA. `small` cannot host the cluster; `big` is a
three-node cluster of dual-socket machines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from backend.lab import facts

GIB = 1024**3
KIB = 1024

# What a 128 GiB machine reports as MemTotal (firmware and kernel keep the rest).
MEMTOTAL_128G_KIB = 131_907_216
OVA_NAME = "vast-5.4.0-loopback.ova"
OVA_SIZE = 21_806_333_952  # the OVA file (compressed VMDK inside)
OVA_DISK_SIZE = facts.OVA_DISK_BYTES  # the VMDK's virtual size: 600 GiB


@dataclass(frozen=True)
class StorageProfile:
    storage: str
    type: str  # "dir" | "lvmthin"
    content: tuple[str, ...]
    total: int
    used: int
    path: str = ""  # dir storages
    shared: bool = False


@dataclass(frozen=True)
class NodeProfile:
    node: str
    cpu_model: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    mhz: str
    mem_total: int  # bytes
    mem_used: int  # bytes in use by the host itself
    storages: tuple[StorageProfile, ...]
    bridges: tuple[str, ...] = ("vmbr0",)
    kernel: str = "6.17.2-1-pve"
    ova_storage: str | None = "local"  # where the OVA is present
    flags: str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb hw_pstate ssbd ibpb vmmcall fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt sha_ni xsaveopt xsavec xgetbv1 xsaves clzero irperf xsaveerptr arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif overflow_recov succor smca sev"  # noqa: E501

    @property
    def cores(self) -> int:
        """Physical cores over all sockets, as Proxmox's cpuinfo.cores counts them."""
        return self.sockets * self.cores_per_socket

    @property
    def threads(self) -> int:
        return self.cores * self.threads_per_core


@dataclass(frozen=True)
class HostProfile:
    name: str
    pve_version: str  # "9.1.3"
    repoid: str
    nodes: tuple[NodeProfile, ...]
    cluster_name: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)
    sdn_vnet: bool = False  # the cluster also has the SDN VNet of backend.lab.facts (IPAM + DHCP)


def _seed_storages(nvme_tb: float = 1.8) -> tuple[StorageProfile, ...]:
    return (
        StorageProfile("local", "dir", ("iso", "vztmpl", "backup", "import"), 100 * GIB, 24 * GIB, "/var/lib/vz"),
        StorageProfile("local-lvm", "lvmthin", ("images", "rootdir"), int(nvme_tb * 1000**4), 3 * GIB),
    )


SEED = HostProfile(
    name="seed",
    pve_version="9.1.3",
    repoid="5b5a9a6c1d3e2f47",
    nodes=(
        NodeProfile(
            node="pve",
            cpu_model="AMD Ryzen Threadripper 2920X 12-Core Processor",
            sockets=1, cores_per_socket=12, threads_per_core=2, mhz="3500.000",
            mem_total=MEMTOTAL_128G_KIB * KIB, mem_used=int(2.9 * GIB),
            storages=_seed_storages(),
        ),
    ),
    notes="The field report's host: Proxmox VE 9.1, Threadripper 2920X (12 cores / 24 threads), 128 GB, NVMe.",
)

SMALL = HostProfile(
    name="small",
    pve_version="9.1.3",
    repoid="5b5a9a6c1d3e2f47",
    nodes=(
        NodeProfile(
            node="pve-small",
            cpu_model="Intel(R) Core(TM) i7-10700 CPU @ 2.90GHz",
            sockets=1, cores_per_socket=8, threads_per_core=2, mhz="2900.000",
            mem_total=65_851_000 * KIB, mem_used=int(2.1 * GIB),
            storages=_seed_storages(1.0),
            flags="fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
                  "sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc vmx avx2 aes",
        ),
    ),
    notes="8 cores / 16 threads, 64 GB: cannot host the cluster.",
)


def _big_node(index: int, used_gib: float) -> NodeProfile:
    return NodeProfile(
        node=f"pve{index}",
        cpu_model="Intel(R) Xeon(R) Gold 6346 CPU @ 3.10GHz",
        sockets=2, cores_per_socket=16, threads_per_core=2, mhz="3100.000",
        mem_total=528_272_000 * KIB, mem_used=int(used_gib * GIB),
        storages=(
            StorageProfile("local", "dir", ("iso", "vztmpl", "backup", "import"), 200 * GIB, 30 * GIB, "/var/lib/vz"),
            StorageProfile("local-lvm", "lvmthin", ("images", "rootdir"), 7 * 1000**4, 400 * GIB),
        ),
        flags="fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
              "ss ht syscall nx pdpe1gb rdtscp lm constant_tsc vmx avx2 avx512f aes",
        kernel="6.8.12-9-pve",  # the PVE 8.4 kernel
    )


BIG = HostProfile(
    name="big",
    pve_version="8.4.1",
    repoid="2a5fa54a8503f96f",
    cluster_name="lab-cluster",
    nodes=(_big_node(1, 96), _big_node(2, 12), _big_node(3, 300)),
    notes="Three nodes, each 2 x 16 cores / 64 threads and 512 GB; PVE 8.4 (memory semantics of 8.4).",
)

PROFILES = {profile.name: profile for profile in (SEED, SMALL, BIG)}
# The profile names, for the answers' `lab.host_profile` and the CLI (listed here only).
PROFILE_NAMES = Literal[tuple(PROFILES)]  # type: ignore[valid-type]
# What the Connect screen says of each (backend/target.py ProviderInfo).
PROFILE_DESCRIPTIONS = {
    "seed": "seed: the field report's host (12 cores / 24 threads, 128 GB)",
    "small": "small: 8 cores / 16 threads, 64 GB (cannot host it)",
    "big": "big: 3 nodes of 2 × 16 cores, 512 GB",
}
