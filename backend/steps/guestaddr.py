"""The guest's address, as a real Proxmox host and the machine vast-loopback runs on can know it.

Sources, in order (each its own small function below):
1. the answers (`guest.address`);
2. Proxmox's SDN IPAM: only for a NIC on a VNet whose zone has IPAM (`pve`) and DHCP does Proxmox
   hand out an address and record it by MAC (`GET /cluster/sdn/ipams/pve/status`); a plain bridge
   such as vmbr0 never has an entry (pve-network Vnets.pm; ../shared/research/ground-truth.md §7);
3. this machine's own neighbour table, matched on the VM's MAC (from its `net0`) after a bounded
   probe of this machine's directly attached subnets that overlap the bridge's (backend/clients/jumpnet.py).
   This works only when this machine shares the bridge's layer 2: ARP does not cross routers;
4. the guest agent, once it is installed (the OVA has none at its first boot).

`plan()` says up front which of them can work from here, as findings that `check`, the wizard's
Storage & network step and the run's `size` step all take from `backend.steps.hostcheck.evaluate`: when
none can, `guest.address: dhcp` is a blocker whose remedy is to give the address. `resolve()` tries
the sources in order, round after round, until one answers or the (bounded) time is up.

Where this machine's probes run is the Target's business (`Target.probe_prefix`): right here by
default; the lab runs the same probe program in its jump host's network namespace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from backend.clients import jumpnet
from backend.clients.proxmox import ProxmoxApiError, ProxmoxClient, VmRef
from backend.model import vmconfig
from backend.model.hostfacts import BridgeFacts, NodeFacts
from backend.model.sizing import Finding
from backend.target import Target

if TYPE_CHECKING:
    from backend.run.engine import RunContext

log = logging.getLogger(__name__)

SOURCE_ANSWERS = "answers"
SOURCE_IPAM = "sdn-ipam"
SOURCE_NEIGHBOURS = "neighbour-table"
SOURCE_AGENT = "guest-agent"

FINDING_BLOCKED = "guest-address"
FINDING_SOURCE = "guest-address-source"
FINDING_UNCERTAIN = "guest-address-uncertain"
FINDINGS = (FINDING_BLOCKED, FINDING_SOURCE, FINDING_UNCERTAIN)

# Wall seconds a probe round waits for ARP answers: the kernel's own time. Above its 1 s retransmit
# time (net.ipv4.neigh.*.retrans_time_ms), as an address that failed in an earlier round (the guest
# was not up yet) may be asked again only that much later.
NEIGHBOUR_WAIT_S = 1.5
PROBE_TIMEOUT_S = 20.0  # wall seconds a probe program may take in all
POLL_S = 5.0  # target seconds between rounds
MIN_ROUNDS = 5  # rounds tried whatever the clock says (a probe round takes wall time, even in a fast lab)
PROGRESS_EVERY = 12  # rounds between "still looking" messages (about a minute)
_SOURCE_FILE = Path(jumpnet.__file__)

EVIDENCE = ("Without its guest agent, Proxmox knows a VM's address only through SDN IPAM, for VNets whose zone "
            "has IPAM and DHCP (pve-network Vnets.pm); a neighbour table only holds hosts on the same layer 2.")


# --- this machine's networks --------------------------------------------------------------------


@dataclass(frozen=True)
class LocalNetworks:
    """This machine's directly attached IPv4 subnets ({iface, address, cidr}), or why unknown."""

    interfaces: tuple[dict, ...] = ()
    error: str = ""

    def overlapping(self, subnet: str) -> list[dict]:
        net = ipaddress.IPv4Network(subnet, strict=False)
        return [i for i in self.interfaces if ipaddress.IPv4Network(i["cidr"]).overlaps(net)]

    def describe(self, interfaces: list[dict] | tuple[dict, ...] | None = None) -> str:
        chosen = self.interfaces if interfaces is None else interfaces
        if not chosen:
            return f"no IPv4 network ({self.error})" if self.error else "no IPv4 network"
        return ", ".join(f"{i['address']}/{i['cidr'].split('/')[1]} on {i['iface']}" for i in chosen)

    def to_dict(self) -> dict:
        return {"interfaces": [dict(i) for i in self.interfaces], "error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> LocalNetworks:
        return cls(tuple(dict(i) for i in data.get("interfaces", ())), str(data.get("error", "")))


async def run_probe(target: Target, request: dict) -> dict:
    """Run a backend/clients/jumpnet.py request where this machine's network probes run (`probe_prefix`)."""
    if not target.probe_prefix:
        return await asyncio.to_thread(jumpnet.handle, request)
    argv = [*target.probe_prefix, sys.executable, "-c", jumpnet.LOADER, json.dumps(request)]
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        return {"error": f"cannot start the network probe: {exc}"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(_SOURCE_FILE.read_bytes()), PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": f"the network probe took more than {PROBE_TIMEOUT_S:.0f} s"}
    try:
        return json.loads(out.decode() or "{}") or {"error": err.decode(errors="replace").strip()[-300:]}
    except ValueError:
        return {"error": f"the network probe answered {out[:200]!r}"}


async def local_networks(target: Target) -> LocalNetworks:
    """This machine's directly attached IPv4 subnets, as its probes see them."""
    answer = await run_probe(target, {"op": "networks"})
    if "error" in answer:
        return LocalNetworks(error=str(answer["error"]))
    return LocalNetworks(tuple(dict(i) for i in answer.get("networks", ())))


# --- what can work from here --------------------------------------------------------------------


@dataclass(frozen=True)
class AddressPlan:
    """The sources that can give the guest's address at its first boot, in order, and why."""

    sources: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    probe: tuple[str, ...] = field(default_factory=tuple)  # the subnets the neighbour probe covers (cidrs)

    @property
    def blocked(self) -> bool:
        return any(f.severity == "blocker" for f in self.findings)


def _why_no_ipam(bridge: BridgeFacts) -> str:
    if bridge.kind != "vnet":
        return f"{bridge.name} is a plain bridge, and Proxmox records addresses only on SDN VNets with IPAM and DHCP"
    if not bridge.zone:
        return f"the SDN zone of VNet {bridge.name} cannot be read (the token needs SDN.Audit)"
    missing = "no DHCP" if not bridge.dhcp else f"IPAM '{bridge.ipam or 'none'}' (only 'pve' can be read)"
    return f"the zone {bridge.zone} of VNet {bridge.name} has {missing}"


def plan(node: NodeFacts, bridge_name: str, address: str, local: LocalNetworks | None) -> AddressPlan:
    """Which sources can give the guest's address at first boot from here; `address` is the answers'
    `guest.address`, `local` this machine's networks (None: not known, no finding)."""
    if address != "dhcp":
        return AddressPlan((SOURCE_ANSWERS,))
    bridge = node.network(bridge_name)
    if bridge is None or local is None:  # a missing bridge is its own blocker
        return AddressPlan((SOURCE_NEIGHBOURS, SOURCE_AGENT))
    if bridge.ipam_leases:
        return AddressPlan((SOURCE_IPAM, SOURCE_AGENT), (Finding(
            FINDING_SOURCE, "info",
            f"Proxmox's IPAM gives the guest its address: {bridge.name} is an SDN VNet in zone {bridge.zone} "
            f"with IPAM '{bridge.ipam}' and DHCP ({bridge.dhcp}).",
            "Nothing to do.", "Read by the VM's MAC from GET /cluster/sdn/ipams/pve/status."),))
    subnet = bridge.subnet
    if subnet:
        near = local.overlapping(subnet)
        if near:
            return AddressPlan((SOURCE_NEIGHBOURS, SOURCE_AGENT), (Finding(
                FINDING_SOURCE, "info",
                f"The guest's address will be read from this machine's neighbour table by the VM's MAC, after "
                f"probing {subnet}: this machine is on that subnet ({local.describe(near)}). This works only if "
                f"it also shares {bridge.name}'s layer 2 (same switch or VLAN); {_why_no_ipam(bridge)}.",
                "Nothing to do (or set guest.address).",
                f"{bridge.name} is {subnet} on node {node.node} (its own address {bridge.cidr})."),), (subnet,))
        where = f"this machine has no interface on {bridge.name}'s subnet {subnet} (it has {local.describe()})"
    elif local.interfaces:
        return AddressPlan((SOURCE_NEIGHBOURS, SOURCE_AGENT), (Finding(
            FINDING_UNCERTAIN, "warning",
            f"{bridge.name} has no address on node {node.node}, so vast-loopback cannot tell whether this machine "
            f"({local.describe()}) shares its layer 2; it will look for the guest's MAC in this machine's neighbour "
            "table, for a bounded time.",
            "Set guest.address to the guest's IP to be sure.", EVIDENCE),))
    else:
        where = f"this machine's own networks are unknown: {local.describe()}"
    lan = subnet or f"{bridge.name}'s subnet"
    return AddressPlan((SOURCE_AGENT,), (Finding(
        FINDING_BLOCKED, "blocker",
        f"guest.address is 'dhcp', but nothing can tell vast-loopback the guest's address at its first boot: "
        f"{_why_no_ipam(bridge)}; {where}, so the guest never shows in its neighbour table; and the guest "
        "agent is only installed later.",
        "Set guest.address to the IP the guest will get (a DHCP reservation for its MAC, or what its console "
        f"shows), or run vast-loopback on a machine on {lan} (the same layer 2), "
        "or put the VM on an SDN VNet in a Simple zone with IPAM and DHCP.", EVIDENCE),))


# --- the sources --------------------------------------------------------------------------------


def _ipv4(value: object) -> str | None:
    try:
        address = ipaddress.ip_address(str(value).split("/")[0])
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


async def from_ipam(client: ProxmoxClient, mac: str) -> str | None:
    """Proxmox's IPAM entry for the MAC (a VNet with IPAM and DHCP)."""
    try:
        entries = await client.ipam_entries()
    except ProxmoxApiError as exc:
        log.info("IPAM not readable: %s", exc.message)
        return None
    return next((ip for e in entries if str(e.get("mac", "")).upper() == mac and (ip := _ipv4(e.get("ip")))), None)


async def from_neighbours(target: Target, mac: str, within: tuple[str, ...]) -> dict:
    """One probe round of this machine's subnets overlapping `within` (all of them when empty):
    backend/clients/jumpnet.py's answer ({address, probed, networks, elapsed_s} or {error})."""
    return await run_probe(target, {"op": "find", "mac": mac, "within": list(within) or None,
                                    "wait_s": NEIGHBOUR_WAIT_S})


async def from_agent(client: ProxmoxClient, vm: VmRef) -> str | None:
    """The first IPv4 address the guest agent reports (none before it is installed and running)."""
    addresses = await client.guest_addresses(vm)
    return addresses[0] if addresses else None


# --- resolving ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    address: str
    source: str
    detail: str = ""


def describe(the_plan: AddressPlan, mac: str, bridge: str) -> str:
    """The progress line saying where the address is looked for (and the layer-2 condition)."""
    names = {SOURCE_IPAM: "Proxmox's SDN IPAM", SOURCE_AGENT: "the guest agent (once installed)",
             SOURCE_NEIGHBOURS: (f"this machine's neighbour table after probing {', '.join(the_plan.probe)}"
                                 if the_plan.probe else "this machine's neighbour table after probing its subnets")
                                + " (works only if this machine shares the bridge's layer 2)"}
    return (f"looking for the address of MAC {mac} on {bridge}: "
            + "; then ".join(names[s] for s in the_plan.sources if s in names))


async def plan_for(ctx: RunContext, client: ProxmoxClient, vm: VmRef) -> tuple[AddressPlan, str, str]:
    """(plan, MAC, bridge) for this VM as it is configured now (a `dhcp` address)."""
    net0 = (await client.vm_config(vm)).get("net0")
    mac, bridge = vmconfig.mac_of(net0), vmconfig.bridge_of(net0) or ctx.answers.vm.bridge
    node = ctx.facts.host or await client.node_facts(vm.node)
    known = ctx.facts.local_networks
    local = LocalNetworks.from_dict(known) if known else await local_networks(ctx.target)
    the_plan = plan(node, bridge, "dhcp", local) if mac else AddressPlan((SOURCE_AGENT,))
    return the_plan, mac or "", bridge


async def resolve(ctx: RunContext, client: ProxmoxClient, vm: VmRef, *, timeout_s: float) -> Resolved | None:
    """The guest's address from the first source that answers, or None after `timeout_s` of target
    time (and at least MIN_ROUNDS rounds)."""
    if ctx.answers.guest.address != "dhcp":
        return Resolved(ctx.answers.guest.address, SOURCE_ANSWERS)
    the_plan, mac, bridge = await plan_for(ctx, client, vm)
    ctx.progress(describe(the_plan, mac or "?", bridge))
    started, rounds, problems = ctx.clock.now(), 0, set()
    while True:
        for source in the_plan.sources:
            found = await _try(source, ctx.target, client, vm, mac or "", the_plan, problems, ctx.progress)
            if found is not None:
                return found
        rounds += 1
        if rounds >= MIN_ROUNDS and ctx.clock.now() - started > timeout_s:
            return None
        if rounds % PROGRESS_EVERY == 0:
            ctx.progress(f"no address for MAC {mac} yet ({rounds} rounds, {ctx.clock.now() - started:.0f} s)")
        await ctx.clock.sleep(POLL_S)


async def _try(source: str, target: Target, client: ProxmoxClient, vm: VmRef, mac: str, the_plan: AddressPlan,
               problems: set[str], progress: Callable[[str], None]) -> Resolved | None:
    if source == SOURCE_IPAM:
        address = await from_ipam(client, mac)
        return Resolved(address, source, f"IPAM entry of MAC {mac}") if address else None
    if source == SOURCE_NEIGHBOURS:
        answer = await from_neighbours(target, mac, the_plan.probe)
        if "error" in answer:
            if answer["error"] not in problems:
                problems.add(str(answer["error"]))
                progress(f"this machine's neighbour table cannot be probed: {answer['error']}")
            return None
        if answer.get("address"):
            return Resolved(str(answer["address"]), source,
                            f"MAC {mac} on {answer.get('iface')}, after probing {answer.get('probed')} addresses of "
                            f"{', '.join(answer.get('networks') or ())} in {answer.get('elapsed_s')} s")
        return None
    address = await from_agent(client, vm)
    return Resolved(address, source) if address else None
