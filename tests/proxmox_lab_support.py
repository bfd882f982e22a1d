"""Helpers for the Proxmox client and provisioning tests: a lab target, its request log, events."""

from __future__ import annotations

import json
from pathlib import Path

import backend.lab  # noqa: F401 - registers the 'lab' target provider, as the entry points do
from backend.events import Event
from backend.lab.faults import FaultPlan
from backend.lab.world import LabWorld
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.secrets import Secret
from backend.target import Target, TargetOptions, open_target

SPEED = 600.0


def lab_answers(profile: str = "seed", **sections: dict) -> Answers:
    data: dict = {"lab": {"host_profile": profile}}
    data.update(sections)
    data["proxmox"] = {"url": "lab", **data.get("proxmox", {})}
    return Answers.model_validate(data)


async def open_lab(state_dir: Path, profile: str = "seed", speed: float = SPEED, ova: str = "host-only") -> Target:
    """A lab target through the provider registry, as a run opens it (`ova`: the lab OVA's variant)."""
    answers = lab_answers(profile, lab={"host_profile": profile, "ova": ova})
    return await open_target(answers, TargetOptions(speed=speed, state_dir=state_dir))


def world_target(world: LabWorld) -> Target:
    """A target for a lab world started directly (for scheduled faults)."""
    assert world.pve is not None
    return Target(label="lab", proxmox_url=world.pve.url, token_id="root@pam!vlb",
                  token_secret=Secret(world.token_secret), clock=world.clock, fingerprint=world.pve.fingerprint)


def start_world(state_dir: Path, profile: str = "seed", faults: FaultPlan | None = None) -> LabWorld:
    return LabWorld(state_dir, profile, SPEED, faults=faults).start()


def requests_log(state_dir: Path) -> list[dict]:
    path = state_dir / "pve-requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def requests_to(state_dir: Path, method: str, path: str) -> list[dict]:
    return [r for r in requests_log(state_dir) if r["method"] == method and r["path"] == path]


async def run_provision(tmp_path: Path, target: Target, answers: Answers, name: str = "run", *,
                        force: bool = False, resume_dir: Path | None = None, on_event=None):  # noqa: ANN001
    """The provisioning steps through the engine, journaled in `tmp_path/name` (or resumed):
    (exit code, Recorder, RunContext). `on_event` also follows the events as they are emitted."""
    from backend.run.engine import Engine, RunContext, RunOptions
    from backend.run.journal import Journal, RunDir
    from backend.steps import provision

    run = RunDir.open(resume_dir) if resume_dir else RunDir.create(tmp_path / name, answers.vm.name)
    recorder = Recorder(target.clock)
    journal = Journal(run)
    recorder.bus.subscribe(journal)
    if on_event is not None:
        recorder.bus.subscribe(on_event)
    ctx = RunContext(answers=answers, target=target, bus=recorder.bus, run=run,
                     options=RunOptions(force=force, resume=resume_dir is not None))
    code = await Engine(ctx, provision.steps()).run()
    journal.close()
    return code, recorder, ctx


class Recorder:
    """A bus that keeps every event."""

    def __init__(self, clock=None) -> None:  # noqa: ANN001 - a Clock
        self.bus = EventBus(clock)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]
