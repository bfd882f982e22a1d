"""Steps of the 'provision' group (see backend/run/plan.py): from connecting to Proxmox to the first boot.

connect     connect (token, TLS), read the chosen node's facts, and this   -> node, pve_version, host,
            machine's own networks                                            local_networks
size        evaluate the answers ('auto' = recommendation) with sizing    -> vcpus, memory_gib, disk_gib, ...
ova         the OVA is on the node; read its metadata                      -> ova_disks, import_working_storage
create_vm   find this run's VM (name, tag, run id), or create it for its   -> vmid, node, vm_name,
            first boot on the first of the controllers to try                 boot_candidates
            (`vmconfig.boot_candidates`)
first_boot  start it; the guest is up once its address is known            -> guest_address,
            (backend/steps/guestaddr.py) and sshd answers, within BOOT_WAIT_S;      boot_controller
            else the next controller is tried (`BootAttemptFailed`)

Every step is idempotent (a resume finds its VM, never creates a second one) and the ones whose
result can go stale on a resume re-read it (`recheck`). A VM is claimed by the run that created it
(its run id in the create request's description): another run with the same VM name refuses to
adopt it, so two runs never drive one VM. The `size` and `ova` steps judge with the same
evaluation as the wizard and `vast-loopback check` (backend/steps/hostcheck.py).

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

import asyncio

from backend.clients.guestssh import sshd_answers
from backend.clients.proxmox import ProxmoxApiError, ProxmoxClient, VmRef
from backend.errors import RunFailed, SizingBlocked
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
from backend.model import sizing, vmconfig
from backend.model.hostfacts import HostInventory
from backend.run.engine import RunContext, Step
from backend.steps import guestaddr, hostchanges, hostcheck
from backend.steps.guestaddr import LocalNetworks

SERVICE = "proxmox"
# Target seconds a booted guest gets to have an address and answer on SSH (or its agent): an EL8
# guest that finds its disk is up in a minute or two; one that does not waits for its root device
# (dracut's rd.retry, 180 s by default) and drops into the emergency shell. The margin is for a
# busy host (the first boot follows a 600 GiB import).
BOOT_WAIT_S = 10 * 60




# --- shared helpers ------------------------------------------------------------------------------


async def proxmox_client(ctx: RunContext) -> ProxmoxClient:
    """The run's Proxmox client, connected on first use (also after a resume skipped `connect`)."""
    client = ctx.services.get(SERVICE)
    if client is None:
        client = await ProxmoxClient.connect(ctx.target, ctx.bus)
        ctx.services[SERVICE] = client
    return client


# --- connect -------------------------------------------------------------------------------------


async def run_connect(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    ctx.progress(f"connected to Proxmox VE {client.pve_version} at {client.host}:{client.port}")
    inventory = await client.inventory()
    node = hostcheck.choose_node(inventory, ctx.answers.proxmox.node)
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
    node = ctx.facts.host
    assert node is not None  # needs=("host",)
    known = ctx.facts.local_networks
    local = LocalNetworks.from_dict(known) if known else await guestaddr.local_networks(ctx.target)
    host = hostcheck.HostView(HostInventory(ctx.facts.pve_version or "", (node,)), local)
    answers = ctx.answers.model_copy(update={"proxmox": ctx.answers.proxmox.model_copy(update={"node": node.node})})
    result = hostcheck.evaluate(answers, host)
    chosen = result.proposal  # the proposal evaluated: built once
    assert chosen is not None
    layout = sizing.topology(node, chosen.vcpus, chosen.memory_gib)
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
    node = await client.node_facts(str(ctx.facts.node))
    storage_name, _, filename = hostcheck.ova_parts(ctx.answers)
    imports = await hostcheck.read_imports(client, HostInventory("", (node,)))
    missing = [f for f in hostcheck.ova_findings(node, ctx.answers, imports) if f.severity == "blocker"]
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
    working, _ = vmconfig.working_storage_for(storage_name, node.storages)  # 'images' is added at the create
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
    facts = ctx.facts  # create_vm needs the size step's facts: the engine checked them
    return vmconfig.VmSpec(
        name=ctx.answers.vm.name,
        vcpus=int(facts.vcpus or 0),
        memory_gib=int(facts.memory_gib or 0),
        storage=str(facts.storage),
        bridge=str(facts.bridge),
        numa=facts.numa,
        sockets=facts.sockets,
        vmid=ctx.answers.vm.vmid,
        run_id=ctx.run.run_id,
    )


async def run_create_vm(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    name = ctx.answers.vm.name
    candidates = vmconfig.boot_candidates(ctx.facts.ova_disk_bus or "scsi",
                                          ctx.answers.vm.first_boot_controller)
    vm = await find_own_vm(ctx, client)
    if vm is None:
        # a create an interrupted run sent may still be importing: its VM shows no name (nor claim)
        # until it ends
        for pending in await client.creates_in_progress(str(ctx.facts.node)):
            ctx.progress(f"VM {pending.vmid} is still being created by an earlier run; waiting for it")
            await client.wait_unlocked(pending, on_progress=ctx.progress)
        vm = await find_own_vm(ctx, client)
    if vm is not None:
        ctx.emit(VmFound(vmid=vm.vmid, node=vm.node, name=name))
        await client.wait_unlocked(vm, on_progress=ctx.progress)
        await hostchanges.revert(ctx, client)  # a crash between the import and its revert
    else:
        strangers = await client.vms_named(name)
        if strangers:
            ids = ", ".join(f"{r.get('vmid')} on {r.get('node')}" for r in strangers)
            raise RunFailed(f"a VM named {name} already exists ({ids}) and was not created by vast-loopback "
                            f"(it has no '{vmconfig.TAG}' tag)",
                            hint="pick another vm.name, or rename that VM; it is left alone")
        node = str(ctx.facts.node)
        config = vmconfig.first_boot_config(vm_spec(ctx), list(ctx.facts.ova_disks or ()),
                                            ctx.facts.import_working_storage, controller=candidates[0])
        ctx.progress(f"creating VM '{name}' on {node}: importing the OVA's disk onto {ctx.facts.storage}, "
                     f"first boot on {candidates[0]}")
        # the host changes the import needs, undone once it ended, done or failed (a retry adds them
        # again); an interrupted run leaves them to its resume: the import may still be running
        try:
            await hostchanges.open_storage(ctx, client, await client.node_facts(node), hostcheck.ova_parts(ctx.answers)[0])
            vm = await client.create_vm(node, config, on_progress=ctx.progress)
        except asyncio.CancelledError:
            raise
        except BaseException:
            await hostchanges.revert(ctx, client)
            raise
        await hostchanges.revert(ctx, client)
        ctx.emit(VmCreated(vmid=vm.vmid, node=vm.node, name=name, config=config))
    await _resize(ctx, client, vm)
    return {"vmid": vm.vmid, "node": vm.node, "vm_name": name, "boot_candidates": candidates}


async def _resize(ctx: RunContext, client: ProxmoxClient, vm: VmRef) -> None:
    disk_gib = int(ctx.facts.disk_gib or 0)
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


VM_NEEDS = ("node", "vmid")  # the facts a step that acts on the VM needs
GUEST_NEEDS = (*VM_NEEDS, "guest_address")  # and one that works in its guest


def vm_ref(ctx: RunContext) -> VmRef:
    """This run's VM, as create_vm (or a resume's journal) left it in the facts."""
    node, vmid = ctx.facts.node, ctx.facts.vmid
    if node is None or vmid is None:  # a step that uses the VM declares needs=VM_NEEDS: the engine checks
        raise RunFailed(f"internal: step {ctx.current_step} needs the VM, which no earlier step created")
    return VmRef(node=node, vmid=int(vmid), name=ctx.answers.vm.name)


async def recheck_vm(ctx: RunContext) -> bool:
    """On resume: our VM must still exist (with our tag and claim) where the journal says it is."""
    client = await proxmox_client(ctx)
    vm = await find_own_vm(ctx, client)
    return vm is not None and vm.vmid == ctx.facts.vmid


# --- first_boot ----------------------------------------------------------------------------------


UNSEEN_HINT = ("set guest.address to the VM's IP (see its console), or run vast-loopback on a machine on the "
               "bridge's layer 2, or use an SDN VNet with IPAM and DHCP")


def _unseen(vm: VmRef, within_s: float) -> str:
    return (f"VM {vm.vmid} showed no address vast-loopback can see within {within_s / 60:g} min "
            "(no IPAM entry, no answer to its MAC in this machine's neighbour table, no guest agent)")


async def resolve_address(ctx: RunContext, client: ProxmoxClient, vm: VmRef, *,
                          timeout_s: float = BOOT_WAIT_S) -> guestaddr.Resolved:
    """The guest's address, from the first source a real host has (backend/steps/guestaddr.py), within
    `timeout_s` of target time."""
    resolved = await guestaddr.resolve(ctx, client, vm, timeout_s=timeout_s)
    if resolved is None:
        raise RunFailed(_unseen(vm, timeout_s), hint=UNSEEN_HINT)
    return resolved


class GuestNotUp(RunFailed):
    """The guest did not come up within the bound."""


async def guest_came_up(ctx: RunContext, client: ProxmoxClient, vm: VmRef, within_s: float) -> guestaddr.Resolved:
    """The guest's address once it has one and sshd answers, within `within_s` target seconds of
    now; else GuestNotUp. Any address source works (backend/steps/guestaddr.py keeps looking while the
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
    vm = vm_ref(ctx)
    candidates = list(ctx.facts.boot_candidates
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
        status = await client.status(vm_ref(ctx))
    except ProxmoxApiError as exc:
        if exc.status in (404, 500):
            return False
        raise
    return status.get("status") == "running"


def steps() -> list[Step]:
    return [
        Step("connect", "Connect to Proxmox", "provision", run_connect, recheck_connect,
             produces=("node", "pve_version", "host", "local_networks")),
        Step("size", "Check the sizing", "provision", run_size, needs=("host",),
             produces=("vcpus", "memory_gib", "disk_gib", "storage", "numa", "sockets", "bridge")),
        Step("ova", "Find the OVA", "provision", run_ova, needs=("node",),
             produces=("ova_disks", "ova_disk_bytes", "ova_disk_bus")),
        Step("create_vm", "Create the VM", "provision", run_create_vm, recheck_vm,
             needs=("node", "vcpus", "memory_gib", "disk_gib", "storage", "bridge", "ova_disks"),
             produces=("vmid", "node", "vm_name", "boot_candidates")),
        Step("first_boot", "First boot", "provision", run_first_boot, recheck_first_boot, needs=VM_NEEDS,
             produces=("guest_address", "address_source", "boot_controller")),
    ]
