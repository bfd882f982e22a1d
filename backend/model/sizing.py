"""Sizing rules: host facts and a proposed VM in, a recommendation and findings out.

Pure functions, cheap enough to run on every keystroke. Every rule carries its evidence from the
field report (../shared/seed/) or, where the report's prose and the raw logs disagree, from the raw
traces of the successful run (../shared/traces/seed-run-2025-12-29/).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from backend.model.guestmemory import both, guest_gib, sized, vm_gib_for_guest
from backend.model.hostfacts import GIB, HostInventory, NodeFacts

# The validated configuration and the thresholds the field report taught.
VALIDATED_VCPUS = 12
MAX_RECOMMENDED_VCPUS = 24  # the report's "16-24 (if host has cores)"

# Memory is reasoned in the guest's units (MemTotal, what `free` shows and what the field's figures
# are) and converted to the VM's `memory` setting with the EL8 kernel's overhead (backend.model.guestmemory).
FIELD_VM_MEMORY_GIB = 120  # the field's working VM: memory 122880 (its dmesg: "System RAM: 122879MB")
FIELD_PEAK_USED_KIB = 121_947_036  # MemTotal - MemAvailable at 19:21:37.839 (memory.log), 17 min after the deploy
GUEST_MIN_GIB = FIELD_PEAK_USED_KIB / (1024 * 1024)  # 116.30: a guest seeing less meets the OOM killer
GUEST_RECOMMENDED_GIB = 128  # the report's "128 GB+", the guest's view as its "117GB" was (free -g)
MEMORY_MIN_GIB = vm_gib_for_guest(GUEST_MIN_GIB)  # 119 GiB VM: its guest sees ~116.5 GiB
MEMORY_RECOMMENDED_GIB = vm_gib_for_guest(GUEST_RECOMMENDED_GIB)  # 131 GiB VM: its guest sees ~128.3 GiB
SEED_GUEST_FIGURES = (97, 109, 117)  # the report's RAM figures, as its guests saw them (ground-truth §3)

# What the Proxmox host keeps for itself next to one big VM on LVM-thin (sources in EVIDENCE["reserve"]).
PVE_HOST_GIB = 2.0  # Proxmox VE docs: "minimum 2 GB for OS and Proxmox VE services"
QEMU_OVERHEAD_FRACTION = 0.002  # the VM's process: 0.2 % of its RAM (page tables, ...)
QEMU_OVERHEAD_FIXED_MIB = 218 + 16  # the VMM's processes, plus one display (Proxmox's default VGA)
QEMU_OVERHEAD_PER_VCPU_MIB = 8
ARC_GIB_PER_TB = 1.0  # ZFS and Ceph only: "approximately 1 GB memory for every TB used storage"
ARC_STORAGE_TYPES = ("zfspool", "rbd")

DISK_MIN_GIB = 500
DISK_RECOMMENDED_GIB = 1000
PVE_IMPORT_VERSION = (8, 3)

EVIDENCE = {
    "overcommit": (
        "Field report, attempt 2: 24 vCPUs (2x12) on a 12-core / 24-thread Threadripper 2920X died of "
        "PANIC[P653] in vmsg_keepalive_fiber (fiber stuck 245 s); attempt 3 with 12 vCPUs (1:1) succeeded."
    ),
    "validated": (
        "Field report, attempt 3: 12 vCPUs and a 120 GiB VM (memory 122880; its guest saw MemTotal 117.5 GiB, "
        "the report's '117GB') is the configuration that reached ONLINE."
    ),
    "oom": (
        "Field traces of attempt 3 (memory.log): the guest's used memory (MemTotal - MemAvailable) peaked at "
        "116.30 GiB (121947036 kB at 19:21:37, 17 min after the deploy finished) in a guest that saw 117.51 GiB; "
        "attempt 1, whose guest saw 97 GB (a ~100 GiB VM), died of the OOM killer during activation."
    ),
    "tight": (
        "Field traces of attempt 3 (guest MemTotal 117.5 GiB): MemAvailable fell to 3.3 GiB during activation "
        "(memory.log, 18:59:19) and to 1.2 GiB after ONLINE (19:21:37); the report recommends 128 GB+ "
        "(its install script warns below 128 GB as free -g shows it in the guest)."
    ),
    "reserve": (
        "Proxmox VE docs (System Requirements): minimum 2 GB for the OS and Proxmox VE services, plus the guests' "
        "memory; ZFS and Ceph need about 1 GB more per TB of used storage (LVM-thin needs none). QEMU/KVM's own "
        "overhead per VM is about 0.2 % of its memory + 218 MiB + 8 MiB per vCPU + 16 MiB per display (Red Hat "
        "OpenShift Virtualization docs, 'Physical resource overhead requirements'). The field's host "
        "(MemTotal 125.8 GiB) ran the 120 GiB VM with 5.8 GiB left to itself."
    ),
    "seed_figures": (
        "ground-truth §3: the report's '117GB' is the guest's free -h (MemTotal 117.51 GiB) of a VM with memory "
        "122880; attempt 2's '109GB' is free's 109Gi; '97GB' has no free output, the same convention gives ~100 GiB."
    ),
    "disk": "Field report: disk minimum 500 GB, recommended 1 TB (the OVA's disk alone is about 600 GB).",
    "cpu_host": "Field report: CPU type qemu64 in the failed attempts; 'host' (passthrough) in the one that worked.",
    "sockets": "Field report: 2 sockets x 12 in the failed attempt; 1 socket x 12 cores in the one that worked.",
    "balloon": "Field report: ballooning enabled in the failed attempts, disabled in the one that worked.",
    "controller": (
        "Field traces of the successful install (iostat.log): VirtIO SCSI single with an IO thread kept the "
        "OS disk's r_await at most 29.0 ms and w_await at most 21.65 ms."
    ),
    "numa": "A single-socket host has one NUMA node; NUMA emulation only adds overhead there.",
    "numa_layout": (
        "With numa=1 and no numaN entries, Proxmox makes one guest NUMA node per virtual socket and splits "
        "the memory evenly over them (qemu-server PVE/QemuServer/Memory.pm): NUMA with 1 socket is one node."
    ),
    "kvm": "Field report: nested virtualization / KVM was enabled on the host.",
    "import": "OVA import through the API (content 'import', import-from) arrived in Proxmox VE 8.3.",
}


@dataclass(frozen=True)
class Proposal:
    """A proposed VM. The plan always uses the right CPU type, sockets, ballooning and controller;
    a proposal may still describe something else (e.g. the field report's failed attempts)."""

    vcpus: int
    memory_gib: int
    disk_gib: int
    storage: str | None = None
    sockets: int = 1
    cpu_type: str = "host"
    balloon: bool = False
    scsihw: str = "virtio-scsi-single"
    iothread: bool = True


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # "blocker" | "warning" | "info"
    message: str
    remedy: str
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Recommendation:
    vcpus: int
    memory_gib: int
    disk_gib: int
    feasible: bool
    reason: str = ""
    sockets: int = 1
    cpu: str = "host"
    balloon: int = 0
    scsihw: str = "virtio-scsi-single"
    iothread: bool = True
    numa: bool = False
    storage: str | None = None
    max_memory_gib: int = 0
    host_reserve_gib: float = 0.0
    guest_memory_gib: float = 0.0  # what the guest of `memory_gib` sees (MemTotal)

    def to_dict(self) -> dict:
        return asdict(self)


SEVERITIES = ("blocker", "warning", "info")  # the one order of findings' severities, most severe first


def severity_rank(severity: str) -> int:
    """0 for a blocker, 1 for a warning, 2 for info (and anything else)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


def by_severity(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Findings most severe first, in their order within a severity."""
    return tuple(sorted(findings, key=lambda f: severity_rank(f.severity)))


@dataclass(frozen=True)
class SizingResult:
    recommendation: Recommendation
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    proposal: Proposal | None = None  # what was evaluated ('auto' resolved), built once

    @property
    def blockers(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "blocker")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "recommendation": self.recommendation.to_dict(),
        }


def _qemu_overhead_gib(memory_gib: float, vcpus: int) -> float:
    return (QEMU_OVERHEAD_FRACTION * memory_gib * 1024 + QEMU_OVERHEAD_FIXED_MIB
            + QEMU_OVERHEAD_PER_VCPU_MIB * vcpus) / 1024


def _storage_gib(node: NodeFacts, storage: str | None, disk_gib: float) -> float:
    """What the host's storage layer keeps in RAM for the VM's disk: ZFS's ARC and Ceph's caches."""
    facts = node.storage(storage) if storage else None
    return ARC_GIB_PER_TB * disk_gib / 1000 if facts is not None and facts.type in ARC_STORAGE_TYPES else 0.0


def host_reserve_gib(node: NodeFacts, memory_gib: float, vcpus: int, storage: str | None = None,
                     disk_gib: float = 0) -> float:
    """RAM the Proxmox host needs next to this VM: its OS and services, the VM's QEMU overhead and,
    on ZFS or Ceph, their caches (EVIDENCE["reserve"]). About 2.6 GiB for the field's VM on LVM-thin."""
    return PVE_HOST_GIB + _qemu_overhead_gib(memory_gib, vcpus) + _storage_gib(node, storage, disk_gib)


def max_safe_memory_gib(node: NodeFacts, vcpus: int = VALIDATED_VCPUS, storage: str | None = None,
                        disk_gib: float = 0) -> int:
    """The largest VM memory (whole GiB) that leaves the host what it needs next to it."""
    fixed = host_reserve_gib(node, 0, vcpus, storage, disk_gib)
    return max(0, math.floor((node.mem_total_gib - fixed) / (1 + QEMU_OVERHEAD_FRACTION)))


def _seed_figure_remedy(vm_gib: int) -> str:
    if vm_gib == FIELD_VM_MEMORY_GIB:
        return f"Type {vm_gib}: the VM the report's working run had."
    return (f"Type {vm_gib} to reproduce that attempt in VM units; {FIELD_VM_MEMORY_GIB} GiB is the VM that "
            "worked.")


def recommended_memory_gib(max_memory_gib: int) -> int:
    """The VM whose guest sees the report's 128 GiB where the host has room for it; else the field's
    working 120 GiB VM; else the most the host can give (a blocker below MEMORY_MIN_GIB)."""
    for size in (MEMORY_RECOMMENDED_GIB, FIELD_VM_MEMORY_GIB):
        if max_memory_gib >= size:
            return size
    return max_memory_gib


def seed_figure_hint(memory_gib: int) -> str:
    """For the report's own RAM figures (guest units) typed as the VM's: which VM gives that guest."""
    if memory_gib not in SEED_GUEST_FIGURES:
        return ""
    vm = vm_gib_for_guest(memory_gib)
    return (f"The field report's '{memory_gib}GB' is what its guest saw (free), not the VM's setting: "
            f"a VM of {sized(vm)} gives that.")


def _pve_version_tuple(version: str) -> tuple[int, int] | None:
    digits = version.split("/")[-2] if "/" in version else version  # "pve-manager/9.1.3/..." or "9.1.3"
    parts = digits.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None


def _best_disk_storage(node: NodeFacts, wanted: str | None) -> tuple[str | None, float]:
    candidates = [s for s in node.storages if s.active and s.holds("images")]
    if wanted:
        chosen = node.storage(wanted)
        return (wanted, chosen.avail_gib if chosen else 0.0)
    if not candidates:
        return None, 0.0
    best = max(candidates, key=lambda s: s.avail)
    return best.storage, best.avail_gib


@dataclass(frozen=True)
class Topology:
    """How the VM's vCPUs are laid out: `sockets` virtual sockets of `cores` cores, NUMA on or off."""

    sockets: int
    cores: int
    numa: bool
    spans: int  # host sockets the vCPUs need (1: they fit in one socket's cores)


def topology(node: NodeFacts, vcpus: int, memory_gib: int) -> Topology:
    """The VM's sockets and NUMA for this host. vCPUs within one host socket's cores: 1 socket, NUMA off.
    vCPUs spanning N host sockets: N virtual sockets with NUMA on, so the guest sees the host's layout
    (one NUMA node per socket, memory split evenly: EVIDENCE["numa_layout"]), when the vCPUs and the
    memory divide evenly over them; otherwise 1 socket and NUMA off (never NUMA nodes that do not match)."""
    vcpus = max(1, int(vcpus))
    if node.sockets <= 1 or vcpus <= node.cores_per_socket:
        return Topology(1, vcpus, False, 1)
    spans = min(node.sockets, math.ceil(vcpus / node.cores_per_socket))
    if vcpus % spans or (int(memory_gib) * 1024) % spans:
        return Topology(1, vcpus, False, spans)
    return Topology(spans, vcpus // spans, True, spans)


def recommend(node: NodeFacts, storage: str | None = None) -> Recommendation:
    """The configuration this node should get, or why it cannot host the cluster."""
    vcpus = max(1, min(node.cores, MAX_RECOMMENDED_VCPUS))
    storage_name, avail = _best_disk_storage(node, storage)
    disk = DISK_RECOMMENDED_GIB if avail >= DISK_RECOMMENDED_GIB else max(DISK_MIN_GIB, int(avail * 0.95))
    max_mem = max_safe_memory_gib(node, vcpus, storage_name, disk)
    memory = recommended_memory_gib(max_mem)
    reserve = host_reserve_gib(node, memory, vcpus, storage_name, disk)
    layout = topology(node, vcpus, memory)
    reasons = []
    if max_mem < MEMORY_MIN_GIB:
        reasons.append(
            f"{node.mem_total_gib:.1f} GiB of RAM leaves at most {max_mem} GiB for the VM after the host's "
            f"{reserve:.1f} GiB ({both(max_mem)}); the cluster needs a VM of {sized(MEMORY_MIN_GIB)}: "
            f"the field run's guest used up to {GUEST_MIN_GIB:.1f} GiB"
        )
    if avail < DISK_MIN_GIB:
        reasons.append(
            f"no storage with 'images' content has {DISK_MIN_GIB} GiB free"
            + (f" (best: {storage_name}, {avail:.0f} GiB)" if storage_name else "")
        )
    if not node.hvm:
        reasons.append("the CPU offers no hardware virtualization (vmx/svm) to guests")
    return Recommendation(
        vcpus=vcpus,
        memory_gib=memory,
        disk_gib=disk,
        feasible=not reasons,
        reason="; ".join(reasons),
        sockets=layout.sockets,
        numa=layout.numa,
        storage=storage_name,
        max_memory_gib=max_mem,
        host_reserve_gib=round(reserve, 1),
        guest_memory_gib=round(guest_gib(memory), 1),
    )


def evaluate(node: NodeFacts, proposal: Proposal) -> SizingResult:
    """Findings for a proposed VM on this node, most severe first."""
    rec = recommend(node, proposal.storage)
    findings: list[Finding] = []
    add = findings.append

    # --- vCPUs ---
    if proposal.vcpus > node.cores:
        smt = f" ({node.threads} threads: hyperthreads do not count)" if node.smt else ""
        add(Finding(
            "vcpus-over-cores", "blocker",
            f"{proposal.vcpus} vCPUs exceed the host's {node.cores} physical cores{smt}.",
            f"Use at most {node.cores} vCPUs (1 socket x {min(node.cores, MAX_RECOMMENDED_VCPUS)} cores).",
            EVIDENCE["overcommit"],
        ))
    if proposal.vcpus < VALIDATED_VCPUS:
        add(Finding(
            "vcpus-below-validated", "warning",
            f"{proposal.vcpus} vCPUs is below the validated {VALIDATED_VCPUS}.",
            f"Use {min(VALIDATED_VCPUS, node.cores)} vCPUs or more if the host has the cores.",
            EVIDENCE["validated"],
        ))
    if node.cores < VALIDATED_VCPUS:
        add(Finding(
            "host-few-cores", "warning",
            f"The host has only {node.cores} physical cores; the validated size is {VALIDATED_VCPUS}.",
            "Expect a slower activation; use a host with 12+ physical cores for a validated setup.",
            EVIDENCE["validated"],
        ))

    # --- memory: the guest's view (MemTotal) decides; the VM's setting follows from it ---
    vcpus = max(1, proposal.vcpus)
    max_mem = max_safe_memory_gib(node, vcpus, proposal.storage, proposal.disk_gib)
    reserve = host_reserve_gib(node, proposal.memory_gib, vcpus, proposal.storage, proposal.disk_gib)
    guest = guest_gib(proposal.memory_gib)
    allows = f"; this host allows up to {sized(max_mem)}." if max_mem >= MEMORY_MIN_GIB else "."
    if max_mem < MEMORY_MIN_GIB:
        needed = MEMORY_MIN_GIB + host_reserve_gib(node, MEMORY_MIN_GIB, vcpus, proposal.storage, proposal.disk_gib)
        add(Finding(
            "host-memory-too-small", "blocker",
            f"This host cannot host the cluster: {node.mem_total_gib:.1f} GiB of RAM leaves a VM at most "
            f"{sized(max_mem)} after the {reserve:.1f} GiB the host needs; the field run's guest used up to "
            f"{GUEST_MIN_GIB:.1f} GiB.",
            f"Use a host with at least {math.ceil(needed)} GiB of RAM (as Proxmox shows it) for a VM of "
            f"{MEMORY_MIN_GIB} GiB; a 128 GB machine (Proxmox shows ~125.8 GiB) runs the field's 120 GiB VM.",
            EVIDENCE["oom"],
        ))
    if guest < GUEST_MIN_GIB:
        add(Finding(
            "memory-below-minimum", "blocker",
            f"{both(proposal.memory_gib)}: less than the {GUEST_MIN_GIB:.1f} GiB the field run's guest used at "
            "its peak, so the OOM killer would strike.",
            f"Give the VM at least {sized(MEMORY_MIN_GIB)}; the field ran {sized(FIELD_VM_MEMORY_GIB)}" + allows,
            EVIDENCE["oom"],
        ))
    elif guest < GUEST_RECOMMENDED_GIB:
        add(Finding(
            "memory-tight", "warning",
            f"{both(proposal.memory_gib)}: it holds the field run's peak use of {GUEST_MIN_GIB:.1f} GiB "
            f"with {guest - GUEST_MIN_GIB:.1f} GiB to spare.",
            f"The report recommends 128 GB+ as the guest sees it: a VM of {sized(MEMORY_RECOMMENDED_GIB)}"
            + (f"; this host allows up to {sized(max_mem)}." if max_mem < MEMORY_RECOMMENDED_GIB else "."),
            EVIDENCE["tight"],
        ))
    hint = seed_figure_hint(proposal.memory_gib)
    if hint:
        add(Finding("memory-seed-figure", "info", hint,
                    _seed_figure_remedy(vm_gib_for_guest(proposal.memory_gib)),
                    EVIDENCE["seed_figures"]))
    if proposal.memory_gib > max_mem and max_mem >= MEMORY_MIN_GIB:
        add(Finding(
            "memory-over-host-reserve", "blocker",
            f"A VM of {proposal.memory_gib} GiB leaves the host less than the {reserve:.1f} GiB it needs next to it "
            f"({node.mem_total_gib:.1f} GiB in all).",
            f"Use at most {sized(max_mem)} on this host.",
            EVIDENCE["reserve"],
        ))
    elif proposal.memory_gib > max_mem:
        pass  # already explained by host-memory-too-small
    elif proposal.memory_gib > node.mem_available_gib:
        add(Finding(
            "memory-in-use", "warning",
            f"The host has {node.mem_available_gib:.0f} GiB available now ({node.running_vms} VMs running); "
            f"the VM wants {proposal.memory_gib} GiB.",
            "Stop other VMs before starting this one, or pick another node.",
            EVIDENCE["reserve"],
        ))

    # --- disk ---
    if proposal.disk_gib < DISK_MIN_GIB:
        add(Finding(
            "disk-below-minimum", "blocker",
            f"A {proposal.disk_gib} GiB disk is below the {DISK_MIN_GIB} GiB minimum.",
            f"Use {DISK_RECOMMENDED_GIB} GiB ({DISK_MIN_GIB} GiB at least).",
            EVIDENCE["disk"],
        ))
    elif proposal.disk_gib < DISK_RECOMMENDED_GIB:
        add(Finding(
            "disk-small", "warning",
            f"A {proposal.disk_gib} GiB disk is below the recommended {DISK_RECOMMENDED_GIB} GiB.",
            f"Use {DISK_RECOMMENDED_GIB} GiB if the storage has room.",
            EVIDENCE["disk"],
        ))
    storage = node.storage(proposal.storage) if proposal.storage else None
    if proposal.storage and storage is None:
        known = ", ".join(s.storage for s in node.storages if s.holds("images")) or "none"
        add(Finding(
            "storage-missing", "blocker",
            f"Storage '{proposal.storage}' does not exist on node {node.node}.",
            f"Pick one of: {known}.",
            "Users of other installers most often hit \"storage 'local' not found\".",
        ))
    elif storage is not None:
        if not storage.holds("images"):
            add(Finding(
                "storage-no-images", "blocker",
                f"Storage '{storage.storage}' does not hold VM disks (content: {','.join(storage.content)}).",
                "Pick a storage with 'images' content (e.g. local-lvm).",
                "Proxmox places VM disks only on storages with 'images' content.",
            ))
        if storage.avail_gib < proposal.disk_gib:
            add(Finding(
                "storage-too-small", "blocker",
                f"Storage '{storage.storage}' has {storage.avail_gib:.0f} GiB free; the disk needs {proposal.disk_gib} GiB.",
                f"Use a smaller disk (at least {DISK_MIN_GIB} GiB) or another storage.",
                EVIDENCE["disk"],
            ))

    # --- host capabilities ---
    if not node.hvm:
        add(Finding(
            "no-kvm", "blocker",
            f"Node {node.node} offers no hardware virtualization (vmx/svm) to guests.",
            "Enable virtualization (VT-x/AMD-V) in the firmware, or nested virtualization if Proxmox is itself a VM.",
            EVIDENCE["kvm"],
        ))
    version = _pve_version_tuple(node.pve_version)
    if version is not None and version < PVE_IMPORT_VERSION:
        add(Finding(
            "pve-too-old", "blocker",
            f"Proxmox VE {node.pve_version} cannot import an OVA through the API.",
            "Upgrade to Proxmox VE 8.3 or later.",
            EVIDENCE["import"],
        ))

    # --- the settings the plan always applies (deviations are explained) ---
    if proposal.cpu_type != "host":
        add(Finding("cpu-type", "warning", f"CPU type '{proposal.cpu_type}' hides host CPU features.",
                    "Use CPU type 'host' (the plan sets it).", EVIDENCE["cpu_host"]))
    if proposal.sockets != 1:
        add(Finding("sockets", "warning", f"{proposal.sockets} sockets split the vCPUs across virtual NUMA nodes.",
                    "Use 1 socket with N cores (the plan sets it).", EVIDENCE["sockets"]))
    if proposal.balloon:
        add(Finding("balloon", "warning", "Memory ballooning lets the host take RAM back during activation.",
                    "Disable ballooning (balloon: 0; the plan sets it).", EVIDENCE["balloon"]))
    if proposal.scsihw != "virtio-scsi-single" or not proposal.iothread:
        add(Finding("controller", "warning",
                    f"Controller {proposal.scsihw}{'' if proposal.iothread else ' without IO thread'}.",
                    "Use VirtIO SCSI single with iothread=1 (the plan switches to it after the first boot).",
                    EVIDENCE["controller"]))
    if node.sockets <= 1:
        add(Finding("numa", "info", "NUMA stays off: the host has a single socket.",
                    "Nothing to do.", EVIDENCE["numa"]))
    elif proposal.vcpus > node.cores_per_socket:
        layout = topology(node, proposal.vcpus, proposal.memory_gib)
        spanned = f"{proposal.vcpus} vCPUs span {layout.spans} of the host's {node.sockets} sockets " \
                  f"({node.cores_per_socket} cores each)"
        if layout.numa:
            add(Finding("numa", "info",
                        f"{spanned}: the VM gets {layout.sockets} sockets x {layout.cores} cores with NUMA on, "
                        "one NUMA node per socket as on the host.",
                        "Nothing to do; or stay within one socket's cores to keep NUMA off.",
                        EVIDENCE["numa_layout"]))
        else:
            even = proposal.vcpus - proposal.vcpus % layout.spans
            add(Finding("numa", "warning",
                        f"{spanned} but do not split evenly over them (vCPUs and memory): NUMA stays off and "
                        f"the VM gets 1 socket x {proposal.vcpus} cores, one NUMA node over {layout.spans} host "
                        "sockets.",
                        f"Use a multiple of {layout.spans} vCPUs (e.g. {even}) and a memory size that splits "
                        f"over {layout.spans} nodes, to match the host's layout.",
                        EVIDENCE["numa_layout"]))
    layout = topology(node, proposal.vcpus, proposal.memory_gib)
    sockets = f"{layout.sockets} sockets with NUMA" if layout.numa else "1 socket"
    add(Finding("always", "info",
                f"The VM gets cpu 'host', {sockets}, ballooning off, q35, and VirtIO SCSI single with an IO thread.",
                "Nothing to do.", EVIDENCE["controller"]))

    return SizingResult(rec, by_severity(findings), proposal)


def proposal_for(node: NodeFacts, vcpus: int | str, memory_gib: int | str, disk_gib: int | str,
                 storage: str | None = None) -> Proposal:
    """A proposal from answers values, 'auto' taking the recommendation."""
    rec = recommend(node, storage)
    return Proposal(
        vcpus=rec.vcpus if vcpus == "auto" else int(vcpus),
        memory_gib=rec.memory_gib if memory_gib == "auto" else int(memory_gib),
        disk_gib=rec.disk_gib if disk_gib == "auto" else int(disk_gib),
        storage=storage or rec.storage,
    )


def pick_node(inventory: HostInventory) -> NodeFacts | None:
    """The best node for the cluster: online, feasible, most physical cores, then most free RAM."""
    online = [n for n in inventory.nodes if n.online]
    if not online:
        return None

    def score(node: NodeFacts) -> tuple:
        rec = recommend(node)
        return (rec.feasible, min(node.cores, MAX_RECOMMENDED_VCPUS), node.mem_available, node.cores)

    return max(online, key=score)


def gib(value_bytes: int) -> float:
    return value_bytes / GIB
