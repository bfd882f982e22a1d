"""Live diagnosis on the bus, and rollback-and-retry after a diagnosed failure.

`DiagnosisService` feeds every event of a run to `backend.analysis.diagnose.Watcher` and emits what becomes
true as events of their own (`AlertRaised` as soon as a warning sign shows, `DiagnosisMade` when the
run fails), so the dashboard, the headless printer, the journal and the report all see the same
explanation.

`recovery_steps(attempt, changes)` is the plan of a retry: roll back to the `pre-install` snapshot,
apply the remedy to the VM's config through the API (checked against the sizing rules first), boot,
verify every tuning and the preflight again, then the install and finish steps once more, each with
an `@<attempt>` suffix so the journal keeps attempts apart and `--resume` can continue one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from backend.analysis import diagnose
from backend.errors import RunFailed, SizingBlocked
from backend.events import AlertRaised, DiagnosisMade, Event, RemedyApplied
from backend.model import sizing, vmconfig
from backend.run.bus import EventBus
from backend.run.engine import RunContext, Step
from backend.steps import finish, install, prepare
from backend.steps.provision import VM_NEEDS, proxmox_client, vm_ref

MAX_ATTEMPTS = 2


class DiagnosisService:
    """A bus subscriber running the diagnosis watcher live."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.watcher = diagnose.Watcher()
        self._unsubscribe = bus.subscribe(self)

    def __call__(self, event: Event) -> None:
        if isinstance(event, AlertRaised | DiagnosisMade):
            return  # our own output
        for item in self.watcher.feed(event):
            if item.kind == "alert":
                self.bus.emit(item.to_event())

    def replay(self, events: Iterable[Event]) -> None:
        """What a resumed run's journal holds (host facts, VM config, samples...), fed to the watcher
        before the run goes on, so its diagnosis and remedy know the whole run; the alerts they
        raised are in the journal already and are not raised again."""
        for event in events:
            if not isinstance(event, AlertRaised | DiagnosisMade):
                self.watcher.feed(event)

    def conclude(self) -> list[dict]:
        """At a failure: everything the run allows to conclude, emitted as one DiagnosisMade."""
        self.watcher.finish()
        items = [item.to_dict() for item in self.watcher.diagnoses()]
        if items:
            self.bus.emit(DiagnosisMade(items=items))
        return items

    def remedy(self) -> dict:
        """The machine-applicable changes of the most severe diagnosis ({} when there is none)."""
        for item in sorted(self.watcher.diagnoses(), key=lambda i: i.severity != "critical"):
            if item.changes and item.severity == "critical":
                return dict(item.changes)
        return {}

    def close(self) -> None:
        self._unsubscribe()


# --- rollback and retry --------------------------------------------------------------------------


async def _forget_live_state(ctx: RunContext) -> None:
    """The guest goes back to before the install: connections, followers and views start again."""
    for name in (install.LOG_FOLLOWER, install.VMS, install.CLUSTER_VIEW, install.MONITOR, prepare.GUEST):
        service = ctx.services.pop(name, None)
        closer = getattr(service, "close", None)
        if closer is not None:
            result = closer()
            if hasattr(result, "__await__"):
                await result


def remedied(ctx: RunContext, changes: dict) -> dict:
    """The VM config changes for a remedy, refused when the remedy itself would be a sizing blocker."""
    facts = ctx.facts
    vcpus = int(changes.get("vcpus", facts.vcpus or 0))
    memory = int(changes.get("memory_gib", facts.memory_gib or 0))
    node = facts.host
    if node is not None:
        result = sizing.evaluate(node, sizing.Proposal(vcpus, memory, int(facts.disk_gib or 1000), facts.storage))
        blockers = [f for f in result.blockers if f.id.startswith(("vcpus", "memory", "host-memory"))]
        if blockers:
            raise SizingBlocked(f"the remedy ({changes}) is itself blocked: {blockers[0].message}",
                                hint=blockers[0].remedy)
    config: dict = {}
    if "vcpus" in changes:  # the sockets and NUMA of the new vCPU count (sizing.topology)
        layout = sizing.topology(node, vcpus, memory) if node is not None else sizing.Topology(1, vcpus, False, 1)
        config.update({**vmconfig.cpu_layout(vcpus, layout.sockets), "numa": int(layout.numa)})
    if "memory_gib" in changes:
        config.update({"memory": str(memory * 1024), "balloon": 0})
    return config


def _rollback_step(attempt: int) -> Step:
    async def run(ctx: RunContext) -> dict:
        client = await proxmox_client(ctx)
        vm = vm_ref(ctx)
        await _forget_live_state(ctx)
        if (await client.status(vm)).get("status") != "stopped":
            await client.stop(vm)
        await client.rollback(vm, prepare.SNAPSHOT)  # the client emits SnapshotRolledBack
        return {"attempt": attempt}

    return Step(f"rollback@{attempt}", f"Roll back to {prepare.SNAPSHOT} (attempt {attempt})", "recover", run,
                needs=VM_NEEDS)


def _remedy_step(attempt: int, changes: dict) -> Step:
    async def run(ctx: RunContext) -> dict:
        client = await proxmox_client(ctx)
        vm = vm_ref(ctx)
        config = remedied(ctx, changes)
        if not config:
            raise RunFailed(f"the diagnosis names no change to apply ({changes})")
        await client.update_config(vm, config)
        ctx.emit(RemedyApplied(id=f"attempt-{attempt}", changes=dict(changes), attempt=attempt))
        return {**{k: v for k, v in changes.items() if k in ("vcpus", "memory_gib")}, "attempt": attempt}

    return Step(f"remedy@{attempt}", f"Apply the remedy {changes} (attempt {attempt})", "recover", run,
                needs=VM_NEEDS)


def _suffixed(steps: list[Step], attempt: int) -> list[Step]:
    return [dataclasses.replace(step, id=f"{step.id}@{attempt}", title=f"{step.title} (attempt {attempt})")
            for step in steps]


def recovery_steps(attempt: int, changes: dict) -> list[Step]:
    """Roll back, apply the remedy, boot and verify, then install and finish again."""
    by_id = {step.id: step for step in prepare.steps()}
    again = [by_id["second_boot"], by_id["verify_after_reboot"], by_id["preflight"]]
    return [
        _rollback_step(attempt),
        _remedy_step(attempt, changes),
        *_suffixed(again, attempt),
        *_suffixed(install.steps(), attempt),
        *_suffixed(finish.steps(), attempt),
    ]
