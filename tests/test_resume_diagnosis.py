"""A resumed run's diagnosis knows the whole run: the host facts and the VM config journaled before
the crash size its remedy (a run resumed just before its OOM asked for a 131 GiB VM, which the seed
host cannot give, so the retry was blocked instead of going on with the field's 120 GiB VM)."""

from __future__ import annotations

from backend import events as ev
from backend.clock import Clock
from backend.model.answers import Answers
from backend.run import attempts as runner
from backend.run.bus import EventBus
from backend.run.engine import RunContext, RunOptions
from backend.run.journal import Journal, RunDir
from backend.secrets import Secret
from backend.target import Target
from tests.conftest import SEED
from tests.test_diagnose_signatures import T, sample

BEFORE_THE_CRASH = [
    ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
    ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast", config={"cores": 12, "sockets": 1, "memory": 99328}),
    ev.ClusterStateChanged(ts=T + 100, state="INIT"),
    *[sample(T + 101 + i, available_gib=40 - i * 0.5, total_gib=97.0) for i in range(8)],
]
AFTER_THE_RESUME = [
    ev.ClusterStateChanged(ts=T + 109, state="ACTIVATING", previous="INIT"),
    *[sample(T + 110 + i, available_gib=max(0.3, 36 - i * 0.5), total_gib=97.0) for i in range(90)],
    ev.KernelMessageSeen(ts=T + 210, source="kmsg", text="Out of memory: Killed process 4242 (vast_platform)",
                         match="oom"),
]


def _ctx(run: RunDir, resume: bool) -> RunContext:
    target = Target(label="t", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                    clock=Clock.wall())
    return RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=target, bus=EventBus(), run=run, options=RunOptions(resume=resume))


def test_a_resumed_runs_remedy_is_sized_by_what_it_journaled_before_the_crash(tmp_path):
    run = RunDir.create(tmp_path / "run")
    journal = Journal(run)
    for event in BEFORE_THE_CRASH:
        journal(event)
    journal.close()

    ctx = _ctx(run, resume=True)
    service = runner.diagnosis(ctx)
    for event in AFTER_THE_RESUME:
        ctx.emit(event)
    service.conclude()
    assert service.remedy() == {"memory_gib": 120}  # the field's VM, which the seed host can give; not 131


def test_alerts_journaled_before_the_crash_are_not_raised_again(tmp_path):
    run = RunDir.create(tmp_path / "run")
    journal = Journal(run)
    live = _ctx(run, resume=False)
    live.bus.subscribe(journal)
    runner.diagnosis(live)
    for event in BEFORE_THE_CRASH + AFTER_THE_RESUME[:80]:
        live.emit(event)
    journal.close()
    raised = [e for e in run.events() if isinstance(e, ev.AlertRaised)]
    assert raised, "the memory falling during activation raises an alert"

    ctx = _ctx(run, resume=True)
    seen: list[ev.Event] = []
    ctx.bus.subscribe(seen.append)
    runner.diagnosis(ctx)
    for event in AFTER_THE_RESUME[80:82]:
        ctx.emit(event)
    assert not [e for e in seen if isinstance(e, ev.AlertRaised) and e.id in {a.id for a in raised}]
