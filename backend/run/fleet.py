"""A class: N loopback clusters across a Proxmox VE cluster, planned, brought up, watched, torn down.

The Proxmox cluster is the engine: its API places, imports and runs the VMs; this module only
decides where (backend/placement.py, with the sizing rules), starts N ordinary runs and follows them.
Each member is the single run, step for step: its own run directory under the fleet's (resumable
alone with `--resume`), its own journal, the same plan, diagnosis and retry (`runner.run`). What
the fleet adds:
- member i is `<vm.name>-i` with cluster `<vast.cluster_name>-i`, on the node the plan gave it;
- one target for all members (one connection to the cluster; its provider keeps its state once, in
  the fleet directory, and each member's run.json names it so a member resumes alone on it);
- the OVA import (the `create_vm` step, the disk-heavy part) waits for its turn: one at a time per
  node and per storage (the OVA's and the VM disk's; a shared storage is one for every node);
  everything else runs in parallel;
- a fleet journal: DIR/fleet.json (the plan and the members) and DIR/fleet.jsonl (one line per
  member that started, finished, was retried or cleaned up).
`status`, `down` and `destroy` read the runs' journals and the live cluster; a VM is ours only when
its description carries the run's claim (vmconfig.claimed_by), never by its name alone.
SEAM (front door): `_member_run` composes a run as tui/headless.py does; with the engine's front
door it becomes a call to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend import events as ev
from backend.clients.proxmox import ProxmoxClient, VmRef
from backend.errors import BadInput, RunFailed
from backend.model import answers as answers_mod
from backend.model import sizing, vmconfig
from backend.model.answers import CLUSTER_NAME, DNS_NAME, Answers
from backend.model.hostfacts import NodeFacts
from backend.model.placement import Member, NodeLoad, Placement, place
from backend.run import attempts as runner
from backend.run.bus import EventBus
from backend.run.engine import RunContext, RunOptions, Step
from backend.run.journal import (
    ANSWERS,
    COMPLETE_OUTCOMES,
    Journal,
    RunDir,
    default_runs_root,
    journal_failure,
    new_run_id,
)
from backend.run.runlock import RunLock
from backend.run.safefiles import make_private_dir, write_private
from backend.run.service import state_dir_of
from backend.steps import hostcheck
from backend.target import Target, TargetOptions, default_speed, open_target

FLEET_META = "fleet.json"
FLEET_EVENTS = "fleet.jsonl"
SHARED_STATE = "target"  # the target provider's own state, shared by every member
MAX_MEMBERS = 64
IMPORT_STEP = "create_vm"
IMPORTS_PER_NODE = 1
IMPORTS_PER_STORAGE = 1

# (member name, its bus) when a member starts: the CLI subscribes its printer, the TUI its session; it
# may return a callable that gets the member's exit code when the member ends.
MemberHook = Callable[[str, EventBus], "Callable[[int], None] | None"]


def is_fleet(path: str | Path) -> bool:
    return (Path(path) / FLEET_META).is_file()


# --- the plan ------------------------------------------------------------------------------------


def member_name(base: str, index: int) -> str:
    return f"{base}-{index}"


def check_count(answers: Answers, count: int) -> None:
    """Bad input before anything is read: a count out of range, member names Proxmox or VAST refuse."""
    if not 1 <= count <= MAX_MEMBERS:
        raise BadInput(f"--count {count}: a class has 1 to {MAX_MEMBERS} members")
    name, cluster = member_name(answers.vm.name, count), member_name(answers.vast.cluster_name, count)
    if len(name) > 63 or not DNS_NAME.match(name):
        raise BadInput(f"vm.name: the members' VM names ({name}) are longer than Proxmox's 63 characters",
                       hint="shorten vm.name")
    if not CLUSTER_NAME.match(cluster):
        raise BadInput(f"vast.cluster_name: the members' cluster names ({cluster}) break VAST's rule "
                       "(a letter first; letters, digits, '-' and '_'; at most 32)", hint="shorten vast.cluster_name")


def member_answers(answers: Answers, index: int, node: str, member: Member, vmid: int) -> Answers:
    """Member `index`'s answers: its names, its node, the plan's size (never 'auto': every member
    is sized alike) and its own VMID (members created at once would all be given the same next
    free one)."""
    vm = answers.vm.model_copy(update={
        "name": member_name(answers.vm.name, index), "vcpus": member.vcpus, "memory_gib": member.memory_gib,
        "disk_gib": member.disk_gib, "storage": member.storage, "vmid": vmid})
    vast = answers.vast.model_copy(update={"cluster_name": member_name(answers.vast.cluster_name, index)})
    proxmox = answers.proxmox.model_copy(update={"node": node})
    return answers.model_copy(update={"vm": vm, "vast": vast, "proxmox": proxmox})


async def read_loads(client: ProxmoxClient, answers: Answers) -> tuple[list[NodeLoad], Member]:
    """Every node as placement sees it (facts, running VMs, the OVA, sizing) and the members' size:
    the answers', 'auto' resolved on the node the single run would pick."""
    inventory = await client.inventory()
    online = [n for n in inventory.nodes if n.online]
    best = sizing.pick_node(inventory)
    if best is None:
        raise RunFailed("no Proxmox node is online", hint="nodes: " + (", ".join(n.node for n in inventory.nodes)
                                                                      or "none"))
    chosen = hostcheck.proposal(best, answers)
    member = Member(chosen.vcpus, chosen.memory_gib, chosen.disk_gib, chosen.storage or answers.vm.storage)
    sized = answers.model_copy(update={"vm": answers.vm.model_copy(update={
        "vcpus": member.vcpus, "memory_gib": member.memory_gib, "disk_gib": member.disk_gib,
        "storage": member.storage})})
    vms = await client.vms()
    imports = await hostcheck.read_imports(client, inventory)
    loads = []
    for node in online:
        running = [r for r in vms if r.get("node") == node.node and r.get("status") == "running"]
        ova = [f for f in hostcheck.ova_findings(node, sized, imports) if f.severity == "blocker"]
        found = [*sizing.evaluate(node, hostcheck.proposal(node, sized)).findings, *hostcheck.host_findings(node, sized)]
        blockers = [f for f in found if f.severity == "blocker" and not f.id.startswith("storage-")]
        loads.append(NodeLoad(
            facts=node,
            running_vcpus=sum(int(r.get("maxcpu") or 0) for r in running),
            running_maxmem=sum(int(r.get("maxmem") or 0) for r in running),
            running_mem=sum(int(r.get("mem") or 0) for r in running),
            ova_missing=f"OVA: {ova[0].message}" if ova else "",
            blocker=f"sizing: {blockers[0].message}" if blockers else ""))
    return loads, member


async def member_vmids(client: ProxmoxClient, answers: Answers, count: int) -> list[int]:
    """A VMID per member: from the answers' vm.vmid (or the cluster's next free one) up, skipping
    the VMIDs in use."""
    used = {int(r.get("vmid", -1)) for r in await client.vms()}
    vmid = answers.vm.vmid if answers.vm.vmid is not None else await client.next_vmid()
    ids: list[int] = []
    while len(ids) < count:
        if vmid not in used:
            ids.append(vmid)
        vmid += 1
    return ids


async def plan(answers: Answers, target: Target, count: int) -> Placement:
    check_count(answers, count)
    client = await ProxmoxClient.connect(target)
    try:
        loads, member = await read_loads(client, answers)
    finally:
        await client.close()
    return place(loads, member, count)


def plan_dict(answers: Answers, placement: Placement) -> dict:
    m = placement.member
    return {
        "count": placement.count, "fits": placement.fits, "ok": placement.ok,
        "members": [{"name": member_name(answers.vm.name, i), "cluster_name": member_name(answers.vast.cluster_name, i),
                     "node": node, "vcpus": m.vcpus, "memory_gib": m.memory_gib, "disk_gib": m.disk_gib,
                     "storage": m.storage} for i, node in enumerate(placement.nodes_of, 1)],
        "nodes": [u.to_dict() for u in placement.use],
        "limits": placement.limits,
        "refusals": {node: [why for _, why in reasons] for node, reasons in placement.refusals.items()},
        "summary": placement.summary(),
    }


# --- the fleet journal -------------------------------------------------------------------------


@dataclass
class FleetDir:
    path: Path

    @property
    def meta_path(self) -> Path:
        return self.path / FLEET_META

    @property
    def state_dir(self) -> Path:
        return self.path / SHARED_STATE

    @classmethod
    def create(cls, path: str | Path) -> FleetDir:
        target = Path(path)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise BadInput(f"{target} is not a new or empty directory",
                           hint=f"resume a fleet with: fleet up --resume {target}")
        try:
            make_private_dir(target)
        except OSError as exc:
            raise BadInput(f"cannot make the fleet directory {target}: {exc.strerror or exc}") from None
        return cls(target)

    @classmethod
    def open(cls, path: str | Path) -> FleetDir:
        fleet = cls(Path(path))
        if not fleet.meta_path.is_file():
            raise BadInput(f"{path} is not a fleet directory (no {FLEET_META})",
                           hint="give the --run-dir of a `fleet up`")
        return fleet

    def read(self) -> dict:
        try:
            data = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{self.meta_path}: cannot read it ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("members"), list):
            raise BadInput(f"{self.meta_path}: not a fleet journal (no member list)")
        return data

    def write(self, data: dict) -> None:
        write_private(self.meta_path, json.dumps(data, indent=2, sort_keys=True))

    def note(self, member: str, what: str, **details: object) -> None:
        line = json.dumps({"ts": time.time(), "member": member, "event": what, **details}, default=str)
        with open(self.path / FLEET_EVENTS, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def members(self) -> list[dict]:
        rows = []
        for entry in self.read()["members"]:
            name = str(entry.get("name", ""))
            if not DNS_NAME.match(name) or "/" in name:
                raise BadInput(f"{self.meta_path}: member name {name[:40]!r} is not a VM name")
            rows.append({**entry, "run_dir": self.path / name})
        return rows


# --- fleet up --------------------------------------------------------------------------------


@dataclass
class ImportSlots:
    """One OVA import at a time per node and per storage (shared storages count once for all nodes)."""

    per_node: int = IMPORTS_PER_NODE
    per_storage: int = IMPORTS_PER_STORAGE
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def keys(self, node: NodeFacts | None, node_name: str, storages: tuple[str, ...]) -> list[str]:
        keys = [f"node/{node_name}"]
        for name in storages:
            store = node.storage(name) if node is not None else None
            keys.append(f"storage/{name}" if store is not None and store.shared else f"storage/{node_name}/{name}")
        return sorted(set(keys))

    def slot(self, key: str) -> asyncio.Semaphore:
        if key not in self._slots:
            self._slots[key] = asyncio.Semaphore(self.per_node if key.startswith("node/") else self.per_storage)
        return self._slots[key]


def _gated(step: Step, slots: ImportSlots) -> Step:
    """The import step, waiting for its node's and storages' import slots (in one order: no deadlock)."""

    async def run(ctx: RunContext) -> dict | None:
        node = ctx.facts.host
        node_name = str(ctx.facts.node or ctx.answers.proxmox.node)
        storages = (vmconfig.split_volid(ctx.answers.ova)[0], str(ctx.facts.storage or ctx.answers.vm.storage))
        keys = slots.keys(node, node_name, storages)
        async with contextlib.AsyncExitStack() as stack:
            busy = [k for k in keys if slots.slot(k).locked()]
            if busy:
                ctx.progress("waiting for the OVA import slot (" + ", ".join(busy) + "): another member is importing")
            for key in keys:
                await stack.enter_async_context(slots.slot(key))
            return await step.run(ctx)

    return Step(step.id, step.title, step.group, run, step.recheck)


async def _member_run(answers: Answers, run: RunDir, target: Target, options: RunOptions, slots: ImportSlots,
                      name: str, on_member: MemberHook | None) -> int:
    """One member: the single run's composition (journal, bus, context, runner.run) on the shared
    target, with its import step gated."""
    journal = Journal(run)
    bus = EventBus(target.clock)
    bus.subscribe(journal)
    ended = on_member(name, bus) if on_member is not None else None
    ctx = RunContext(answers=answers, target=target, bus=bus, run=run, options=options)
    journal.on_failure = lambda exc: ctx.halt(journal_failure(exc))
    steps = [_gated(s, slots) if s.id == IMPORT_STEP else s for s in runner.resume_plan(ctx)]
    code = 1
    try:
        code = await runner.run(ctx, steps)
    finally:
        journal.close()
        if journal.failure is not None:
            run.mark_stopped(journal_failure(journal.failure))
            code = 1
        if ended is not None:
            ended(code)
    return code


@dataclass
class FleetOptions:
    speed: float | None = None
    retry_on_failure: bool = False
    force: bool = False


def default_fleet_dir(answers: Answers) -> Path:
    """Where a fleet goes when no directory is given: next to the runs, named like one."""
    return default_runs_root() / new_run_id(f"{answers.vm.name}-class")


async def up(answers: Answers, count: int, run_dir: str | Path | None, options: FleetOptions,
             on_member: MemberHook | None = None, on_plan: Callable[[dict], None] | None = None,
             answers_source: str = "") -> int:
    """Plan, then start every member in parallel; 0 only when all of them are done (ONLINE).
    The answers' secrets must have been checked (`answers.check_secrets`) by the caller."""
    check_count(answers, count)
    fleet = FleetDir.create(run_dir or default_fleet_dir(answers))
    lock = RunLock.acquire(fleet.path)
    speed = options.speed or default_speed(answers.proxmox.url)
    try:
        target = await open_target(answers, TargetOptions(speed=speed, state_dir=fleet.state_dir.resolve()))
        try:
            client = await ProxmoxClient.connect(target)
            try:
                loads, member = await read_loads(client, answers)
                vmids = await member_vmids(client, answers, count)
            finally:
                await client.close()
            placement = place(loads, member, count)
            planned = plan_dict(answers, placement)
            if on_plan is not None:
                on_plan(planned)
            if not placement.ok:
                fleet.write({"count": count, "plan": planned, "members": [], "status": "blocked"})
                return 3
            members = []
            for index, node in enumerate(placement.nodes_of, 1):
                mine = member_answers(answers, index, node, member, vmids[index - 1])
                run = RunDir.create(fleet.path / mine.vm.name, mine.vm.name)
                answers_mod.save(mine, run.path / ANSWERS)
                run.update_meta(speed=speed, force=options.force, until=None,
                                retry_on_failure=options.retry_on_failure,
                                answers_source=answers_source, fleet=str(fleet.path.resolve()),
                                target_state=str(fleet.state_dir.resolve()))
                members.append({"name": mine.vm.name, "node": node, "run_id": run.run_id})
            fleet.write({"count": count, "speed": speed, "retry_on_failure": options.retry_on_failure,
                         "force": options.force, "answers_source": answers_source,
                         "plan": planned, "members": members, "status": "running"})
            return await _run_members(fleet, target, resume=False, on_member=on_member)
        finally:
            await target.close()
    finally:
        lock.release()


async def resume(run_dir: str, options: FleetOptions, on_member: MemberHook | None = None) -> int:
    """Resume every unfinished member of a fleet on one target."""
    fleet = FleetDir.open(run_dir)
    lock = RunLock.acquire(fleet.path)
    try:
        meta = fleet.read()
        members = fleet.members()
        if not members:
            raise BadInput(f"{fleet.path}: the fleet has no members (its plan did not fit)",
                           hint="start a new fleet with fewer members")
        unfinished = [m for m in members
                      if RunDir.open(m["run_dir"]).read_meta().get("outcome") not in COMPLETE_OUTCOMES]
        if not unfinished:
            for entry in members:
                fleet.note(entry["name"], "already-finished")
            return 0
        first = answers_mod.load_saved(members[0]["run_dir"] / ANSWERS)
        answers_mod.check_secrets(first, strict=False)
        speed = options.speed or float(meta.get("speed") or default_speed(first.proxmox.url))
        target = await open_target(first, TargetOptions(speed=speed, state_dir=fleet.state_dir.resolve(),
                                                        resume=True))
        try:
            return await _run_members(fleet, target, resume=True, on_member=on_member,
                                      retry=options.retry_on_failure)
        finally:
            await target.close()
    finally:
        lock.release()


async def _run_members(fleet: FleetDir, target: Target, *, resume: bool, on_member: MemberHook | None,
                       retry: bool = False) -> int:
    slots = ImportSlots()

    async def one(entry: dict) -> int:
        name = entry["name"]
        run = RunDir.open(entry["run_dir"])
        lock = RunLock.acquire(run.path)
        try:
            meta = run.read_meta(required=True)
            if resume and meta.get("outcome") in COMPLETE_OUTCOMES:
                fleet.note(name, "already-finished", outcome=meta.get("outcome"))
                return 0
            answers = answers_mod.load_saved(run.path / ANSWERS)
            again = resume and bool(run.finished_steps() or meta.get("outcome"))
            retry_on_failure = retry or bool(meta.get("retry_on_failure"))
            run.update_meta(status="running", outcome=None, message=None, retry_on_failure=retry_on_failure)
            options = RunOptions(force=bool(meta.get("force")), retry_on_failure=retry_on_failure, resume=again)
            fleet.note(name, "resumed" if again else "started", node=answers.proxmox.node, run_id=run.run_id)
            code = await _member_run(answers, run, target, options, slots, name, on_member)
            final = run.read_meta()
            fleet.note(name, "finished", exit_code=code, outcome=final.get("outcome"),
                       attempts=len(final.get("attempts") or []) + 1)
            return code
        finally:
            lock.release()

    codes = await asyncio.gather(*(one(entry) for entry in fleet.members()), return_exceptions=True)
    results = []
    for entry, code in zip(fleet.members(), codes, strict=True):
        if isinstance(code, BaseException):
            if isinstance(code, asyncio.CancelledError):
                raise code
            fleet.note(entry["name"], "failed-to-start", error=str(code)[:300])
            code = getattr(code, "exit_code", 1)
        results.append(code)
    meta = fleet.read()
    meta["status"] = "done" if all(c == 0 for c in results) else "failed"
    fleet.write(meta)
    return 0 if all(c == 0 for c in results) else 1


# --- status, down, destroy --------------------------------------------------------------------


def _journal_view(run: RunDir) -> dict:
    """What a member's journal says: node, vmid, phase, cluster state, guest address, outcome."""
    view: dict = {"node": "", "vmid": None, "phase": "", "state": "", "address": "", "outcome": ""}
    for event in run.events():
        match event:
            case ev.StepStarted():
                view["phase"] = event.title
            case ev.VmCreated() | ev.VmFound():
                view["node"], view["vmid"] = event.node, event.vmid
            case ev.ClusterStateChanged():
                view["state"] = event.state
            case ev.GuestAddressResolved():
                view["address"] = event.address
            case ev.RunFinished():
                view["outcome"] = event.outcome
    meta = run.read_meta()
    view["outcome"] = meta.get("outcome") or view["outcome"] or meta.get("status", "")
    view["run_id"] = meta.get("id", "")
    return view


async def claimed_vms(client: ProxmoxClient, run_ids: set[str]) -> dict[str, list[tuple[VmRef, str]]]:
    """run id -> [(VM, status)] of the cluster's VMs tagged as ours whose claim names that run."""
    found: dict[str, list[tuple[VmRef, str]]] = {}
    for row in await client.vms():
        if not vmconfig.has_tag(row.get("tags")):
            continue
        vm = VmRef(node=str(row.get("node", "")), vmid=int(row["vmid"]), name=str(row.get("name", "")))
        owner = await client.vm_owner(vm)
        if owner in run_ids:
            found.setdefault(owner, []).append((vm, str(row.get("status", ""))))
    return found


async def _open_for(run_path: Path, *, speed: float | None) -> tuple[Answers, Target]:
    """The target of a finished (or stopped) run, opened again on its recorded state."""
    run = RunDir.open(run_path)
    meta = run.read_meta(required=True)
    answers = answers_mod.load_saved(run.path / ANSWERS)
    recorded = meta.get("speed")
    if isinstance(recorded, bool) or not isinstance(recorded, int | float) or not 1 <= recorded <= 10_000:
        recorded = default_speed(answers.proxmox.url)
    target = await open_target(answers, TargetOptions(speed=speed or float(recorded),
                                                      state_dir=state_dir_of(run, answers), resume=True))
    return answers, target


async def status(run_dir: str, *, speed: float | None = None) -> dict:
    """A row per member from its journal and the live cluster (its claimed VM, if any)."""
    fleet = FleetDir.open(run_dir)
    members = fleet.members()
    rows = []
    for entry in members:
        run = RunDir.open(entry["run_dir"])
        rows.append({"name": entry["name"], "run_dir": str(run.path), **_journal_view(run)})
    live: dict[str, list[tuple[VmRef, str]]] = {}
    if members:
        _, target = await _open_for(members[0]["run_dir"], speed=speed)
        try:
            client = await ProxmoxClient.connect(target)
            try:
                live = await claimed_vms(client, {r["run_id"] for r in rows if r["run_id"]})
            finally:
                await client.close()
        finally:
            await target.close()
    for row in rows:
        vms = live.get(row["run_id"], [])
        row["vm"] = [{"node": vm.node, "vmid": vm.vmid, "status": state} for vm, state in vms]
        if vms:
            row["node"], row["vmid"] = vms[0][0].node, vms[0][0].vmid
        else:
            row["vmid"] = None
            row["state"] = "no VM"
        row["vms_url"] = f"https://{row['address']}" if row["address"] and vms else ""
    return {"fleet": str(fleet.path), "members": [r for r in rows if r["vm"]], "all": rows,
            "vms_left": sum(len(r["vm"]) for r in rows)}


async def destroy_runs(run_paths: list[Path], *, speed: float | None = None,
                       on_vm: Callable[[str, VmRef], None] | None = None) -> dict[str, dict]:
    """Stop and delete every VM these runs claimed (disks and snapshots go with it); record in each
    run's run.json what was deleted and what was left, and why."""
    if not run_paths:
        return {}
    runs = {p: RunDir.open(p) for p in run_paths}
    ids = {p: str(r.read_meta(required=True).get("id", "")) for p, r in runs.items()}
    _, target = await _open_for(run_paths[0], speed=speed)
    results: dict[str, dict] = {}
    try:
        client = await ProxmoxClient.connect(target)
        try:
            live = await claimed_vms(client, {i for i in ids.values() if i})
            for path, run in runs.items():
                deleted, left = [], []
                for vm, state in live.get(ids[path], []):
                    try:
                        if state == "running":
                            await client.stop(vm)
                        await client.destroy(vm)
                        deleted.append({"node": vm.node, "vmid": vm.vmid, "name": vm.name})
                        if on_vm is not None:
                            on_vm(run.path.name, vm)
                    except RunFailed as exc:
                        left.append({"node": vm.node, "vmid": vm.vmid, "name": vm.name, "why": str(exc)[:300]})
                cleanup = {"deleted": deleted, "left": left, "at": time.time()}
                run.update_meta(cleanup=cleanup)
                results[str(run.path)] = cleanup
        finally:
            await client.close()
    finally:
        await target.close()
    return results


async def down(run_dir: str, *, speed: float | None = None,
               on_vm: Callable[[str, VmRef], None] | None = None) -> dict[str, dict]:
    fleet = FleetDir.open(run_dir)
    lock = RunLock.acquire(fleet.path)
    try:
        results = await destroy_runs([m["run_dir"] for m in fleet.members()], speed=speed, on_vm=on_vm)
        for path, cleanup in results.items():
            fleet.note(Path(path).name, "down", deleted=[d["vmid"] for d in cleanup["deleted"]],
                       left=[d["vmid"] for d in cleanup["left"]])
        return results
    finally:
        lock.release()


# --- the class report ------------------------------------------------------------------------------


def class_report(run_dir: str) -> tuple[list[dict], Path]:
    """Each member's own report, and DIR/report.md: a row per member linking it."""
    from backend.analysis.report import save_report

    fleet = FleetDir.open(run_dir)
    rows = []
    for entry in fleet.members():
        run = RunDir.open(entry["run_dir"])
        data, path = save_report(run)
        events = list(run.events())
        started = next((e.ts for e in events if isinstance(e, ev.RunStarted)), None)
        online = next((e.ts for e in events if isinstance(e, ev.ClusterStateChanged) and e.state == "ONLINE"), None)
        meta = run.read_meta()
        rows.append({
            "name": entry["name"], "node": entry.get("node", ""),
            "time_to_online_s": round(online - started, 1) if online is not None and started is not None else None,
            "peak_memory_gib": data["memory"]["used_gib"]["max"],
            "max_steal_pct": data["cpu"]["steal_pct"]["max"],
            "worst_stall_ms": data["heartbeat"].get("max_stall_ms"),
            "outcome": meta.get("outcome") or meta.get("status", ""),
            "cluster_state": data["cluster"]["final_state"],
            "report": str(path.relative_to(fleet.path)),
        })
    path = fleet.path / "report.md"
    write_private(path, render_class(fleet, rows))
    return rows, path


def _fmt(value: object, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def render_class(fleet: FleetDir, rows: list[dict]) -> str:
    from backend.analysis.report import duration

    online = sum(1 for r in rows if r["cluster_state"] == "ONLINE")
    lines = [f"# Class report: {fleet.path.name}", "",
             f"{online} of {len(rows)} member cluster(s) ONLINE.", "",
             "| Member | Node | Time to ONLINE | Peak memory | Max steal | Worst stall | Outcome | Report |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['node']} | {duration(r['time_to_online_s']) if r['time_to_online_s'] else '-'} "
                     f"| {_fmt(r['peak_memory_gib'], ' GiB')} | {_fmt(r['max_steal_pct'], ' %')} "
                     f"| {_fmt(r['worst_stall_ms'], ' ms', 0)} | {r['outcome']} | [{r['report']}]({r['report']}) |")
    return "\n".join(lines) + "\n"
