"""Steps of the 'prepare' group (see backend/run/plan.py): from the first boot to the `pre-install`
snapshot, host and guest together, as the field engineer did it by hand.

    guest_connect        SSH to the guest (address from the provisioning steps, through the target's
                         route), waiting for sshd with backoff; host key pinned, known or confirmed
    grow_root            the root partition and filesystem grown to the resized disk, checked with df
                         (`RootFilesystemVerified`, see backend/steps/rootgrow.py)
    tune_stage1          guest agent, vmtoolsd off, VirtIO drivers in the initramfs (dracut only
                         when `lsinitrd` does not list them yet)
    tune_stage2          Docker, THP, I/O scheduler, sysctls, limits (still on the first-boot controller)
    shutdown_for_switch  clean shutdown
    switch_controller    VirtIO SCSI single + iothread=1 on the OS disk, q35 (Proxmox API)
    second_boot          start; the guest agent must answer within the boot bound (the guest found its
                         disk on VirtIO); the address now comes from the agent. This cold boot is also
                         the reboot that proves the tuning persists: only what was persisted comes back
    verify_after_reboot  every tuning read back again (`TuningChecked(after_reboot=True)`)
    preflight            the field report's checklist, host + guest; a failing blocker stops here
    snapshot_pre_install the `pre-install` snapshot (never a second one on resume)

All the tuning happens before the controller switch, so the switch's boot is the one reboot that
proves it persists: one boot fewer than tuning, switching, tuning again and rebooting. The cost is
that a tuning lost across a boot and a guest that cannot boot on VirtIO show up in the same boot;
the first is reported per tuning by verify_after_reboot, the second by second_boot.

Every step is idempotent: a rerun checks before it changes anything. The guest connection is a
service opened on first use, so a resumed run reconnects (pinned to the host key it accepted).
A UI that can ask the user about an unknown host key puts an async callable
`(fingerprint) -> bool` into `ctx.services[CONFIRM_HOST_KEY]`; headless runs refuse unknown keys.
"""

from __future__ import annotations

from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient, GuestCredentials
from backend.clients.proxmox import VmRef
from backend.errors import RunFailed
from backend.events import (
    BootAttemptFailed,
    GuestAddressResolved,
    GuestConnected,
    GuestRebooted,
    RootFilesystemVerified,
)
from backend.model import vmconfig
from backend.run.engine import RunContext, Step
from backend.steps import rootgrow, tuning
from backend.steps.preflight import run_preflight
from backend.steps.provision import (
    BOOT_WAIT_S,
    GUEST_NEEDS,
    VM_NEEDS,
    power_recheck_applies,
    proxmox_client,
    vm_ref,
)

GUEST = "guest"
CONFIRM_HOST_KEY = "confirm_host_key"
SNAPSHOT = "pre-install"
SSH_WAIT_S = 15 * 60  # target seconds for sshd to come up after a boot
AGENT_POLL_S = 5.0
SHUTDOWN_TIMEOUT_S = 300
BOOT_MARKER = "/run/vast-loopback-boot-marker"  # /run is emptied by every boot


def credentials(ctx: RunContext) -> GuestCredentials:
    answers = ctx.answers.guest
    password = answers.password.resolve("guest.password") if answers.password else ctx.target.guest_password
    key = answers.key.resolve("guest.key", lines=True) if answers.key else None
    return GuestCredentials(user=answers.user, password=password, key=key)


async def guest_client(ctx: RunContext, *, fresh: bool = False) -> GuestClient:
    """The run's SSH connection to the guest, opened on first use (also after a resume)."""
    guest = ctx.services.get(GUEST)
    if guest is not None and not fresh:
        return guest
    if guest is not None:
        await guest.close()
        ctx.services.pop(GUEST, None)
    address = ctx.facts.guest_address
    if address is None:  # the guest steps need it (GUEST_NEEDS): the engine checked
        raise RunFailed(f"internal: step {ctx.current_step} needs the guest's address, which no earlier step found")
    port = ctx.answers.guest.port
    creds = credentials(ctx)
    ctx.progress(f"connecting to {creds.user}@{address} over SSH")
    guest = await GuestClient.connect(
        address, port, creds,
        known_hosts=ctx.target.known_hosts,
        pinned_host_key=ctx.answers.guest.host_key or ctx.facts.guest_host_key,
        confirm_new_host_key=ctx.services.get(CONFIRM_HOST_KEY),
        bus=ctx.bus, clock=ctx.clock,
        label=f"{creds.user}@{address}",
        route=ctx.target.route,
        wait_s=SSH_WAIT_S,
    )
    ctx.services[GUEST] = guest
    ctx.facts.guest_host_key = guest.host_key
    ctx.emit(GuestConnected(address=address, user=creds.user, host_key=guest.host_key))
    return guest


async def _drop_guest(ctx: RunContext) -> None:
    guest = ctx.services.pop(GUEST, None)
    if guest is not None:
        await guest.close()


def _catalog(ctx: RunContext) -> list[tuning.TuningStep]:
    return tuning.catalog(limits=ctx.answers.tuning.limits)


async def _env(ctx: RunContext) -> tuning.TuningEnv:
    guest = await guest_client(ctx)
    return tuning.TuningEnv(guest=guest, user=ctx.answers.guest.user, disk=ctx.facts.os_disk)


async def _tune(ctx: RunContext, steps: list[tuning.TuningStep]) -> dict[str, tuning.Reading]:
    env = await _env(ctx)
    readings = {}
    for index, step in enumerate(steps):
        ctx.progress(step.title, index / len(steps))
        readings[step.id] = await tuning.ensure(step, env, ctx.bus)
    tuning.failing(readings, after_reboot=False)
    if env.disk:
        ctx.facts.os_disk = env.disk
    return readings


async def _wait_for_agent(ctx: RunContext, vm: VmRef, why: str) -> list[str]:
    """Wait for the guest agent to answer; returns the addresses it reports."""
    client = await proxmox_client(ctx)
    started = ctx.clock.now()
    wait = BOOT_WAIT_S
    ctx.progress(f"waiting for the guest agent ({why})")
    while True:
        if await client.agent_ping(vm):
            addresses = await client.guest_addresses(vm)
            if addresses:
                return addresses
        if ctx.clock.now() - started > wait:
            first = ctx.facts.boot_controller or "pvscsi"
            reason = f"its guest agent does not answer after {wait / 60:.0f} min"
            ctx.emit(BootAttemptFailed(vmid=vm.vmid, controller=vmconfig.controller_of(await client.vm_config(vm)),
                                       waited_s=round(ctx.clock.now() - started, 1), reason=reason))
            raise RunFailed(
                f"the guest of VM {vm.vmid} did not come back {why}: {reason}",
                hint="open the VM's console: without the virtio drivers in its initramfs the guest cannot find "
                     f"its disk on VirtIO SCSI (dracut emergency shell); its first-boot controller ({first}) "
                     "boots it again")
        await ctx.clock.sleep(AGENT_POLL_S)


async def _address_from_agent(ctx: RunContext, addresses: list[str]) -> str:
    """The guest's address after a boot: the answers' if fixed, the previous one if the agent still
    reports it, else the agent's first."""
    previous = ctx.facts.guest_address
    if ctx.answers.guest.address != "dhcp":
        address = ctx.answers.guest.address
    elif previous in addresses:
        address = str(previous)
    else:
        address = addresses[0]
    ctx.emit(GuestAddressResolved(address=address, source="guest-agent"))
    ctx.facts.guest_address = address
    return address


# --- the steps ----------------------------------------------------------------------------------


async def run_guest_connect(ctx: RunContext) -> dict:
    guest = await guest_client(ctx, fresh=True)
    return {"guest_host_key": guest.host_key, "guest_user": guest.credentials.user}


async def run_grow_root(ctx: RunContext) -> dict:
    guest = await guest_client(ctx)
    disk_gib = ctx.facts.disk_gib
    ctx.progress("growing the root partition and filesystem to the disk")
    grown = await rootgrow.grow_root(guest, disk_gib=float(disk_gib) if disk_gib else None, progress=ctx.progress)
    ctx.emit(RootFilesystemVerified(**grown))
    ctx.progress(f"/ is {grown['size_gib']:.0f} GiB on {grown['device']} ({grown['fstype']}; "
                 f"{grown['before_gib']:.0f} GiB as imported)")
    return {"root_fs_gib": grown["size_gib"]}


async def run_tune_stage1(ctx: RunContext) -> dict:
    env = await _env(ctx)
    image = await tuning.InitramfsDrivers().check(env)
    had_virtio = image.ok and image.persisted is False  # in the image, and nobody's dracut.conf.d asked for it
    boot_controller = ctx.facts.boot_controller
    if had_virtio and boot_controller and boot_controller != vmconfig.FINAL_CONTROLLER:
        ctx.progress("the OVA's initramfs holds the VirtIO drivers already (lsinitrd): no dracut run; "
                     "`vm.first_boot_controller: virtio-scsi-single` boots such an OVA straight on VirtIO SCSI")
    readings = await _tune(ctx, tuning.stage(_catalog(ctx), 1))
    return {"tuned_stage1": sorted(readings), "virtio_initramfs": readings["virtio-initramfs"].good,
            "initramfs_had_virtio": had_virtio}


async def run_shutdown_for_switch(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    await _drop_guest(ctx)
    ctx.progress("shutting the guest down for the controller switch")
    await client.shutdown(vm, timeout_s=SHUTDOWN_TIMEOUT_S, force_stop=True)
    return {"power": "stopped"}


async def run_switch_controller(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    if not ctx.facts.virtio_initramfs:
        raise RunFailed("refusing to switch to VirtIO SCSI: the virtio drivers were not verified in the initramfs",
                        hint="the guest would not find its disk; rerun so tune_stage1 can add them")
    config = await client.vm_config(vm)
    try:
        changes = vmconfig.final_controller_changes(config)
    except ValueError as exc:
        raise RunFailed(f"cannot switch VM {vm.vmid} to VirtIO SCSI: {exc}") from None
    if changes:
        if (await client.status(vm)).get("status") != "stopped":
            await client.shutdown(vm, timeout_s=SHUTDOWN_TIMEOUT_S, force_stop=True)
        ctx.progress("VirtIO SCSI single, IO thread on the OS disk")
        await client.update_config(vm, changes)
    return {"controller": vmconfig.FINAL_CONTROLLER, "iothread": True}


async def recheck_switch_controller(ctx: RunContext) -> bool:
    client = await proxmox_client(ctx)
    return not vmconfig.final_controller_changes(await client.vm_config(vm_ref(ctx)))


async def run_second_boot(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    await client.start(vm)
    addresses = await _wait_for_agent(ctx, vm, "after the switch to VirtIO SCSI")
    address = await _address_from_agent(ctx, addresses)
    guest = await guest_client(ctx, fresh=True)
    disk = await tuning.find_os_disk(guest)
    size = await guest.run(sh("cat", f"/sys/block/{disk}/size"))
    disk_gib = int(size.stdout.strip()) * 512 / 1024**3 if size.stdout.strip().isdigit() else 0.0
    if disk_gib <= 0:
        raise RunFailed(f"the guest sees no usable OS disk after the switch to VirtIO SCSI ({disk})")
    ctx.progress(f"the guest booted from {disk} ({disk_gib:.0f} GiB) on VirtIO SCSI; the guest agent answers")
    return {"guest_address": address, "address_source": "guest-agent", "os_disk": disk,
            "os_disk_gib": round(disk_gib, 1)}


async def recheck_running(ctx: RunContext) -> bool:
    """On resume: the VM must still be running, unless another step decides its power now (see
    `backend.steps.provision.power_recheck_applies`)."""
    if not power_recheck_applies(ctx):
        return True
    client = await proxmox_client(ctx)
    return (await client.status(vm_ref(ctx))).get("status") == "running"


async def run_tune_stage2(ctx: RunContext) -> dict:
    readings = await _tune(ctx, tuning.stage(_catalog(ctx), 2))
    return {"tuned_stage2": sorted(readings)}


async def _boot_identity(guest: GuestClient) -> tuple[str, bool]:
    result = await guest.run(f"cat /proc/sys/kernel/random/boot_id; test -e {sh(BOOT_MARKER)} && echo marked; true")
    lines = result.stdout.split()
    return (lines[0] if lines and lines[0] != "marked" else ""), "marked" in lines


async def reboot_guest(ctx: RunContext, why: str) -> str:
    """Reboot the guest through the API and reconnect; proven by a new boot id and an emptied /run.
    Emits `GuestRebooted` with the new boot id (`why` says which reboot it was). Returns the boot id."""
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    guest = await guest_client(ctx)
    await guest.run(sh("touch", BOOT_MARKER), sudo=True, check=True)
    boot_id, _ = await _boot_identity(guest)
    await _drop_guest(ctx)
    ctx.progress(f"rebooting: {why}")
    await client.reboot(vm, timeout_s=SHUTDOWN_TIMEOUT_S)
    addresses = await _wait_for_agent(ctx, vm, "after the reboot")
    await _address_from_agent(ctx, addresses)
    guest = await guest_client(ctx, fresh=True)
    new_id, marked = await _boot_identity(guest)
    if marked and new_id == boot_id:
        raise RunFailed(f"VM {vm.vmid} did not reboot: its boot id and /run are unchanged")
    ctx.emit(GuestRebooted(vmid=vm.vmid, boot_id=new_id, why=why))
    return new_id


async def boot_id(ctx: RunContext) -> str:
    """The guest's current boot id (/proc/sys/kernel/random/boot_id)."""
    return (await _boot_identity(await guest_client(ctx)))[0]


async def run_verify_after_reboot(ctx: RunContext) -> dict:
    env = await _env(ctx)
    steps = _catalog(ctx)
    ctx.progress(f"reading back {len(steps)} tunings after the controller-switch boot")
    readings = await tuning.verify_all(steps, env, ctx.bus, after_reboot=True)
    return {"tuning_verified": sorted(readings)}


async def run_preflight_step(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    env = await _env(ctx)
    items = await run_preflight(proxmox=client, vm=vm_ref(ctx), guest=env.guest, env=env,
                                build=ctx.answers.vast.build, bus=ctx.bus, force=ctx.options.force)
    return {"preflight_ok": all(i["ok"] or i.get("overridden") or i["severity"] != "blocker" for i in items)}


async def run_snapshot_pre_install(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    await client.snapshot(vm, SNAPSHOT, "vast-loopback: tuned, verified after a reboot, before the VAST install")
    return {"snapshot_pre_install": SNAPSHOT}


async def recheck_snapshot(ctx: RunContext) -> bool:
    client = await proxmox_client(ctx)
    return any(s.get("name") == SNAPSHOT for s in await client.snapshots(vm_ref(ctx)))


def steps() -> list[Step]:
    return [
        Step("guest_connect", "Connect to the guest over SSH", "prepare", run_guest_connect, needs=GUEST_NEEDS, produces=("guest_host_key", "guest_user")),
        Step("grow_root", "Grow the root filesystem to the disk", "prepare", run_grow_root, needs=GUEST_NEEDS),
        Step("tune_stage1", "Guest agent, vmtoolsd off, VirtIO drivers", "prepare", run_tune_stage1, needs=GUEST_NEEDS, produces=("virtio_initramfs",)),
        Step("tune_stage2", "Docker, THP, I/O scheduler, sysctls, limits", "prepare", run_tune_stage2, needs=GUEST_NEEDS),
        Step("shutdown_for_switch", "Shut down for the controller switch", "prepare", run_shutdown_for_switch, needs=VM_NEEDS),
        Step("switch_controller", "Switch to VirtIO SCSI single with an IO thread", "prepare",
             run_switch_controller, recheck_switch_controller, needs=VM_NEEDS),
        Step("second_boot", "Boot on VirtIO SCSI (the reboot that proves the tuning persists)", "prepare",
             run_second_boot, recheck_running, needs=VM_NEEDS, produces=("guest_address", "os_disk")),
        Step("verify_after_reboot", "Verify every tuning after the reboot", "prepare", run_verify_after_reboot, needs=GUEST_NEEDS),
        Step("preflight", "Preflight checklist", "prepare", run_preflight_step, needs=GUEST_NEEDS),
        Step("snapshot_pre_install", "Snapshot pre-install", "prepare", run_snapshot_pre_install,
             recheck_snapshot, needs=VM_NEEDS),
    ]
