"""Placing N identical loopback VMs (a class's members) on the nodes of a Proxmox VE cluster.

Pure functions over facts read from the cluster (backend/fleet.py reads them). A node takes a member
only when, with the members placed there before it:
- the vCPUs of its running VMs and of our members stay within its physical cores (no overcommit:
  the field's P653 PANIC, sizing.EVIDENCE["overcommit"]);
- memory fits: the node's total minus what the host itself uses (at least sizing.PVE_HOST_GIB),
  minus the memory its running VMs may take (their `maxmem`: a running VM can grow to it), minus
  each member's memory and QEMU overhead (sizing.host_reserve_gib's per-VM part);
- the VM storage is on the node, holds images and has room for the disk (a shared storage's room
  is shared by every node's members);
- the OVA is reachable from the node, and sizing has no blocker for the VM on it.
Members are spread before they are stacked: each goes to the node with the fewest members so far
(then the most free cores, then the most free memory).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from backend.model import sizing
from backend.model.hostfacts import GIB, NodeFacts

LIMITS = ("cores", "memory", "storage", "ova", "sizing")


@dataclass(frozen=True)
class Member:
    """One member's VM: its size, wherever it lands."""

    vcpus: int
    memory_gib: int
    disk_gib: int
    storage: str


@dataclass(frozen=True)
class NodeLoad:
    """A node as placement sees it: its facts and what already runs on it."""

    facts: NodeFacts
    running_vcpus: int = 0  # vCPUs of the VMs running there (not ours)
    running_maxmem: int = 0  # bytes their memory may grow to
    running_mem: int = 0  # bytes they use now (part of facts.mem_used)
    ova_missing: str = ""  # why the OVA cannot be imported on this node ("" when it can)
    blocker: str = ""  # a sizing blocker of the member's VM on this node ("" when none)

    @property
    def node(self) -> str:
        return self.facts.node

    @property
    def own_gib(self) -> float:
        """What the host keeps for itself: its use beyond the running VMs', at least Proxmox's minimum."""
        return max(sizing.PVE_HOST_GIB, (self.facts.mem_used - self.running_mem) / GIB)

    @property
    def free_gib(self) -> float:
        """Memory left for new VMs: the total, minus the host's own, minus the running VMs' maximum."""
        return max(0.0, self.facts.mem_total_gib - self.own_gib - self.running_maxmem / GIB)


def member_gib(node: NodeFacts, member: Member) -> float:
    """What one member takes of a node's memory: its own and its QEMU overhead (and ZFS/Ceph caches)."""
    return (member.memory_gib + sizing.host_reserve_gib(node, member.memory_gib, member.vcpus, member.storage,
                                                        member.disk_gib) - sizing.PVE_HOST_GIB)


@dataclass
class NodeUse:
    """One node's row of the plan."""

    node: str
    members: int
    vcpus_used: int  # running VMs + our members
    cores: int
    memory_used_gib: float  # the host's own + running VMs' maximum + our members
    memory_total_gib: float
    memory_available_gib: float  # what is left after our members

    def to_dict(self) -> dict:
        return {**asdict(self), "memory_used_gib": round(self.memory_used_gib, 1),
                "memory_total_gib": round(self.memory_total_gib, 1),
                "memory_available_gib": round(self.memory_available_gib, 1)}


@dataclass
class Placement:
    count: int
    member: Member
    nodes_of: list[str] = field(default_factory=list)  # the node of member 1, 2, ... (those that fit)
    use: list[NodeUse] = field(default_factory=list)
    refusals: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # node -> [(limit, why)]

    @property
    def fits(self) -> int:
        return len(self.nodes_of)

    @property
    def ok(self) -> bool:
        return self.fits >= self.count

    @property
    def limits(self) -> list[str]:
        """What kept the next member off every node, most common first."""
        seen: dict[str, int] = {}
        for reasons in self.refusals.values():
            for limit, _ in reasons:
                seen[limit] = seen.get(limit, 0) + 1
        return sorted(seen, key=lambda k: (-seen[k], LIMITS.index(k)))

    def summary(self) -> str:
        if self.ok:
            spread = ", ".join(f"{u.members} on {u.node}" for u in self.use if u.members)
            return f"{self.count} member(s) fit: {spread}"
        why = "; ".join(f"{node}: " + ", ".join(w for _, w in reasons) for node, reasons in self.refusals.items())
        limits = self.limits
        named = (f"{limits[0]} are the limit" if limits == ["cores"] else
                 f"{' and '.join(limits)} limit it") if limits else "no node is online"
        return f"only {self.fits} of {self.count} fit ({named}): member {self.fits + 1} fits on no node: {why}"


def _refusals(load: NodeLoad, member: Member, vcpus: int, memory_gib: float,
              storage_used: float, storage_avail: float | None) -> list[tuple[str, str]]:
    reasons = []
    if load.ova_missing:
        reasons.append(("ova", load.ova_missing))
    if load.blocker:
        reasons.append(("sizing", load.blocker))
    cores = load.facts.cores
    if vcpus + member.vcpus > cores:
        reasons.append(("cores", f"cores: {vcpus} of {cores} in use ({load.running_vcpus} by running VMs), "
                                 f"a member needs {member.vcpus}"))
    need = member_gib(load.facts, member)
    free = load.free_gib - memory_gib
    if need > free + 1e-9:
        reasons.append(("memory", f"memory: {free:.1f} GiB left, a member needs {need:.1f} GiB"))
    if storage_avail is None:
        reasons.append(("storage", f"storage '{member.storage}' is not on {load.node} (or holds no VM disks)"))
    elif storage_avail - storage_used < member.disk_gib:
        reasons.append(("storage", f"storage '{member.storage}': {storage_avail - storage_used:.0f} GiB free, "
                                   f"a member needs {member.disk_gib}"))
    return reasons


def place(loads: list[NodeLoad], member: Member, count: int) -> Placement:
    """Place `count` members one by one, spread before stacked; stop at the first that fits nowhere."""
    online = [load for load in loads if load.facts.online]
    members = {load.node: 0 for load in online}
    vcpus = {load.node: load.running_vcpus for load in online}
    memory = {load.node: 0.0 for load in online}
    storage_used: dict[str, float] = {}  # by storage key: "nas" when shared, "pve1/local-lvm" otherwise

    def storage_of(load: NodeLoad) -> tuple[str, float | None]:
        store = load.facts.storage(member.storage)
        if store is None or not store.active or not store.holds("images"):
            return f"{load.node}/{member.storage}", None
        return (store.storage if store.shared else f"{load.node}/{store.storage}"), store.avail_gib

    plan = Placement(count=count, member=member)
    for _ in range(count):
        fitting = []
        refusals = {}
        for load in online:
            key, avail = storage_of(load)
            reasons = _refusals(load, member, vcpus[load.node], memory[load.node],
                                storage_used.get(key, 0.0), avail)
            if reasons:
                refusals[load.node] = reasons
            else:
                fitting.append(load)
        if not fitting:
            plan.refusals = refusals
            break
        best = min(fitting, key=lambda load: (members[load.node], -(load.facts.cores - vcpus[load.node]),
                                              -(load.free_gib - memory[load.node]), load.node))
        plan.nodes_of.append(best.node)
        members[best.node] += 1
        vcpus[best.node] += member.vcpus
        memory[best.node] += member_gib(best.facts, member)
        key, _ = storage_of(best)
        storage_used[key] = storage_used.get(key, 0.0) + member.disk_gib
    for load in online:
        total = load.facts.mem_total_gib
        used = load.own_gib + load.running_maxmem / GIB + memory[load.node]
        plan.use.append(NodeUse(node=load.node, members=members[load.node], vcpus_used=vcpus[load.node],
                                cores=load.facts.cores, memory_used_gib=used, memory_total_gib=total,
                                memory_available_gib=max(0.0, total - used)))
    return plan
