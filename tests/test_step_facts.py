"""Typed step facts (backend/run/facts.py): every need of the plan has a producer before it, the
engine refuses a step whose needs are missing, and a journal written before the facts were typed
(dict results, keys no field names) still resumes."""

from __future__ import annotations

import asyncio
import json

from backend import events as ev
from backend.clock import Clock
from backend.model import vmconfig
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import Engine, RunContext, RunOptions, Step
from backend.run.facts import FACT_NAMES, Facts
from backend.run.journal import Journal, RunDir
from backend.run.plan import build_plan
from backend.secrets import Secret
from backend.steps.recovery import recovery_steps
from backend.target import Target
from tests.conftest import SEED


def _ctx(run: RunDir, seen: list, resume: bool) -> tuple[RunContext, Journal]:
    bus = EventBus()
    journal = Journal(run)
    bus.subscribe(journal)
    bus.subscribe(seen.append)
    target = Target(label="t", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                    clock=Clock.wall())
    return RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=target, bus=bus, run=run, options=RunOptions(resume=resume)), journal


def _chain_holds(steps: list[Step]) -> list[str]:
    known: set[str] = set()
    broken = []
    for step in steps:
        broken += [f"{step.id} needs {name}" for name in step.needs if name not in known]
        known |= set(step.produces)
    return broken


def test_every_need_of_the_plan_and_of_a_retry_is_produced_by_an_earlier_step():
    plan = build_plan()
    assert not _chain_holds(plan)
    assert not _chain_holds(plan + recovery_steps(2, {"vcpus": 12}))
    for step in plan:
        assert set(step.needs) <= FACT_NAMES and set(step.produces) <= FACT_NAMES, step.id
    assert any(step.needs for step in plan) and any(step.produces for step in plan)


def test_a_step_whose_needs_no_earlier_step_produced_is_refused_before_it_starts(tmp_path):
    ran = []

    async def boot(ctx):
        ran.append("boot")

    seen: list = []
    ctx, journal = _ctx(RunDir.create(tmp_path / "run"), seen, resume=False)
    code = asyncio.run(Engine(ctx, [Step("boot", "Boot", "provision", boot, needs=("node", "vmid"))]).run())
    journal.close()
    assert code == 1 and not ran
    finished = [e for e in seen if isinstance(e, ev.RunFinished)][0]
    assert "boot needs node, vmid" in finished.message
    assert not [e for e in seen if isinstance(e, ev.StepStarted)]


def test_facts_round_trip_the_journals_dict_form_and_keep_unknown_keys():
    facts = Facts.from_results([
        {"node": "pve", "pve_version": "9.1.3", "host": SEED.to_dict(), "local_networks": {"networks": []}},
        {"vcpus": 12, "memory_gib": 120, "disk_gib": 1000, "storage": "local-lvm", "numa": False, "sockets": 1,
         "bridge": "vmbr0"},
        {"tuned_stage1": ["a", "b"], "some_old_key": 3},
    ])
    assert facts.host == SEED and facts.vcpus == 12 and facts.extra == {"tuned_stage1": ["a", "b"], "some_old_key": 3}
    again = Facts.from_results([json.loads(json.dumps(facts.to_dict()))])
    assert again == facts


def test_a_journal_written_before_typed_facts_resumes(tmp_path):
    """A run directory as runs before this change left it: StepFinished results are plain dicts
    (with keys that are now typed and keys no field names); the resume skips the finished steps,
    takes their facts, and the next step sees them typed."""
    run = RunDir.create(tmp_path / "run")
    old = [
        {"type": "RunStarted", "ts": 1.0, "run_id": run.run_id, "target": "https://x", "vm_name": "vast-loopback",
         "resumed": False, "clock": {}, "version": "0.1.0"},
        {"type": "StepStarted", "ts": 2.0, "step": "create_vm", "title": "Create the VM", "group": "provision"},
        {"type": "StepFinished", "ts": 3.0, "step": "create_vm", "ok": True,
         "result": {"vmid": 104, "node": "pve", "vm_name": "vast-loopback", "boot_candidates": ["pvscsi"],
                    "legacy_note": "kept"}},
    ]
    with open(run.path / "events.jsonl", "a") as out:
        out.writelines(json.dumps(e) + "\n" for e in old)
    seen_vm = []

    async def create(ctx):
        raise AssertionError("a finished step does not run again")

    async def first_boot(ctx):
        seen_vm.append((ctx.facts.node, ctx.facts.vmid, ctx.facts.boot_candidates, ctx.facts.extra))

    seen: list = []
    ctx, journal = _ctx(run, seen, resume=True)
    steps = [Step("create_vm", "Create the VM", "provision", create, produces=("vmid", "node")),
             Step("first_boot", "First boot", "provision", first_boot, needs=("node", "vmid"))]
    code = asyncio.run(Engine(ctx, steps).run())
    journal.close()
    assert code == 0
    assert seen_vm == [("pve", 104, ["pvscsi"], {"legacy_note": "kept"})]


def test_vcpus_become_cores_in_one_place():
    assert vmconfig.cpu_layout(24, 2) == {"sockets": 2, "cores": 12}
    assert vmconfig.vcpus_of({"sockets": 2, "cores": 12}) == 24
    assert vmconfig.vcpus_of({"vcpus": 10, "sockets": 1, "cores": 12}) == 10
    assert vmconfig.vcpus_of({"cores": "8"}) == 8 and vmconfig.vcpus_of({}) is None
