"""Steps of the 'provision' group (see backend/plan.py): from connecting to Proxmox to the first boot.

connect     connect (token, TLS), read the chosen node's facts, and this   -> node, pve_version, host,
            machine's own networks                                            local_networks
size        evaluate the answers ('auto' = recommendation) with sizing    -> vcpus, memory_gib, disk_gib, ...
ova         the OVA is on the node; read its metadata                      -> ova_disks, import_working_storage
create_vm   find this run's VM (name, tag, run id), or create it for its   -> vmid, node, vm_name,
            first boot on the first of the controllers to try                 boot_candidates
            (`vmconfig.boot_candidates`)
first_boot  start it; the guest is up once its address is known            -> guest_address,
            (backend/guestaddr.py) and sshd answers, within BOOT_WAIT_S;      boot_controller
            else the next controller is tried (`BootAttemptFailed`)

Every step is idempotent (a resume finds its VM, never creates a second one) and the ones whose
result can go stale on a resume re-read it (`recheck`). A VM is claimed by the run that created it
(its run id in the create request's description): another run with the same VM name refuses to
adopt it, so two runs never drive one VM. `check_host` answers `vast-loopback check`
with the same rules and changes nothing on the host.

Why the first boot tries controllers in turn: Proxmox cannot tell which drivers the OVA's initramfs
holds (import-metadata gives the disk's bus, never the VMware controller type), and a guest booted
on a controller it has no driver for sits in dracut's emergency shell: the VM runs, but it never
gets an address, never starts sshd or an agent. The only honest signal is that nothing answers,
so each boot gets a bounded time. The order puts what a VMware-built, host-only initramfs most
likely holds first (PVSCSI for a SCSI disk), so the usual OVA boots at the first attempt; an OVA
known to hold the VirtIO drivers is booted straight on VirtIO SCSI by asking for it
(`vm.first_boot_controller: virtio-scsi-single`), because trying VirtIO first would cost every
host-only OVA (the VAST OVA is one: the field had to add the drivers with dracut) a failed boot.
The preparation reads the initramfs (`lsinitrd`) and skips dracut when the drivers are there.
"""

from __future__ import annotations

from backend import guestaddr, sizing, vmconfig
from backend.answers import Answers
from backend.engine import RunContext, Step, require
from backend.errors import BadInput, RunFailed, SizingBlocked
from backend.events import (
    BootAttemptFailed,
    GuestAddressResolved,
    HostFactsGathered,
    SizingEvaluated,
    StepFinished,
    StepStarted,
    VmCreated,
    VmFound,
)
from backend.guest import sshd_answers
from backend.guestaddr import LocalNetworks
from backend.guestmemory import guest_gib
from backend.hostfacts import HostInventory, NodeFacts
from backend.proxmox import ProxmoxApiError, ProxmoxClient, VmRef
from backend.sizing import Finding, SizingResult
from backend.target import Target

SERVICE = "proxmox"
# Target seconds a booted guest gets to have an address and answer on SSH (or its agent): an EL8
# guest that finds its disk is up in a minute or two; one that does not waits for its root device
# (dracut's rd.retry, 180 s by default) and drops into the emergency shell. The margin is for a
# busy host (the first boot follows a 600 GiB import).
BOOT_WAIT_S = 10 * 60

OVA_UPLOAD_HINT = (
    "upload it in the Proxmox UI (node > storage '{storage}' > Import > Upload), or let the host fetch it: "
    "POST /nodes/{node}/storage/{storage}/download-url with content=import and filename={file}; "
    "the storage needs the 'import' content type (Datacenter > Storage > {storage} > Content)"
)


# --- shared helpers ------------------------------------------------------------------------------


async def proxmox_client(ctx: RunContext) -> ProxmoxClient:
    """The run's Proxmox client, connected on first use (also after a resume skipped `connect`)."""
    client = ctx.services.get(SERVICE)
    if client is None:
        client = await ProxmoxClient.connect(ctx.target, ctx.bus)
        ctx.services[SERVICE] = client
    return client


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
    networks are known) a way to learn the guest's address from here (backend/guestaddr.py)."""
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


def evaluate(node: NodeFacts, answers: Answers, local: LocalNetworks | None = None) -> SizingResult:
    """Sizing findings plus the host's own, most severe first; `local` is this machine's networks
    (None when unknown: nothing is said about the guest's address)."""
    result = sizing.evaluate(node, proposal(node, answers))
    order = {"blocker": 0, "warning": 1, "info": 2}
    findings = sorted([*result.findings, *host_findings(node, answers, local)], key=lambda f: order[f.severity])
    return SizingResult(result.recommendation, tuple(findings))


def _ova_parts(answers: Answers) -> tuple[str, str, str]:
    storage, volname = vmconfig.split_volid(answers.ova)
    return storage, volname, volname.rsplit("/", 1)[-1]


async def ova_findings(client: ProxmoxClient, node: NodeFacts, answers: Answers) -> list[Finding]:
    """Whether the OVA is where the answers say, and how Proxmox will extract it."""
    storage_name, _, filename = _ova_parts(answers)
    hint = OVA_UPLOAD_HINT.format(storage=storage_name, node=node.node, file=filename)
    storage = node.storage(storage_name)
    if storage is None or not storage.holds("import"):
        what = "does not exist" if storage is None else "does not hold 'import' content"
        return [Finding("ova-missing", "blocker", f"Storage '{storage_name}' {what} on node {node.node}.",
                        hint[0].upper() + hint[1:] + ".", "OVA import through the API needs Proxmox VE 8.3+.")]
    volids = {str(v.get("volid")) for v in await client.storage_content(node.node, storage_name, "import")}
    if answers.ova not in volids:
        return [Finding("ova-missing", "blocker", f"The OVA {answers.ova} is not on node {node.node}.",
                        hint[0].upper() + hint[1:] + ".", f"Storage '{storage_name}' holds: "
                        + (", ".join(sorted(volids)) or "no import files") + ".")]
    working, enable = vmconfig.working_storage_for(storage_name, node.storages)
    if enable:
        return [Finding("import-working-storage", "info",
                        f"Storage '{enable}' gets the 'images' content type so Proxmox can extract the OVA's disk.",
                        "Nothing to do (or add 'images' to it yourself).",
                        "Proxmox extracts an OVA's disk onto a file-based storage with 'images' content.")]
    if working:
        return [Finding("import-working-storage", "info",
                        f"Proxmox extracts the OVA's disk on storage '{working}'.", "Nothing to do.",
                        "Proxmox extracts an OVA's disk onto a file-based storage with 'images' content.")]
    return []


# --- connect -------------------------------------------------------------------------------------


async def run_connect(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    ctx.progress(f"connected to Proxmox VE {client.pve_version} at {client.host}:{client.port}")
    inventory = await client.inventory()
    node = choose_node(inventory, ctx.answers.proxmox.node)
    if ctx.answers.proxmox.node == "auto" and len(inventory.nodes) > 1:
        ctx.progress(f"picked node {node.node} ({node.cores} cores, {node.mem_available_gib:.0f} GiB free) "
                     f"of {len(inventory.nodes)}")
    ctx.emit(HostFactsGathered(node=node.node, facts=node.to_dict(), pve_version=inventory.pve_version))
    local = await guestaddr.local_networks(ctx.target)
    ctx.progress(f"this machine (where vast-loopback runs): {local.describe()}")
    return {"node": node.node, "pve_version": inventory.pve_version, "host": node.to_dict(),
            "local_networks": local.to_dict()}


async def recheck_connect(ctx: RunContext) -> bool:
    """On resume: the host must still answer (and the client is needed by later steps anyway)."""
    await proxmox_client(ctx)
    return True


# --- size ----------------------------------------------------------------------------------------


async def run_size(ctx: RunContext) -> dict:
    node = NodeFacts.from_dict(require(ctx, "host"))
    known = ctx.facts.get("local_networks")
    local = LocalNetworks.from_dict(known) if known else await guestaddr.local_networks(ctx.target)
    chosen = proposal(node, ctx.answers)
    layout = sizing.topology(node, chosen.vcpus, chosen.memory_gib)
    result = evaluate(node, ctx.answers, local)
    forced = bool(result.blockers) and ctx.options.force
    ctx.emit(SizingEvaluated(findings=[f.to_dict() for f in result.findings],
                             recommendation=result.recommendation.to_dict(), forced=forced))
    if result.blockers and not ctx.options.force:
        first = result.blockers[0]
        more = f" (and {len(result.blockers) - 1} more blocker(s))" if len(result.blockers) > 1 else ""
        what = "blocked" if first.id in guestaddr.FINDINGS else "sizing blocked"
        raise SizingBlocked(f"{what} on node {node.node}: {first.message}{more}",
                            hint=f"{first.remedy} Or run with --force to go ahead on purpose.")
    return {
        "vcpus": chosen.vcpus,
        "memory_gib": chosen.memory_gib,
        "disk_gib": chosen.disk_gib,
        "storage": chosen.storage or ctx.answers.vm.storage,
        "numa": layout.numa,
        "sockets": layout.sockets,
        "bridge": ctx.answers.vm.bridge,
    }


# --- ova -----------------------------------------------------------------------------------------


def ova_disks(metadata: dict) -> list[tuple[str, int]]:
    """(volid, size) of the OVA's disks, in the order of their keys (scsi0, scsi1, sata0...)."""
    disks = []
    for key, disk in sorted((metadata.get("disks") or {}).items()):
        if key.startswith("efidisk") or not isinstance(disk, dict) or not disk.get("volid"):
            continue
        disks.append((str(disk["volid"]), int(disk.get("size") or 0)))
    return disks


async def find_own_vm(ctx: RunContext, client: ProxmoxClient) -> VmRef | None:
    """This run's VM: named and tagged as ours and claimed by this run's id. A VM of that name
    made by another run (or claimed by none) is refused, naming it, its run and the remedy."""
    name, run_id = ctx.answers.vm.name, ctx.run.run_id
    mine, others = [], []
    for vm in await client.tagged_vms(name):
        owner = await client.vm_owner(vm)
        (mine if owner == run_id else others).append((vm, owner))
    if len(mine) > 1:
        ids = ", ".join(str(vm.vmid) for vm, _ in mine)
        raise RunFailed(f"there are {len(mine)} VMs named {name} claimed by this run ({ids})",
                        hint="remove the ones you do not want, then resume")
    if mine:
        return mine[0][0]
    if others:
        vm, owner = others[0]
        whose = f"run {owner}" if owner else "another vast-loopback run (its notes name no run)"
        raise RunFailed(
            f"VM {vm.vmid} '{name}' on {vm.node} belongs to {whose}, not to this run ({run_id}); "
            "it is not adopted",
            hint=(f"continue that run with vast-loopback --resume on its run directory ({owner}), " if owner
                  else "") + f"pick another vm.name, or delete VM {vm.vmid} if it is no longer needed")
    return None


async def run_ova(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    existing = await find_own_vm(ctx, client)
    if existing is not None:  # a rerun: the disk was imported already, the OVA is not needed again
        ctx.progress(f"VM {existing.vmid} '{existing.name}' exists already; the OVA is not needed")
        return {"ova_disks": [], "ova_disk_bytes": 0, "ova_disk_bus": "scsi", "import_working_storage": None}
    node = await client.node_facts(require(ctx, "node"))
    storage_name, _, filename = _ova_parts(ctx.answers)
    missing = [f for f in await ova_findings(client, node, ctx.answers) if f.severity == "blocker"]
    if missing:
        raise RunFailed(missing[0].message, hint=missing[0].remedy)
    metadata = await client.ova_metadata(node.node, ctx.answers.ova)
    disks = ova_disks(metadata)
    if not disks:
        raise RunFailed(f"the OVA {ctx.answers.ova} holds no disk Proxmox can import",
                        hint="check the file: it should be the VAST 5.4 loopback OVA")
    for warning in metadata.get("warnings") or ():
        ctx.progress(f"Proxmox notes about the OVA: {warning.get('type')}"
                     + (f" ({warning.get('key')}={warning.get('value')})" if warning.get("key") else ""))
    working, enable = vmconfig.working_storage_for(storage_name, node.storages)
    if enable and await client.add_storage_content(enable, "images"):
        ctx.progress(f"added 'images' to storage {enable}'s content so Proxmox can extract the OVA's disk")
    size_gib = disks[0][1] / 1024**3
    ctx.progress(f"OVA {filename}: {len(disks)} disk(s), the system disk is {size_gib:.0f} GiB")
    bus = vmconfig.ova_disk_bus(list((metadata.get("disks") or {}).keys()))
    return {
        "ova_disks": [volid for volid, _ in disks],
        "ova_disk_bytes": disks[0][1],
        "ova_disk_bus": bus,
        "import_working_storage": working,
    }


# --- create_vm -----------------------------------------------------------------------------------


def vm_spec(ctx: RunContext) -> vmconfig.VmSpec:
    return vmconfig.VmSpec(
        name=ctx.answers.vm.name,
        vcpus=int(require(ctx, "vcpus")),
        memory_gib=int(require(ctx, "memory_gib")),
        storage=str(require(ctx, "storage")),
        bridge=str(require(ctx, "bridge")),
        numa=bool(ctx.facts.get("numa", False)),
        sockets=int(ctx.facts.get("sockets", 1)),
        vmid=ctx.answers.vm.vmid,
        run_id=ctx.run.run_id,
    )


async def run_create_vm(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    name = ctx.answers.vm.name
    candidates = vmconfig.boot_candidates(str(ctx.facts.get("ova_disk_bus") or "scsi"),
                                          ctx.answers.vm.first_boot_controller)
    vm = await find_own_vm(ctx, client)
    if vm is None:
        # a create an interrupted run sent may still be importing: its VM shows no name (nor claim)
        # until it ends
        for pending in await client.creates_in_progress(require(ctx, "node")):
            ctx.progress(f"VM {pending.vmid} is still being created by an earlier run; waiting for it")
            await client.wait_unlocked(pending, on_progress=ctx.progress)
        vm = await find_own_vm(ctx, client)
    if vm is not None:
        ctx.emit(VmFound(vmid=vm.vmid, node=vm.node, name=name))
        await client.wait_unlocked(vm, on_progress=ctx.progress)
    else:
        strangers = await client.vms_named(name)
        if strangers:
            ids = ", ".join(f"{r.get('vmid')} on {r.get('node')}" for r in strangers)
            raise RunFailed(f"a VM named {name} already exists ({ids}) and was not created by vast-loopback "
                            f"(it has no '{vmconfig.TAG}' tag)",
                            hint="pick another vm.name, or rename that VM; it is left alone")
        node = require(ctx, "node")
        config = vmconfig.first_boot_config(vm_spec(ctx), require(ctx, "ova_disks"),
                                            ctx.facts.get("import_working_storage"), controller=candidates[0])
        ctx.progress(f"creating VM '{name}' on {node}: importing the OVA's disk onto {ctx.facts['storage']}, "
                     f"first boot on {candidates[0]}")
        vm = await client.create_vm(node, config, on_progress=ctx.progress)
        ctx.emit(VmCreated(vmid=vm.vmid, node=vm.node, name=name, config=config))
    await _resize(ctx, client, vm)
    return {"vmid": vm.vmid, "node": vm.node, "vm_name": name, "boot_candidates": candidates}


async def _resize(ctx: RunContext, client: ProxmoxClient, vm: VmRef) -> None:
    disk_gib = int(require(ctx, "disk_gib"))
    config = await client.vm_config(vm)
    disk = vmconfig.os_disk_key(config) or vmconfig.OS_DISK
    size = vmconfig.resize_to(config, disk_gib, disk)
    if size is None:
        current = vmconfig.drive_size_gib(config.get(disk, ""))
        if current is not None and current > disk_gib:
            ctx.progress(f"the system disk stays at {current:.0f} GiB (the OVA's size; disks cannot shrink)")
        return
    ctx.progress(f"growing the system disk to {size}")
    await client.resize(vm, disk, size, on_progress=ctx.progress)


def _vm_ref(ctx: RunContext) -> VmRef:
    return VmRef(node=str(require(ctx, "node")), vmid=int(require(ctx, "vmid")), name=ctx.answers.vm.name)


async def recheck_vm(ctx: RunContext) -> bool:
    """On resume: our VM must still exist (with our tag and claim) where the journal says it is."""
    client = await proxmox_client(ctx)
    vm = await find_own_vm(ctx, client)
    return vm is not None and vm.vmid == int(ctx.facts.get("vmid", -1))


# --- first_boot ----------------------------------------------------------------------------------


UNSEEN_HINT = ("set guest.address to the VM's IP (see its console), or run vast-loopback on a machine on the "
               "bridge's layer 2, or use an SDN VNet with IPAM and DHCP")


def _unseen(vm: VmRef, within_s: float) -> str:
    return (f"VM {vm.vmid} showed no address vast-loopback can see within {within_s / 60:g} min "
            "(no IPAM entry, no answer to its MAC in this machine's neighbour table, no guest agent)")


async def resolve_address(ctx: RunContext, client: ProxmoxClient, vm: VmRef, *,
                          timeout_s: float = BOOT_WAIT_S) -> guestaddr.Resolved:
    """The guest's address, from the first source a real host has (backend/guestaddr.py), within
    `timeout_s` of target time."""
    resolved = await guestaddr.resolve(ctx, client, vm, timeout_s=timeout_s)
    if resolved is None:
        raise RunFailed(_unseen(vm, timeout_s), hint=UNSEEN_HINT)
    return resolved


class GuestNotUp(RunFailed):
    """The guest did not come up within the bound."""


async def guest_came_up(ctx: RunContext, client: ProxmoxClient, vm: VmRef, within_s: float) -> guestaddr.Resolved:
    """The guest's address once it has one and sshd answers, within `within_s` target seconds of
    now; else GuestNotUp. Any address source works (backend/guestaddr.py keeps looking while the
    guest boots; this bounds it)."""
    deadline = ctx.clock.now() + within_s
    resolved = await guestaddr.resolve(ctx, client, vm, timeout_s=within_s)
    if resolved is None:
        the_plan, _, _ = await guestaddr.plan_for(ctx, client, vm)
        if the_plan.sources == (guestaddr.SOURCE_AGENT,):  # nothing could have seen it: another controller won't help
            raise RunFailed(_unseen(vm, within_s), hint=UNSEEN_HINT)
        raise GuestNotUp(f"no address for VM {vm.vmid} that vast-loopback can see within {within_s / 60:g} min")
    why = await sshd_answers(resolved.address, ctx.answers.guest.port, clock=ctx.clock, route=ctx.target.route,
                             within_s=max(0.0, deadline - ctx.clock.now()))
    if why:
        raise GuestNotUp(f"no SSH at {resolved.address}:{ctx.answers.guest.port} within {within_s / 60:g} min ({why})")
    return resolved


def failed_controllers(ctx: RunContext, vmid: int) -> set[str]:
    """The controllers this run found the guest could not boot from (in its journal, so a resumed
    run does not try them again)."""
    return {e.controller for e in ctx.run.events() if isinstance(e, BootAttemptFailed) and e.vmid == vmid}


async def boot_on(ctx: RunContext, client: ProxmoxClient, vm: VmRef, controller: str) -> None:
    """Put the stopped-or-stuck VM's OS disk on `controller` (a guest that never came up is stopped,
    not shut down: there is nobody in it to answer ACPI)."""
    changes = vmconfig.controller_changes(await client.vm_config(vm), controller)
    if not changes:
        return
    if (await client.status(vm)).get("status") != "stopped":
        await client.stop(vm)
    ctx.progress(f"VM {vm.vmid}: the OS disk goes on {controller}")
    await client.update_config(vm, changes)


async def run_first_boot(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = _vm_ref(ctx)
    candidates = list(ctx.facts.get("boot_candidates")
                      or vmconfig.boot_candidates("scsi", ctx.answers.vm.first_boot_controller))
    current = vmconfig.controller_of(await client.vm_config(vm))
    failed = failed_controllers(ctx, vm.vmid)
    if current not in vmconfig.CONTROLLERS or current in failed:  # e.g. LSI: the EL8 kernel has no driver
        current = next((c for c in candidates if c not in failed), candidates[0])
        await boot_on(ctx, client, vm, current)
    wait = BOOT_WAIT_S
    while True:
        await client.start(vm)
        started = ctx.clock.now()
        ctx.progress(f"booting on {current}: waiting up to {wait / 60:.0f} min for its address and SSH")
        try:
            address = await guest_came_up(ctx, client, vm, wait)
            break
        except GuestNotUp as exc:
            failed.add(current)
            following = [c for c in candidates if c not in failed]
            nxt = following[0] if following else ""
            ctx.emit(BootAttemptFailed(vmid=vm.vmid, controller=current, waited_s=round(ctx.clock.now() - started, 1),
                                       reason=str(exc), next_controller=nxt))
            if not nxt:
                raise RunFailed(
                    f"the guest of VM {vm.vmid} came up on none of: {', '.join(candidates)} (last: {exc})",
                    hint="open the VM's console: a guest in dracut's emergency shell lacks its disk controller's "
                         "driver in the initramfs; a guest that booted but has no address needs guest.address "
                         "in the answers") from None
            await boot_on(ctx, client, vm, nxt)
            current = nxt
    ctx.emit(GuestAddressResolved(address=address.address, source=address.source, detail=address.detail))
    ctx.progress(f"the guest came up on {current} ({vmconfig.CONTROLLERS[current].module})")
    return {"vmid": vm.vmid, "node": vm.node, "guest_address": address.address, "address_source": address.source,
            "boot_controller": current}


# What a step leaves the VM's power in, on purpose (by step id, without its "@attempt" suffix).
POWER_AFTER = {"first_boot": "running", "shutdown_for_switch": "stopped", "second_boot": "running",
               "rollback": "stopped"}
BOOT_STEPS = ("first_boot", "second_boot")  # the ones whose recheck starts a VM found stopped


def _base(step_id: str) -> str:
    return step_id.split("@", 1)[0]


def power_recheck_applies(ctx: RunContext) -> bool:
    """On resume, whether the boot step being rechecked is the one that must find the VM running.

    No when the last step that changed the VM's power was interrupted (it runs again and decides) or
    stopped the VM on purpose (the controller switch, a rollback: the next boot step starts it), and
    no for a boot step that a later boot step took over from (the second boot, after a rollback the
    attempt's own): one step checks, and the VM is never started only to be stopped again.
    """
    last_power, last_boot, done = "", "", set()
    for event in ctx.run.events():
        if isinstance(event, StepStarted) and _base(event.step) in POWER_AFTER:
            last_power = event.step
        elif isinstance(event, StepFinished) and event.ok:
            done.add(event.step)
            if _base(event.step) in BOOT_STEPS:
                last_boot = event.step
    if last_power not in done:
        return False
    return POWER_AFTER[_base(last_power)] == "running" and last_boot == ctx.current_step


async def recheck_first_boot(ctx: RunContext) -> bool:
    """On resume: the VM must still be running (else it is started again and its address re-read),
    unless another step decides the VM's power now (see `power_recheck_applies`)."""
    if not power_recheck_applies(ctx):
        return True
    client = await proxmox_client(ctx)
    try:
        status = await client.status(_vm_ref(ctx))
    except ProxmoxApiError as exc:
        if exc.status in (404, 500):
            return False
        raise
    return status.get("status") == "running"


# --- check (`vast-loopback check`) ---------------------------------------------------------------


async def check_host(answers: Answers, target: Target) -> dict:
    """Validate the answers and the sizing against the host; change nothing."""
    client = await ProxmoxClient.connect(target)
    try:
        inventory = await client.inventory()
        node = choose_node(inventory, answers.proxmox.node)
        local = await guestaddr.local_networks(target)
        result = evaluate(node, answers, local)
        chosen = proposal(node, answers)
        existing = await client.find_vm(answers.vm.name)
        if existing is None:
            extra = await ova_findings(client, node, answers)
        else:
            owner = await client.vm_owner(existing)
            extra = [Finding("vm-exists", "warning",
                             f"VM {existing.vmid} '{existing.name}' made by vast-loopback "
                             f"({f'run {owner}' if owner else 'no run named in its notes'}) exists on {existing.node}.",
                             "Only a resume of the run that created it continues with it; a new run with this "
                             "name refuses it: pick another vm.name, or delete the VM.",
                             f"Found by its name and the '{vmconfig.TAG}' tag; the run by its description.")]
    finally:
        await client.close()
    order = {"blocker": 0, "warning": 1, "info": 2}
    findings = sorted([*result.findings, *extra], key=lambda f: order[f.severity])
    host = {
        **node.to_dict(),
        "pve_version": inventory.pve_version or node.pve_version,
        "mem_available": node.mem_available,
        "fingerprint": inventory.fingerprint,
        "cluster_name": inventory.cluster_name,
        "nodes": [n.node for n in inventory.nodes],
        "local_networks": local.to_dict(),
    }
    return {
        "ok": not any(f.severity == "blocker" for f in findings),
        "findings": [f.to_dict() for f in findings],
        "recommendation": result.recommendation.to_dict(),
        "vm": {"vcpus": chosen.vcpus, "memory_gib": chosen.memory_gib, "disk_gib": chosen.disk_gib,
               "guest_memory_gib": round(guest_gib(chosen.memory_gib), 1), "storage": chosen.storage},
        "host": host,
    }


def steps() -> list[Step]:
    return [
        Step("connect", "Connect to Proxmox", "provision", run_connect, recheck_connect),
        Step("size", "Check the sizing", "provision", run_size),
        Step("ova", "Find the OVA", "provision", run_ova),
        Step("create_vm", "Create the VM", "provision", run_create_vm, recheck_vm),
        Step("first_boot", "First boot", "provision", run_first_boot, recheck_first_boot),
    ]
