"""What the host must offer for the answers: one evaluation, for the wizard, `check` and the run.

`read_host` reads what the evaluation needs from a target (changing nothing): the inventory, this
machine's own networks, the import files on every node's storages, and a VM of ours already there.
`evaluate(answers, host)` is pure: the sizing findings (backend/model/sizing.py), the bridge, the
guest's address (backend/steps/guestaddr.py), the OVA (where it is, how Proxmox extracts it) and an
existing VM, most severe first. The wizard evaluates what its probe read, `check` what it reads
itself, the run's `size` step what its `connect` step read (no OVA listing: the `ova` step judges
the OVA with the same `ova_findings` once it has read it): the same answers on the same host get the
same findings everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from backend.clients.proxmox import ProxmoxClient
from backend.errors import BadInput, RunFailed
from backend.model import sizing, vmconfig
from backend.model.answers import Answers
from backend.model.guestmemory import guest_gib
from backend.model.hostfacts import HostInventory, NodeFacts
from backend.model.sizing import Finding, SizingResult, by_severity
from backend.steps import guestaddr, hostchanges
from backend.steps.guestaddr import LocalNetworks
from backend.target import Target

OVA_UPLOAD_HINT = (
    "upload it in the Proxmox UI (node > storage '{storage}' > Import > Upload), or let the host fetch it: "
    "POST /nodes/{node}/storage/{storage}/download-url with content=import and filename={file}; "
    "the storage needs the 'import' content type (Datacenter > Storage > {storage} > Content)"
)


# Findings about the host rather than the VM's size (the wizard's Sizing step shows the others).
HOST_FINDINGS = frozenset({"bridge-missing", "ova-missing", "import-working-storage", "vm-exists",
                           *guestaddr.FINDINGS})


@dataclass(frozen=True)
class ExistingVm:
    """A VM vast-loopback made (named and tagged as ours), and the run that claims it."""

    vmid: int
    node: str
    name: str
    owner: str | None


@dataclass(frozen=True)
class HostView:
    """What was read of the target. `imports` maps "node/storage" to the import files there (None:
    not read); `existing` is the VM of ours named as the answers' VM when they were read."""

    inventory: HostInventory
    local: LocalNetworks | None = None
    imports: Mapping[str, tuple[str, ...]] | None = None
    existing: ExistingVm | None = None


def choose_node(inventory: HostInventory, wanted: str) -> NodeFacts:
    """The node named in the answers, or the best one for 'auto'."""
    names = ", ".join(n.node for n in inventory.nodes) or "none"
    if wanted != "auto":
        node = inventory.node(wanted)
        if node is None:
            raise BadInput(f"proxmox.node: there is no node '{wanted}' on this host", hint=f"nodes: {names}")
        if not node.online:
            raise RunFailed(f"node {wanted} is offline", hint="start it, or set proxmox.node to auto or another node")
        return node
    node = sizing.pick_node(inventory)
    if node is None:
        raise RunFailed("no Proxmox node is online", hint=f"nodes: {names}")
    return node


def proposal(node: NodeFacts, answers: Answers) -> sizing.Proposal:
    return sizing.proposal_for(node, answers.vm.vcpus, answers.vm.memory_gib, answers.vm.disk_gib,
                               answers.vm.storage)


def host_findings(node: NodeFacts, answers: Answers, local: LocalNetworks | None = None) -> list[Finding]:
    """What the host must offer beyond sizing: the bridge the NIC goes on, and (when this machine's
    networks are known) a way to learn the guest's address from here (backend/steps/guestaddr.py)."""
    findings = []
    if answers.vm.bridge not in node.bridges:
        known = ", ".join(node.bridges) or "none"
        findings.append(Finding(
            "bridge-missing", "blocker",
            f"Bridge '{answers.vm.bridge}' does not exist on node {node.node}.",
            f"Set vm.bridge to one of: {known}.",
            "Proxmox refuses a NIC on a bridge the node does not have.",
        ))
    findings.extend(guestaddr.plan(node, answers.vm.bridge, answers.guest.address, local).findings)
    return findings


def ova_parts(answers: Answers) -> tuple[str, str, str]:
    """(storage, volname, file name) of the answers' OVA volid."""
    storage, volname = vmconfig.split_volid(answers.ova)
    return storage, volname, volname.rsplit("/", 1)[-1]


def ova_findings(node: NodeFacts, answers: Answers, imports: Mapping[str, tuple[str, ...]]) -> list[Finding]:
    """Whether the OVA is where the answers say (`imports`: "node/storage" -> import files), and how
    Proxmox will extract it."""
    storage_name, _, filename = ova_parts(answers)
    hint = OVA_UPLOAD_HINT.format(storage=storage_name, node=node.node, file=filename)
    storage = node.storage(storage_name)
    if storage is None or not storage.holds("import"):
        what = "does not exist" if storage is None else "does not hold 'import' content"
        return [Finding("ova-missing", "blocker", f"Storage '{storage_name}' {what} on node {node.node}.",
                        hint[0].upper() + hint[1:] + ".", "OVA import through the API needs Proxmox VE 8.3+.")]
    volids = set(imports.get(f"{node.node}/{storage_name}", ()))
    if answers.ova not in volids:
        return [Finding("ova-missing", "blocker", f"The OVA {answers.ova} is not on node {node.node}.",
                        hint[0].upper() + hint[1:] + ".", f"Storage '{storage_name}' holds: "
                        + (", ".join(sorted(volids)) or "no import files") + ".")]
    changes = hostchanges.findings(node, storage_name, answers.proxmox.keep_host_changes)
    if changes:
        return changes
    working, _ = vmconfig.working_storage_for(storage_name, node.storages)
    if working:
        return [Finding("import-working-storage", "info",
                        f"Proxmox extracts the OVA's disk on storage '{working}'.", "Nothing to do.",
                        "Proxmox extracts an OVA's disk onto a file-based storage with 'images' content.")]
    return []


def vm_exists_finding(vm: ExistingVm) -> Finding:
    return Finding("vm-exists", "warning",
                   f"VM {vm.vmid} '{vm.name}' made by vast-loopback "
                   f"({f'run {vm.owner}' if vm.owner else 'no run named in its notes'}) exists on {vm.node}.",
                   "Only a resume of the run that created it continues with it; a new run with this "
                   "name refuses it: pick another vm.name, or delete the VM.",
                   f"Found by its name and the '{vmconfig.TAG}' tag; the run by its description.")


def evaluate(answers: Answers, host: HostView) -> SizingResult:
    """Every finding for these answers on this host, most severe first (see the module doc)."""
    node = choose_node(host.inventory, answers.proxmox.node)
    result = sizing.evaluate(node, proposal(node, answers))
    findings = [*result.findings, *host_findings(node, answers, host.local)]
    if host.existing is not None and host.existing.name == answers.vm.name:
        findings.append(vm_exists_finding(host.existing))
    elif host.imports is not None:
        findings += ova_findings(node, answers, host.imports)
    return SizingResult(result.recommendation, by_severity(findings), result.proposal)


async def read_imports(client: ProxmoxClient, inventory: HostInventory) -> dict[str, tuple[str, ...]]:
    """The import files on every online node's storages that hold 'import' content."""
    imports: dict[str, tuple[str, ...]] = {}
    for node in inventory.nodes:
        if not node.online:
            continue
        for storage in node.storages:
            if storage.holds("import"):
                rows = await client.storage_content(node.node, storage.storage, "import")
                imports[f"{node.node}/{storage.storage}"] = tuple(str(r.get("volid")) for r in rows)
    return imports


async def read_host(client: ProxmoxClient, target: Target, answers: Answers,
                    inventory: HostInventory | None = None) -> HostView:
    """Everything `evaluate` needs, read from the target; nothing on it changes."""
    inventory = inventory or await client.inventory()
    local = await guestaddr.local_networks(target)
    existing = None
    found = await client.find_vm(answers.vm.name)
    if found is not None:
        existing = ExistingVm(found.vmid, found.node, found.name, await client.vm_owner(found))
    return HostView(inventory, local, await read_imports(client, inventory), existing)


def check_report(answers: Answers, host: HostView) -> dict:
    """`vast-loopback check --json`: the findings, the recommendation, the VM checked and the host."""
    inventory = host.inventory
    node = choose_node(inventory, answers.proxmox.node)
    result = evaluate(answers, host)
    chosen = result.proposal
    assert chosen is not None
    return {
        "ok": not result.blockers,
        "findings": [f.to_dict() for f in result.findings],
        "recommendation": result.recommendation.to_dict(),
        "vm": {"vcpus": chosen.vcpus, "memory_gib": chosen.memory_gib, "disk_gib": chosen.disk_gib,
               "guest_memory_gib": round(guest_gib(chosen.memory_gib), 1), "storage": chosen.storage},
        "host": {
            **node.to_dict(),
            "pve_version": inventory.pve_version or node.pve_version,
            "mem_available": node.mem_available,
            "fingerprint": inventory.fingerprint,
            "cluster_name": inventory.cluster_name,
            "nodes": [n.node for n in inventory.nodes],
            "local_networks": host.local.to_dict() if host.local else {},
        },
    }


async def check_host(answers: Answers, target: Target) -> dict:
    """Validate the answers and the sizing against the host; change nothing."""
    client = await ProxmoxClient.connect(target)
    try:
        host = await read_host(client, target, answers)
    finally:
        await client.close()
    return check_report(answers, host)
