"""The engine: runs a plan's steps in order, journals each one, and resumes where a run stopped.

Every step records `StepStarted` before it begins and `StepFinished` (with the result later steps
need: vmid, node, guest address...) before the next one begins. On `--resume`, a step that finished
is skipped after its `recheck` (state the engine cannot trust is read again); a step that started
and never finished runs again, which is safe because every step is idempotent (it finds its VM,
re-attaches to its detached job, ...).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from backend.errors import RunFailed, SizingBlocked, VlbError
from backend.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepProgressed,
    StepSkipped,
    StepStarted,
)
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.facts import Facts
from backend.run.journal import RunDir
from backend.secrets import redact
from backend.target import Target

log = logging.getLogger(__name__)

VERSION = "0.1.0"


@dataclass
class RunOptions:
    force: bool = False  # go past sizing blockers on purpose
    until: str | None = None  # stop after this step id (e.g. "snapshot_pre_install")
    retry_on_failure: bool = False
    resume: bool = False


@dataclass
class RunContext:
    """What every step can use. `facts` holds what finished steps learnt (vmid, node, ...: run/facts.py)."""

    answers: Answers
    target: Target
    bus: EventBus
    run: RunDir
    options: RunOptions = field(default_factory=RunOptions)
    facts: Facts = field(default_factory=Facts)
    services: dict[str, Any] = field(default_factory=dict)  # closed at the end of each engine pass
    diagnosis: Any = None  # the live diagnosis (backend.steps.recovery.DiagnosisService); outlives passes
    current_step: str = ""
    halted: str = ""  # why the run was stopped from outside the steps (the journal failed), else ""
    task: asyncio.Task | None = None  # the task running the engine, set by Engine.run

    def emit(self, event: Event) -> Event:
        return self.bus.emit(event)

    def halt(self, reason: str) -> None:
        """Stop the run at its next await, the point where Ctrl-C stops it (every step is safe to
        run again there on --resume), because of `reason`; the run ends "stopped", exit 1, and is
        not retried. Called by the journal when it cannot write: a run that went on unjournaled
        could not be resumed."""
        if self.halted:
            return
        self.halted = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def progress(self, message: str, fraction: float | None = None) -> None:
        self.emit(StepProgressed(step=self.current_step, message=message, fraction=fraction))

    @property
    def clock(self):  # noqa: ANN201 - Clock
        return self.target.clock

    async def close(self) -> None:
        """Close every service a step opened (clients with an async `close`), the newest first: a
        log follower stops before the connection it reads through."""
        for name, service in reversed(list(self.services.items())):  # last opened, first closed
            closer = getattr(service, "close", None)
            if closer is None:
                continue
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # closing must never hide the run's real outcome
                log.debug("closing %s failed", name, exc_info=True)
        self.services.clear()


StepFn = Callable[[RunContext], Awaitable[dict | None]]
RecheckFn = Callable[[RunContext], Awaitable[bool]]


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    group: str  # "provision" | "prepare" | "install" | "finish"
    run: StepFn
    recheck: RecheckFn | None = None  # on resume: is the finished step's result still true?
    needs: tuple[str, ...] = ()  # facts (backend/run/facts.py) an earlier step must have produced
    produces: tuple[str, ...] = ()  # facts this step's result sets


class Engine:
    """Runs steps; `on_failure` (e.g. the diagnosis) is called before a failed run's RunFinished."""

    def __init__(self, ctx: RunContext, steps: list[Step],
                 on_failure: Callable[[], object] | None = None) -> None:  # may return an awaitable
        self.ctx = ctx
        self.steps = steps
        self.on_failure = on_failure

    async def run(self) -> int:
        """Run every step; returns the exit code and always ends with a RunFinished event."""
        ctx = self.ctx
        ctx.task = asyncio.current_task()
        if ctx.halted and ctx.task is not None:  # halted before this pass began: stop at its first await
            ctx.task.cancel()
        done = ctx.run.finished_steps() if ctx.options.resume else {}
        ctx.emit(RunStarted(
            run_id=ctx.run.run_id,
            target=ctx.target.label,
            where=ctx.target.describe(),
            vm_name=ctx.answers.vm.name,
            resumed=ctx.options.resume,
            clock=ctx.target.clock.to_dict(),
            version=VERSION,
        ))
        outcome, code, message = "done", 0, ""
        try:
            for step in self.steps:
                await self._run_step(step, done)
                if ctx.options.until and step.id == ctx.options.until:
                    outcome, message = "stopped", f"stopped after {step.id} as asked (--until)"
                    break
            else:
                outcome = ctx.facts.outcome or "done"
        except SizingBlocked as exc:
            outcome, code, message = "blocked", exc.exit_code, redact(str(exc))
        except VlbError as exc:
            outcome, code, message = "failed", exc.exit_code, redact(str(exc))
        except asyncio.CancelledError:
            if not ctx.halted:
                ctx.emit(RunFinished(outcome="aborted", exit_code=130, message="aborted by the user"))
                await ctx.close()
                raise
            uncancel = getattr(ctx.task, "uncancel", None)  # Python 3.11+ counts cancels
            if uncancel is not None:
                uncancel()  # the halt's own cancel, taken: the run ends "stopped" below
            outcome, code, message = "stopped", 1, ctx.halted
        except Exception as exc:  # a bug: journal it, never a traceback on screen
            log.exception("step failed with an unexpected error")
            outcome, code = "failed", 1
            message = redact(f"internal error in step {ctx.current_step}: {exc.__class__.__name__}: {exc}")
        self._target_reports()
        if outcome == "failed" and self.on_failure is not None:
            try:
                result = self.on_failure()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the explanation must never hide the failure itself
                log.exception("the failure hook failed")
        ctx.emit(RunFinished(outcome=outcome, exit_code=code, message=message))
        await ctx.close()
        return code

    def _target_reports(self) -> None:
        """What the target itself tells (backend/target.py `Target.reported`), into the run's events."""
        try:
            for event in self.ctx.target.report():
                self.ctx.emit(event)
        except Exception:  # the target's own account must never stop the run
            log.exception("reading the target's reports failed")

    async def _run_step(self, step: Step, done: dict[str, dict]) -> None:
        ctx = self.ctx
        ctx.current_step = step.id
        if step.id in done:
            result = done[step.id]
            ctx.facts.learn(result)
            still_true = True
            if step.recheck is not None:
                still_true = await step.recheck(ctx)
            if still_true:
                ctx.emit(StepSkipped(step=step.id, reason="finished in an earlier run", result=result))
                return
        missing = ctx.facts.missing(step.needs)
        if missing:
            raise RunFailed(f"internal: step {step.id} needs {', '.join(missing)}, which no earlier step produced")
        ctx.emit(StepStarted(step=step.id, title=step.title, group=step.group))
        try:
            result = await step.run(ctx) or {}
        except VlbError as exc:
            self._target_reports()
            ctx.emit(StepFinished(step=step.id, ok=False, error=redact(str(exc))))
            raise
        except asyncio.CancelledError:
            ctx.emit(StepFinished(step=step.id, ok=False, error=ctx.halted or "aborted"))
            raise
        except Exception as exc:
            ctx.emit(StepFinished(step=step.id, ok=False, error=redact(f"{exc.__class__.__name__}: {exc}")))
            raise
        ctx.facts.learn(result)
        self._target_reports()
        ctx.emit(StepFinished(step=step.id, ok=True, result=result))

