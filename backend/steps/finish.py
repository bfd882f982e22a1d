"""Steps of the 'finish' group: prove the cluster survives a reboot, keep it, and explain the run.

    reboot_test      the seed's post-install checklist item "Test reboot and start_vms.sh": reboot the
                     guest, run start_vms.sh as the field did, wait for ONLINE again (backend/steps/restart.py);
                     on by default, `vast: {reboot_test: false}` turns it off
    snapshot_online  the `vast-online` snapshot of the installed, ONLINE cluster (never a second one);
                     never taken of a cluster that did not come back from the reboot
    write_report     report.md in the run directory, from the run's own events and samples

The reboot test resumes at its boundaries: a rerun finds the reboot it already did (the guest's boot
id is the one `GuestRebooted` journaled) and the start_vms.sh job of this boot (it re-attaches).
"""

from __future__ import annotations

import asyncio

from backend.analysis.report import save_report
from backend.events import GuestRebooted, ReportWritten
from backend.run.engine import RunContext, Step
from backend.steps import install, prepare, restart
from backend.steps.provision import GUEST_NEEDS, VM_NEEDS, proxmox_client, vm_ref

SNAPSHOT = "vast-online"
REBOOT_TEST = "Reboot and start_vms.sh"
REBOOT_WHY = "the reboot test: VAST must come back with start_vms.sh"


def _this_boots_reboot(ctx: RunContext, boot_id: str) -> GuestRebooted | None:
    """The reboot test's reboot that brought up the boot the guest runs now, if the journal has it."""
    return next((e for e in reversed(install.attempt_events(ctx)) if isinstance(e, GuestRebooted)
                 and e.why == REBOOT_WHY and e.boot_id == boot_id), None)


async def run_reboot_test(ctx: RunContext) -> dict:
    if not ctx.answers.vast.reboot_test:
        ctx.progress("turned off in the answers (vast.reboot_test: false): no reboot before the snapshot")
        return {"reboot_test": "off"}
    rebooted = _this_boots_reboot(ctx, await prepare.boot_id(ctx))
    if rebooted is None:
        await install.stop_monitor(ctx)  # its SSH session goes with the guest; it starts again after
        ctx.services.pop(install.VMS, None)  # the address may change with the boot
        boot_id = await prepare.reboot_guest(ctx, REBOOT_WHY)
        booted_at = ctx.clock.now()
    else:
        boot_id, booted_at = rebooted.boot_id, rebooted.ts
        ctx.progress("the guest rebooted already in this step; going on from there")
    await install.start_monitor(ctx, down_reason="the guest rebooted", read_record=False)
    result = await restart.restart_vast(ctx, boot_id, booted_at)
    return {"reboot_test": "passed", **result}


async def run_snapshot_online(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = vm_ref(ctx)
    if not any(s.get("name") == SNAPSHOT for s in await client.snapshots(vm)):
        await client.snapshot(vm, SNAPSHOT, f"vast-loopback: {ctx.answers.vast.cluster_name} ONLINE, "
                                            "cluster_deploy completed")
    return {"snapshot_online": SNAPSHOT, "outcome": "online"}


async def recheck_snapshot_online(ctx: RunContext) -> bool:
    client = await proxmox_client(ctx)
    return any(s.get("name") == SNAPSHOT for s in await client.snapshots(vm_ref(ctx)))


def write_report_file(ctx: RunContext) -> str:
    return str(save_report(ctx.run.path)[1])


async def run_write_report(ctx: RunContext) -> dict:
    path = await asyncio.to_thread(write_report_file, ctx)
    ctx.emit(ReportWritten(path=path))
    return {"report": path, "outcome": "online"}


def steps() -> list[Step]:
    return [
        Step("reboot_test", REBOOT_TEST, "finish", run_reboot_test, needs=GUEST_NEEDS),
        Step("snapshot_online", "Snapshot vast-online", "finish", run_snapshot_online, recheck_snapshot_online,
             needs=VM_NEEDS),
        Step("write_report", "Write the deployment analysis report", "finish", run_write_report),
    ]
