"""Facts about a Proxmox host that sizing and placement need, independent of how they were read.

`cores` are physical cores summed over all sockets (Proxmox's `cpuinfo.cores`); `threads` are
logical CPUs (`cpuinfo.cpus`). Hyperthreads never count as cores. Available memory is
`total - used`, which is right on PVE 8.4+ (where `free` changed meaning); see
../shared/research/proxmox-api.md section 7.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field

GIB = 1024**3


@dataclass(frozen=True)
class StorageFacts:
    storage: str
    type: str
    content: tuple[str, ...]
    total: int  # bytes
    avail: int  # bytes
    shared: bool = False
    active: bool = True

    @property
    def avail_gib(self) -> float:
        return self.avail / GIB

    def holds(self, content: str) -> bool:
        return content in self.content

    def to_dict(self) -> dict:
        data = asdict(self)
        data["content"] = list(self.content)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StorageFacts:
        return cls(**{**data, "content": tuple(data.get("content", ()))})


@dataclass(frozen=True)
class BridgeFacts:
    """A bridge a VM's NIC can go on, as `GET /nodes/{node}/network?type=any_bridge` lists it: a
    Linux or OVS bridge (with the node's own address on it, when it has one), or an SDN VNet (with
    its zone's IPAM and DHCP, from `/cluster/sdn/zones`)."""

    name: str
    kind: str  # "bridge" | "OVSBridge" | "vnet"
    cidr: str = ""  # the node's address on it, "192.168.30.10/24"; "" when it has none (or a VNet)
    zone: str = ""  # VNets: their SDN zone
    ipam: str = ""  # VNets: the zone's IPAM ("pve"), "" without one (or unknown)
    dhcp: str = ""  # VNets: the zone's DHCP backend ("dnsmasq"), "" without one (or unknown)

    @property
    def subnet(self) -> str:
        """The bridge's subnet ("192.168.30.0/24"), "" when the node has no address on it."""
        if not self.cidr:
            return ""
        return str(ipaddress.IPv4Interface(self.cidr).network)

    @property
    def ipam_leases(self) -> bool:
        """Whether Proxmox hands out and records its NICs' addresses (a VNet whose zone has the pve
        IPAM and DHCP: the only case with a lease the API can show)."""
        return self.kind == "vnet" and self.ipam == "pve" and bool(self.dhcp)


@dataclass(frozen=True)
class NodeFacts:
    node: str
    online: bool
    cpu_model: str
    sockets: int
    cores: int  # physical cores, all sockets
    threads: int  # logical CPUs
    mem_total: int  # bytes
    mem_used: int  # bytes
    hvm: bool  # vmx/svm offered to guests
    pve_version: str = ""
    storages: tuple[StorageFacts, ...] = field(default_factory=tuple)
    bridges: tuple[str, ...] = field(default_factory=tuple)  # names of `networks`
    running_vms: int = 0
    networks: tuple[BridgeFacts, ...] = field(default_factory=tuple)

    @property
    def mem_total_gib(self) -> float:
        return self.mem_total / GIB

    @property
    def mem_available(self) -> int:
        return max(0, self.mem_total - self.mem_used)

    @property
    def mem_available_gib(self) -> float:
        return self.mem_available / GIB

    @property
    def smt(self) -> bool:
        return self.threads > self.cores

    @property
    def cores_per_socket(self) -> int:
        return max(1, self.cores // max(1, self.sockets))

    def storage(self, name: str) -> StorageFacts | None:
        return next((s for s in self.storages if s.storage == name), None)

    def network(self, name: str) -> BridgeFacts | None:
        return next((n for n in self.networks if n.name == name), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["storages"] = [s.to_dict() for s in self.storages]
        data["bridges"] = list(self.bridges)
        data["networks"] = [asdict(n) for n in self.networks]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NodeFacts:
        return cls(
            **{
                **data,
                "storages": tuple(StorageFacts.from_dict(s) for s in data.get("storages", ())),
                "bridges": tuple(data.get("bridges", ())),
                "networks": tuple(BridgeFacts(**n) for n in data.get("networks", ())),
            }
        )


@dataclass(frozen=True)
class HostInventory:
    """What the Connect screen shows and the Host screen chooses from."""

    pve_version: str
    nodes: tuple[NodeFacts, ...]
    fingerprint: str = ""  # SHA-256 of the API's TLS certificate
    cluster_name: str = ""

    def node(self, name: str) -> NodeFacts | None:
        return next((n for n in self.nodes if n.node == name), None)

    def to_dict(self) -> dict:
        return {
            "pve_version": self.pve_version,
            "fingerprint": self.fingerprint,
            "cluster_name": self.cluster_name,
            "nodes": [n.to_dict() for n in self.nodes],
        }
