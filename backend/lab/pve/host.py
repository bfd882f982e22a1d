"""What a lab node reports about itself: status, storages, network, cluster entries.

Shapes follow the Proxmox source, not only the schema (pve-manager API2/Nodes.pm, API2/Cluster.pm,
pve-storage API2/Storage/Status.pm, pve-common ProcFSTools.pm read_cpuinfo / read_meminfo):

- `cpuinfo.cpus` counts logical threads, `cpuinfo.cores` the physical cores summed over *all*
  sockets, `sockets` the distinct physical ids; `mhz`, `family` are strings; `flags`/`hvm` are
  there although the schema does not list them.
- memory: since PVE 8.4 `used` = MemTotal - MemAvailable and `free` = raw MemFree (so free + used
  is not total); PVE 9 adds `available`. A client that reads `free` as "available" sees far less
  than there is, exactly as on a real host.
"""

from __future__ import annotations

from backend.lab import facts
from backend.lab.profiles import GIB, HostProfile, NodeProfile, StorageProfile


def major(version: str) -> int:
    return int(version.split(".")[0])


def node_ip(profile: HostProfile, node: NodeProfile) -> str:
    return f"{facts.LAN_PREFIX}.{facts.HOST_ADDRESS_FIRST + profile.nodes.index(node)}"


def cpuinfo(node: NodeProfile) -> dict:
    vendor = node.vendor or ("AuthenticAMD" if "AMD" in node.cpu_model else "GenuineIntel")
    flags = node.flags
    return {
        "user_hz": 100,
        "vendor": vendor,
        "family": "23" if vendor == "AuthenticAMD" else "6",
        "model": node.cpu_model,
        "mhz": node.mhz,
        "cpus": node.threads,
        "sockets": node.sockets,
        "cores": node.cores,
        "flags": flags,
        "hvm": 1 if (" vmx " in f" {flags} " or " svm " in f" {flags} ") else 0,
    }


def meminfo(node: NodeProfile, vm_bytes: int) -> tuple[int, int, int]:
    """(MemTotal, MemAvailable, MemFree) in bytes, with running VMs' memory in use."""
    total = node.mem_total
    available = max(0, total - node.mem_used - vm_bytes)
    cached = int(min(8 * GIB, available * 0.4))
    return total, available, max(0, available - cached)


def memory_block(profile: HostProfile, node: NodeProfile, vm_bytes: int) -> dict:
    total, available, free = meminfo(node, vm_bytes)
    block = {"total": total, "used": total - available, "free": free}
    if major(profile.pve_version) >= 9:
        block["available"] = available
    return block


def kernel_version(node: NodeProfile) -> str:
    return f"#1 SMP PREEMPT_DYNAMIC PMX {node.kernel.replace('-pve', '')} (2025-10-21T11:55Z)"


def node_status(profile: HostProfile, node: NodeProfile, *, uptime: int, vm_bytes: int, busy_threads: float,
                storages: list[dict]) -> dict:
    root = next((s for s in storages if s["storage"] == "local"), None)
    load = round(min(busy_threads, node.threads * 2), 2)
    cpu = round(min(1.0, 0.004 + busy_threads / node.threads), 6)
    return {
        "uptime": uptime,
        "idle": 0,
        "loadavg": [f"{load:.2f}", f"{load * 0.9:.2f}", f"{load * 0.7:.2f}"],
        "kversion": f"Linux {node.kernel} {kernel_version(node)}",
        "current-kernel": {"sysname": "Linux", "release": node.kernel, "version": kernel_version(node),
                           "machine": "x86_64"},
        "boot-info": {"mode": node.boot_mode, "secureboot": 0},
        "cpuinfo": cpuinfo(node),
        "cpu": cpu,
        "wait": 0.0008,
        "memory": memory_block(profile, node, vm_bytes),
        "ksm": {"shared": 0},
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "pveversion": f"pve-manager/{profile.pve_version}/{profile.repoid}",
        "rootfs": {
            "total": root["total"] if root else 100 * GIB,
            "used": root["used"] if root else 10 * GIB,
            "avail": root["avail"] if root else 90 * GIB,
            "free": root["avail"] if root else 90 * GIB,
        },
    }


def storage_entry(profile: HostProfile, storage: StorageProfile, content: tuple[str, ...], extra_used: int) -> dict:
    used = storage.used + extra_used
    avail = max(0, storage.total - used)
    entry = {
        "storage": storage.storage,
        "type": storage.type,
        "content": ",".join(sorted(content)),
        "active": 1 if storage.active else 0,
        "enabled": 1,
        "shared": 1 if storage.shared else 0,
        "total": storage.total,
        "used": used,
        "avail": avail,
    }
    if major(profile.pve_version) >= 8:
        entry["used_fraction"] = round(used / storage.total, 6) if storage.total else 0
    return entry


def bridge_names(profile: HostProfile, node: NodeProfile) -> tuple[str, ...]:
    """What a NIC can be put on: the node's bridges and, with SDN, its VNet."""
    return (*node.bridges, *((facts.SDN_VNET,) if profile.sdn_vnet else ()))


def vnet_entry() -> dict:
    """The lab's VNet as `type=any_bridge` lists it (facts.VNETS_IN_ANY_BRIDGE)."""
    return {"iface": facts.SDN_VNET, "type": "vnet", "active": "1", "ipam": 1, "vlanaware": 0, "comments": None}


def network(profile: HostProfile, node: NodeProfile, kind: str | None) -> list[dict]:
    """GET /nodes/{node}/network, filtered by `type` as facts.VNETS_IN_ANY_BRIDGE says."""
    ip = node_ip(profile, node)
    entries = [{
        "iface": "enp5s0", "type": "eth", "method": "manual", "families": ["inet"], "active": 1,
        "exists": 1, "priority": 3,
    }]
    for index, bridge in enumerate(node.bridges):
        entry = {
            "iface": bridge, "type": "bridge", "method": "static" if index == 0 else "manual",
            "families": ["inet"], "active": 1, "autostart": 1, "bridge_ports": "enp5s0" if index == 0 else "",
            "bridge_stp": "off", "bridge_fd": "0", "priority": 4 + index,
        }
        if bridge == facts.LAN_BRIDGE:
            entry.update({"cidr": f"{ip}/{facts.LAN_PREFIXLEN}", "address": ip, "netmask": str(facts.LAN_PREFIXLEN),
                          "gateway": facts.LAN_GATEWAY})
        entries.append(entry)
    vnets = [vnet_entry()] if profile.sdn_vnet else []
    if kind == "include_sdn":
        return entries + vnets
    if kind == "vnet":
        return vnets
    if kind in ("any_bridge", "any_local_bridge"):
        bridges = [e for e in entries if e["type"] in ("bridge", "OVSBridge")]
        return bridges + vnets if kind == "any_bridge" else bridges
    if kind:
        return [e for e in entries if e["type"] == kind]
    return entries
