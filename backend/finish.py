"""Steps of the 'finish' group: keep the installed cluster and explain the run.

    snapshot_online  the `vast-online` snapshot of the installed, ONLINE cluster (never a second one)
    write_report     report.md in the run directory, from the run's own events and samples
"""

from __future__ import annotations

import asyncio

from backend.engine import RunContext, Step, require
from backend.events import ReportWritten
from backend.provision import proxmox_client
from backend.proxmox import VmRef
from backend.report import save_report

SNAPSHOT = "vast-online"


def _vm(ctx: RunContext) -> VmRef:
    return VmRef(node=str(require(ctx, "node")), vmid=int(require(ctx, "vmid")), name=ctx.answers.vm.name)


async def run_snapshot_online(ctx: RunContext) -> dict:
    client = await proxmox_client(ctx)
    vm = _vm(ctx)
    if not any(s.get("name") == SNAPSHOT for s in await client.snapshots(vm)):
        await client.snapshot(vm, SNAPSHOT, f"vast-loopback: {ctx.answers.vast.cluster_name} ONLINE, "
                                            "cluster_deploy completed")
    return {"snapshot_online": SNAPSHOT, "outcome": "online"}


async def recheck_snapshot_online(ctx: RunContext) -> bool:
    client = await proxmox_client(ctx)
    return any(s.get("name") == SNAPSHOT for s in await client.snapshots(_vm(ctx)))


def write_report_file(ctx: RunContext) -> str:
    return str(save_report(ctx.run.path)[1])


async def run_write_report(ctx: RunContext) -> dict:
    path = await asyncio.to_thread(write_report_file, ctx)
    ctx.emit(ReportWritten(path=path))
    return {"report": path, "outcome": "online"}


def steps() -> list[Step]:
    return [
        Step("snapshot_online", "Snapshot vast-online", "finish", run_snapshot_online, recheck_snapshot_online),
        Step("write_report", "Write the deployment analysis report", "finish", run_write_report),
    ]
