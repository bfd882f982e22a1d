"""Running a whole run: the plan, live diagnosis, and (asked for) one rollback-and-retry.

Headless (`tui/headless.py`) and the TUI (`tui/launch.py`) both call `run(ctx)`, so both get the
same alerts, the same diagnosis and the same retry. `retry(ctx, changes)` is what the result
screen's rollback key calls. Attempts are recorded in `run.json`, so `--resume` rebuilds the plan of
a run that was retrying (earlier attempts' unfinished steps are not run again).
"""

from __future__ import annotations

import dataclasses
import heapq

from backend.run.engine import Engine, RunContext, Step
from backend.run.plan import build_plan
from backend.steps import install
from backend.steps.recovery import MAX_ATTEMPTS, DiagnosisService, recovery_steps


def _attempts(ctx: RunContext) -> list[dict]:
    return list(ctx.run.read_meta().get("attempts") or [])


def resume_plan(ctx: RunContext) -> list[Step]:
    """The plan of this run as recorded: the base plan, then each retry attempt's steps. Steps of an
    attempt that a later attempt replaced run only if they had finished, to restore their facts, and
    are not rechecked: what they made was rolled back (their guest may be off: a recheck reaching
    for it failed the resume)."""
    attempts = _attempts(ctx)
    plans = [build_plan()] + [recovery_steps(int(a["attempt"]), dict(a["changes"])) for a in attempts]
    if len(plans) == 1:
        return plans[0]
    done = ctx.run.finished_steps() if ctx.options.resume else {}
    steps: list[Step] = []
    for plan in plans[:-1]:
        steps += [dataclasses.replace(step, recheck=None) for step in plan if step.id in done]
    return steps + plans[-1]


def diagnosis(ctx: RunContext) -> DiagnosisService:
    """The run's live diagnosis (kept outside ctx.services: it outlives each engine pass). A resumed
    run's starts from the journal (events and samples in the order they happened): a remedy needs the
    host facts and the VM config that steps finished earlier reported."""
    if ctx.diagnosis is None:
        ctx.diagnosis = DiagnosisService(ctx.bus)
        if ctx.options.resume:
            ctx.diagnosis.replay(heapq.merge(ctx.run.events(), ctx.run.samples(), key=lambda e: e.ts))
    return ctx.diagnosis


def on_failure(ctx: RunContext):  # noqa: ANN201 - an async callable for Engine
    """What a failed pass does before its RunFinished: let the monitor deliver what the guest wrote
    last (a PANIC line is often written moments before the failure is seen), read the guest's own
    record for what no one saw (the OOM of a gap), then conclude."""

    async def hook() -> None:
        await install.read_record_at_failure(ctx)
        diagnosis(ctx).conclude()

    return hook


async def run(ctx: RunContext, steps: list[Step] | None = None) -> int:
    """The plan (or `steps`), then at most one retry when asked for and the diagnosis has a remedy."""
    service = diagnosis(ctx)
    code = await Engine(ctx, steps if steps is not None else resume_plan(ctx), on_failure=on_failure(ctx)).run()
    while code == 1 and ctx.options.retry_on_failure and not ctx.halted and len(_attempts(ctx)) + 1 < MAX_ATTEMPTS:
        changes = service.remedy()
        if not changes:
            break
        code = await retry(ctx, changes)
    return code


async def retry(ctx: RunContext, changes: dict) -> int:
    """Roll back to pre-install, apply `changes` ({"vcpus": 12} / {"memory_gib": 120}), install again."""
    attempts = _attempts(ctx)
    attempt = 2 + len(attempts)
    ctx.run.update_meta(attempts=[*attempts, {"attempt": attempt, "changes": dict(changes)}],
                        status="running", outcome=None)
    ctx.options.until = None
    return await Engine(ctx, recovery_steps(attempt, changes), on_failure=on_failure(ctx)).run()
