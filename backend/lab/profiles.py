"""The lab's Proxmox hosts, each described by a recording (backend/recording.py): one way to describe a host.

The built-in hosts are recordings shipped with the lab (backend/lab/hosts/*.json, written by
`vast-loopback probe` against the lab itself): `seed` is the field report's host: Proxmox VE 9.1 on
an AMD Ryzen Threadripper 2920X (1 socket, 12 cores, 24 threads), 128 GiB of RAM (the OS sees about
125.8 GiB), NVMe storage `local-lvm`, and `local` with content `import` holding the OVA. `small`
cannot host the cluster; `big` is a three-node cluster of dual-socket machines.

Any other recording is a host too: `lab: {host_profile: file:/PATH}` or `vast-loopback lab
--host-profile PATH` (`load_profile`). What the lab takes from it: each node's CPU (model, sockets,
cores, threads, MHz, flags), memory (total, and what the host itself uses), kernel, PVE version, its
storages (type, content, size, free space, shared), its bridges, the SDN VNet (when the recording has
one, the lab's own VNet stands in for it), where the OVA is and the VMs already there (`vms`, as
recorded: `big`'s nodes run VMs of other people, which count on their node). What the lab keeps its own: the addresses (the nodes are .10, .11... of the lab's LAN), the
OVA's file and import-metadata (its `lab.ova` variant), and its certificate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from backend.lab import facts
from backend.model import recording as rec

GIB = 1024**3
MIB = 1024**2
KIB = 1024

HOSTS_DIR = Path(__file__).with_name("hosts")  # the built-in recordings (package data)
BUILT_IN = ("seed", "small", "big")
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
    active: bool = True



@dataclass(frozen=True)
class NodeProfile:
    node: str
    cpu_model: str
    sockets: int
    cores: int  # physical cores over all sockets, as Proxmox's cpuinfo.cores counts them
    threads: int  # logical CPUs (cpuinfo.cpus)
    mhz: str
    mem_total: int  # bytes
    mem_used: int  # bytes in use by the host itself
    storages: tuple[StorageProfile, ...]
    bridges: tuple[str, ...] = ("vmbr0",)
    kernel: str = "6.17.2-1-pve"
    ova_storage: str | None = "local"  # where the OVA is present
    flags: str = ""
    vendor: str = ""  # cpuinfo.vendor; "" derives it from the model
    boot_mode: str = "efi"
    vms: tuple[rec.VmRecord, ...] = ()  # VMs already there (someone else's) when the lab starts


@dataclass(frozen=True)
class HostProfile:
    name: str
    pve_version: str  # "9.1.3"
    repoid: str
    nodes: tuple[NodeProfile, ...]
    cluster_name: str = ""
    notes: str = ""
    summary: str = ""  # a few words naming it in the target's description (backend.lab.provider)
    extra: dict = field(default_factory=dict)
    sdn_vnet: bool = False  # the cluster also has the SDN VNet of backend.lab.facts (IPAM + DHCP)
    vms: tuple[rec.VmRecord, ...] = ()  # the VMs already there, as recorded


def from_recording(recording: rec.HostRecording) -> HostProfile:
    """The lab host a recording describes (its online nodes; see the module's docstring)."""
    ova = recording.ova
    ova_storage = ova.volid.split(":", 1)[0] if ova is not None else None
    nodes = []
    for node in recording.nodes:
        if not node.online or node.cpu is None or node.memory is None:
            continue
        vms = tuple(vm for vm in recording.vms if vm.node == node.node)
        # the recorded memory in use includes the running VMs', which the lab adds back (pve/host.py)
        running = sum(vm.memory_mib * MIB for vm in vms if vm.status == "running")
        nodes.append(NodeProfile(
            node=node.node, cpu_model=node.cpu.model, sockets=node.cpu.sockets, cores=node.cpu.cores,
            threads=node.cpu.threads, mhz=node.cpu.mhz, mem_total=node.memory.total,
            mem_used=max(0, node.memory.used - running), vms=vms,
            storages=tuple(StorageProfile(storage=s.storage, type=s.type, content=s.content, total=s.total,
                                          used=max(0, s.total - s.avail), shared=s.shared, active=s.active)
                           for s in node.storages),
            bridges=tuple(b.name for b in node.bridges if b.kind != "vnet"),
            kernel=node.kernel or NodeProfile.kernel,
            ova_storage=ova_storage if ova is not None and node.node in ova.nodes else None,
            flags=node.cpu.flags, vendor=node.cpu.vendor, boot_mode=node.boot_mode or "efi",
        ))
    if not nodes:
        raise rec.RecordingError(f"recording '{recording.name}': no online node to serve")
    return HostProfile(
        name=recording.name, pve_version=recording.pve_version, repoid=recording.repoid, nodes=tuple(nodes),
        cluster_name=recording.cluster_name, notes=recording.notes,
        sdn_vnet=any(b.kind == "vnet" for n in recording.nodes for b in n.bridges), vms=recording.vms)


def load_profile(spec: str) -> HostProfile:
    """A built-in host by name, or a recording: `file:PATH` or a path (RecordingError when unusable)."""
    if spec in BUILT_IN:
        return PROFILES[spec]
    path = spec[len("file:"):] if spec.startswith("file:") else spec
    if not path or (not spec.startswith("file:") and "/" not in path and not path.endswith(".json")):
        raise rec.RecordingError(f"unknown host profile '{spec}' (known: {', '.join(BUILT_IN)}, or file:PATH "
                                 "of a recording made by `vast-loopback probe --record`)")
    recording = rec.load(path, kind="host")
    assert isinstance(recording, rec.HostRecording)
    return dataclasses.replace(from_recording(recording), summary=f"the host recorded in {path}")


def _built_in(name: str) -> HostProfile:
    recording = rec.load(HOSTS_DIR / f"{name}.json", kind="host")
    assert isinstance(recording, rec.HostRecording)
    return from_recording(recording)


# A few words naming each built-in host in the target's description (backend.lab.provider).
SUMMARIES = {"seed": "the field report's Threadripper", "small": "8 cores, 64 GB: too small for the cluster",
             "big": "three nodes of 2 x 16 cores, 512 GB"}
PROFILES = {name: dataclasses.replace(_built_in(name), summary=SUMMARIES[name]) for name in BUILT_IN}
# What the Connect screen says of each (backend/target.py ProviderInfo).
PROFILE_DESCRIPTIONS = {
    "seed": "seed: the field report's host (12 cores / 24 threads, 128 GB)",
    "small": "small: 8 cores / 16 threads, 64 GB (cannot host it)",
    "big": "big: 3 nodes of 2 × 16 cores, 512 GB",
}
