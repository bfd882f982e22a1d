"""The engine journals every step and resumes where a run stopped; the journal survives torn lines."""

from __future__ import annotations

import asyncio
import json

from backend import events as ev
from backend.clock import Clock
from backend.errors import RunFailed
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import Engine, RunContext, RunOptions, Step
from backend.run.journal import Journal, RunDir
from backend.secrets import Secret
from backend.target import Target


def _target() -> Target:
    return Target(label="test", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                  clock=Clock.wall())


def _run(run: RunDir, steps, resume=False) -> tuple[int, list[ev.Event]]:
    seen: list[ev.Event] = []
    bus = EventBus()
    journal = Journal(run)
    bus.subscribe(journal)
    bus.subscribe(seen.append)
    ctx = RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=_target(), bus=bus, run=run, options=RunOptions(resume=resume))
    code = asyncio.run(Engine(ctx, steps).run())
    journal.close()
    return code, seen


def test_steps_run_in_order_and_results_reach_later_steps(tmp_path):
    calls = []

    async def create(ctx):
        calls.append("create")
        return {"vmid": 120}

    async def boot(ctx):
        calls.append(f"boot {ctx.facts.vmid}")

    run = RunDir.create(tmp_path / "run")
    code, seen = _run(run, [Step("create", "Create", "provision", create), Step("boot", "Boot", "provision", boot)])
    assert code == 0 and calls == ["create", "boot 120"]
    kinds = [e.kind for e in seen]
    assert kinds == ["RunStarted", "StepStarted", "StepFinished", "StepStarted", "StepFinished", "RunFinished"]
    assert run.finished_steps() == {"create": {"vmid": 120}, "boot": {}}
    assert run.read_meta()["status"] == "finished"


def test_resume_skips_finished_steps_and_reruns_the_interrupted_one(tmp_path):
    calls = []

    async def one(ctx):
        calls.append("one")
        return {"vmid": 7}

    async def two(ctx):
        calls.append("two")
        raise RunFailed("guest unreachable")

    async def two_ok(ctx):
        calls.append(f"two-again {ctx.facts.vmid}")

    run = RunDir.create(tmp_path / "run")
    code, _ = _run(run, [Step("one", "One", "g", one), Step("two", "Two", "g", two)])
    assert code == 1
    code, seen = _run(run, [Step("one", "One", "g", one), Step("two", "Two", "g", two_ok)], resume=True)
    assert code == 0
    assert calls == ["one", "two", "two-again 7"]
    assert any(isinstance(e, ev.StepSkipped) and e.step == "one" for e in seen)


def test_a_failed_recheck_reruns_a_finished_step(tmp_path):
    calls = []

    async def step(ctx):
        calls.append("run")
        return {"x": 1}

    async def recheck(ctx):
        return False

    run = RunDir.create(tmp_path / "run")
    _run(run, [Step("s", "S", "g", step, recheck)])
    _run(run, [Step("s", "S", "g", step, recheck)], resume=True)
    assert calls == ["run", "run"]


def test_unexpected_errors_end_the_run_with_a_message_not_a_traceback(tmp_path):
    async def broken(ctx):
        raise ZeroDivisionError("boom tok-en-1")

    run = RunDir.create(tmp_path / "run")
    code, seen = _run(run, [Step("b", "Broken", "g", broken)])
    finished = seen[-1]
    assert code == 1 and isinstance(finished, ev.RunFinished)
    assert "ZeroDivisionError" in finished.message and "tok-en-1" not in finished.message


def test_journal_skips_a_torn_last_line_and_appends_cleanly(tmp_path):
    run = RunDir.create(tmp_path / "run")
    journal = Journal(run)
    journal(ev.StepStarted(ts=1.0, step="a", title="A", group="g"))
    journal.close()
    with (run.path / "events.jsonl").open("a") as handle:
        handle.write('{"type": "StepFinished", "ts": 2.0, "st')  # killed mid-write
    journal = Journal(run)
    journal(ev.StepFinished(ts=3.0, step="a", ok=True, result={"vmid": 1}))
    journal.close()
    events = list(run.events())
    assert [e.kind for e in events] == ["StepStarted", "StepFinished"]
    assert run.finished_steps() == {"a": {"vmid": 1}}


def test_run_dir_is_private_and_refuses_to_reuse_a_run(tmp_path):
    import pytest

    from backend.errors import BadInput

    run = RunDir.create(tmp_path / "run")
    assert run.path.stat().st_mode & 0o777 == 0o700
    with pytest.raises(BadInput, match="--resume"):
        RunDir.create(tmp_path / "run")


def test_events_round_trip_through_json():
    event = ev.TuningChecked(ts=5.0, id="thp_enabled", expected="never", observed="never", ok=True, after_reboot=True)
    back = ev.Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert back == event
    unknown = ev.Event.from_dict({"type": "FromTheFuture", "ts": 1.0, "x": 1})
    assert isinstance(unknown, ev.UnknownEvent)


def test_clock_compresses_time():
    clock = Clock.scaled(120, origin_wall=1000.0, origin_target=5000.0)
    assert clock.to_target(1001.0) == 5120.0
    assert clock.wall_seconds(120) == 1.0
