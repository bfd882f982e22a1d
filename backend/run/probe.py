"""`vast-loopback probe`: a Proxmox host, or a run's guest, recorded read-only (backend/recording.py).

The host through the product's own Proxmox client (GET requests only: nothing on the host changes):
the version, every node's status (cpuinfo, memory, kernel, PVE version), its storages, its bridges
and SDN VNets with their zones' IPAM and DHCP, the VMs already there (sizing and state, never their
configuration) and the OVA the answers name (where it is, and its import-metadata).

The guest over the run's SSH (its pinned host key, its answers' credentials), read-only too: kernel
release, the storage drivers the running kernel has loaded, those it has as modules (modules.dep,
and `modinfo` of the drivers of the disk controllers vast-loopback boots from, which answers where
modules.dep cannot be read) and those in its initramfs (`lsinitrd`), the disk layout (`lsblk -J`), MemTotal against the VM's `memory`, `free -b`, /etc/os-release and the
NIC names.

Nothing secret is read, so nothing secret is written: no token, password, key or certificate.
`anonymise` replaces the names of VMs, nodes and the cluster with placeholders.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import shlex
from collections.abc import Callable

from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient
from backend.clients.proxmox import ProxmoxApiError, ProxmoxClient, VmRef, parse_node_facts, parse_storages
from backend.errors import BadInput, RunFailed
from backend.model import vmconfig
from backend.model.answers import Answers
from backend.model.recording import (
    BridgeRecord,
    CpuRecord,
    DiskRecord,
    GuestRecording,
    HostRecording,
    MemoryRecord,
    NodeRecord,
    OvaRecord,
    StorageRecord,
    VmRecord,
)
from backend.run.engine import RunContext
from backend.steps.tuning import VIRTIO_DRIVERS
from backend.target import Target

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
MIB = 1024**2

# Where a kernel's storage drivers (and the filesystems the root may be on) live under
# /lib/modules/<release>/kernel: what decides whether a disk controller can be booted from.
STORAGE_MODULE_DIRS = ("/drivers/scsi/", "/drivers/ata/", "/drivers/block/", "/drivers/nvme/",
                       "/drivers/virtio/", "/drivers/message/", "/drivers/cdrom/", "/drivers/md/", "/fs/")
# The drivers whose presence decides which controller the guest can boot from: asked of `modinfo`
# by name, so a kernel whose modules.dep cannot be read still tells which of them it has.
CONTROLLER_DRIVERS = tuple(sorted({c.module for c in vmconfig.CONTROLLERS.values()} | set(VIRTIO_DRIVERS)
                                  | set(vmconfig.EL8_UNBOOTABLE.values())))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _quiet(_: str) -> None:
    pass


# --- the host ------------------------------------------------------------------------------------


async def record_host(answers: Answers, target: Target, *, anonymise: bool = False,
                      progress: Progress = _quiet) -> HostRecording:
    """Record the host (or cluster) the target reaches; read-only."""
    client = await ProxmoxClient.connect(target)
    try:
        version = dict(await client.get("version", op="read the Proxmox version") or {})
        cluster = await client.cluster_name()
        nodes = []
        for row in sorted(await client.nodes(), key=lambda r: str(r.get("node", ""))):
            name = str(row.get("node", ""))
            progress(f"reading node {name}")
            nodes.append(await _node(client, name) if row.get("status") == "online"
                         else NodeRecord(node=name, online=False))
        progress("listing the VMs already there")
        vms = tuple(_vm(row) for row in sorted(await client.vms(), key=lambda r: int(r.get("vmid", 0))))
        progress(f"looking for the OVA {answers.ova}")
        ova = await _ova(client, answers.ova, [n.node for n in nodes if n.online])
    finally:
        await client.close()
    recording = HostRecording(
        name=cluster or (nodes[0].node if nodes else "host"), pve_version=str(version.get("version", "")),
        repoid=str(version.get("repoid", "")), cluster_name=cluster, nodes=tuple(nodes), vms=vms, ova=ova,
        recorded_at=_now())
    return anonymised(recording) if anonymise else recording


async def _node(client: ProxmoxClient, name: str) -> NodeRecord:
    try:
        status = dict(await client.get("nodes", name, "status", op=f"read node {name}'s status") or {})
        storages = list(await client.get("nodes", name, "storage", op=f"list node {name}'s storages") or [])
        network = list(await client.get("nodes", name, "network", op=f"list node {name}'s bridges and VNets",
                                        type="any_bridge") or [])
    except ProxmoxApiError as exc:  # listed online, but its daemon does not answer (595/596)
        if exc.status < 500:
            raise
        return NodeRecord(node=name, online=False)
    zones, vnets = await client.sdn() if any(r.get("type") == "vnet" for r in network) else ([], [])
    facts = parse_node_facts(name, status, storages, network, 0, zones, vnets)
    cpuinfo = status.get("cpuinfo") or {}
    memory = status.get("memory") or {}
    kernel = str((status.get("current-kernel") or {}).get("release") or "")
    if not kernel:  # before PVE 8: only `kversion`, "Linux 6.5.13-1-pve #1 SMP ..."
        kernel = (str(status.get("kversion", "")).split()[1:2] or [""])[0]
    used = {str(r.get("storage")): int(r.get("used") or 0) for r in storages}
    return NodeRecord(
        node=name, online=True,
        cpu=CpuRecord(model=facts.cpu_model, sockets=facts.sockets, cores=facts.cores, threads=facts.threads,
                      mhz=str(cpuinfo.get("mhz", "")), vendor=str(cpuinfo.get("vendor", "")),
                      flags=str(cpuinfo.get("flags", "")), hvm=facts.hvm),
        memory=MemoryRecord(total=facts.mem_total, used=facts.mem_used, free=int(memory.get("free") or 0),
                            available=int(memory.get("available") or 0)),
        kernel=kernel,
        pveversion=str(status.get("pveversion", "")),
        boot_mode=str((status.get("boot-info") or {}).get("mode", "")),
        storages=tuple(StorageRecord(storage=s.storage, type=s.type, content=s.content, total=s.total,
                                     used=used.get(s.storage, max(0, s.total - s.avail)), avail=s.avail,
                                     shared=s.shared, active=s.active) for s in parse_storages(storages)),
        bridges=tuple(BridgeRecord(name=b.name, kind=b.kind, cidr=b.cidr, zone=b.zone, ipam=b.ipam, dhcp=b.dhcp)
                      for b in facts.networks),
    )


def _tags(value: object) -> tuple[str, ...]:
    return tuple(t for t in re.split(r"[;, ]+", str(value or "")) if t)


def _vm(row: dict) -> VmRecord:
    return VmRecord(vmid=int(row.get("vmid", 0)), node=str(row.get("node", "")), name=str(row.get("name", "")),
                    cores=int(row.get("maxcpu") or 0), memory_mib=int(row.get("maxmem") or 0) // MIB,
                    status=str(row.get("status", "")), tags=_tags(row.get("tags")))


async def _ova(client: ProxmoxClient, volid: str, nodes: list[str]) -> OvaRecord:
    storage = volid.split(":", 1)[0]
    found: list[str] = []
    size = 0
    for node in nodes:
        try:
            rows = await client.storage_content(node, storage, "import")
        except ProxmoxApiError as exc:  # no such storage on this node, or not readable there
            log.info("storage %s on %s not listed: %s", storage, node, exc.message)
            continue
        row = next((r for r in rows if r.get("volid") == volid), None)
        if row is not None:
            found.append(node)
            size = size or int(row.get("size") or 0)
    metadata: dict = {}
    if found:
        try:
            metadata = await client.ova_metadata(found[0], volid)
        except ProxmoxApiError as exc:
            log.info("import-metadata of %s not readable: %s", volid, exc.message)
    return OvaRecord(volid=volid, nodes=tuple(found), size=size, metadata=metadata)


def anonymised(recording: HostRecording) -> HostRecording:
    """The same recording with placeholders for the names of VMs, nodes and the cluster."""
    import dataclasses

    node_names = {n.node: f"node{i}" for i, n in enumerate(recording.nodes, 1)}
    for vm in recording.vms:
        node_names.setdefault(vm.node, f"node{len(node_names) + 1}")

    def rename(node: str) -> str:
        return node_names.get(node, node)

    ova = recording.ova
    if ova is not None:
        ova = dataclasses.replace(ova, nodes=tuple(rename(n) for n in ova.nodes))
    return dataclasses.replace(
        recording, name="host", cluster_name="cluster" if recording.cluster_name else "", anonymised=True,
        nodes=tuple(dataclasses.replace(n, node=rename(n.node)) for n in recording.nodes),
        vms=tuple(dataclasses.replace(vm, name=f"vm-{i}", node=rename(vm.node))
                  for i, vm in enumerate(recording.vms, 1)),
        ova=ova)


# --- the guest -----------------------------------------------------------------------------------


async def vm_memory_mib(client: ProxmoxClient, vm: VmRef) -> int:
    """The VM's `memory` (MiB) from its configuration (Proxmox's default 512 when unset)."""
    config = await client.vm_config(vm)
    return int(str(config.get("memory", "512")).split(",")[0].split("=")[-1] or 512)


async def record_guest(guest: GuestClient, *, vm_memory: int = 0, vmid: int = 0,
                       progress: Progress = _quiet) -> GuestRecording:
    """Record the guest's facts over SSH; read-only (lsinitrd reads the initramfs with sudo)."""

    async def out(command: str, *, sudo: bool = False) -> str:
        return (await guest.run(command, sudo=sudo)).stdout

    progress("reading the kernel and its storage drivers")
    release = (await out(sh("uname", "-r"))).strip()
    loaded = [line.split()[0] for line in (await out(sh("lsmod"))).splitlines()[1:] if line.split()]
    paths = await out(sh("modinfo", "-n", *loaded)) if loaded else ""
    running = sorted({_module_name(p) for p in paths.split() if _storage_path(p)})
    builtin_file = f"/lib/modules/{release}/modules.builtin"
    builtin = sorted({_module_name(p) for p in (await out(sh("cat", builtin_file) + " 2>/dev/null")).split()
                      if _storage_path(p)})
    found = await out(sh("cat", f"/lib/modules/{release}/modules.dep") + " 2>/dev/null; "
                      + sh("modinfo", "-n", *CONTROLLER_DRIVERS) + " 2>/dev/null")
    modules = sorted({_module_name(p.rstrip(":")) for p in found.split() if ".ko" in p and _storage_path(p)})
    progress("reading the initramfs (lsinitrd)")
    listing = await out(sh("lsinitrd", f"/boot/initramfs-{release}.img"), sudo=True)
    initramfs = sorted({_module_name(p) for p in re.findall(r"\S+\.ko(?:\.xz|\.gz|\.zst)?\b", listing)
                        if _storage_path(p)})
    progress("reading the disks, memory, OS release and NICs")
    disks = _disks(await out(sh("lsblk", "-J", "-b", "-o", "NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT")))
    meminfo = await out(sh("cat", "/proc/meminfo"))
    mem_total = int(next((line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0))
    free = _free(await out(sh("free", "-b")))
    os_release = _os_release(await out(sh("cat", "/etc/os-release")))
    nics = sorted(n for n in (await out(sh("ls", "-1", "/sys/class/net"))).split() if n != "lo")
    return GuestRecording(kernel_release=release, os_release=os_release, kernel_storage_modules=tuple(running),
                          kernel_builtin_modules=tuple(builtin), kernel_modules=tuple(modules),
                          initramfs_modules=tuple(initramfs),
                          disks=disks, mem_total_kib=mem_total, vm_memory_mib=vm_memory, free_bytes=free,
                          nics=tuple(nics), vmid=vmid, recorded_at=_now())


def _storage_path(path: str) -> bool:
    return any(part in f"/{path}" for part in STORAGE_MODULE_DIRS)


def _module_name(path: str) -> str:
    """'kernel/drivers/scsi/vmw_pvscsi.ko.xz' -> 'vmw_pvscsi' (dashes as the kernel lists them: _)."""
    return path.rsplit("/", 1)[-1].split(".ko", 1)[0].replace("-", "_")


def _disks(text: str) -> tuple[DiskRecord, ...]:
    """`lsblk -J -b` (util-linux 2.32 gives every value as a string, later ones numbers and null)."""
    try:
        devices = json.loads(text or "{}").get("blockdevices") or []
    except (json.JSONDecodeError, AttributeError):
        return ()

    def disk(row: dict) -> DiskRecord:
        return DiskRecord(name=str(row.get("name", "")), type=str(row.get("type", "")),
                          size=int(row.get("size") or 0), fstype=str(row.get("fstype") or ""),
                          mountpoint=str(row.get("mountpoint") or ""),
                          children=tuple(disk(c) for c in row.get("children") or ()))

    return tuple(disk(row) for row in devices if isinstance(row, dict))


def _free(text: str) -> dict:
    lines = text.splitlines()
    header = lines[0].split() if lines else []
    row = next((line.split()[1:] for line in lines if line.startswith("Mem:")), [])
    return {name: int(value) for name, value in zip(header, row, strict=False) if value.isdigit()}


def _os_release(text: str) -> dict:
    release = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            try:
                release[key.strip()] = " ".join(shlex.split(value))
            except ValueError:
                release[key.strip()] = value.strip().strip('"')
    return release


async def record_run_guest(ctx: RunContext, progress: Progress = _quiet) -> GuestRecording:
    """The guest of a run, reached as the run reaches it: its VM and address from the run's finished
    steps (`ctx.facts`), SSH pinned to the host key the run accepted, the answers' credentials."""
    from backend.steps.prepare import guest_client
    from backend.steps.provision import proxmox_client

    missing = [key for key in ("vmid", "node", "guest_address") if getattr(ctx.facts, key) in (None, "")]
    if missing:
        raise BadInput(f"{ctx.run.path}: the run has no guest to probe yet ({', '.join(missing)} not known: its "
                       "first boot has not finished)", hint="probe the host instead: vast-loopback probe ANSWERS")
    vm = VmRef(node=str(ctx.facts.node), vmid=int(ctx.facts.vmid or 0), name=ctx.answers.vm.name)
    client = await proxmox_client(ctx)
    memory = await vm_memory_mib(client, vm)
    if (await client.status(vm)).get("status") != "running":
        raise RunFailed(f"VM {vm.vmid} is not running: its guest cannot be probed",
                        hint="start it (or resume the run), then probe again")
    progress(f"connecting to the guest of VM {vm.vmid} over SSH")
    guest = await guest_client(ctx)
    return await record_guest(guest, vm_memory=memory, vmid=vm.vmid, progress=progress)
