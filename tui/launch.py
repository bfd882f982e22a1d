"""Starting a run from the wizard: a new run directory with the answers saved in it, or an unfinished
run to resume; then the engine, whose events go to the journal and to the screen.

The run directory's lock (backend/run/runlock.py) is taken when the launch is made (a run another
process drives is refused there, saying who holds it) and held while the engine runs; a retry from
the result screen takes it again. A journal that cannot write stops the run (RunContext.halt) and
run.json says why.

No Textual here: the run screen calls `run_engine` in an async worker and turns each event it
receives into a message. The plan and the target opener are parameters so a screen can be tested
with a plan of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.model import answers as answers_mod
from backend.model.answers import Answers
from backend.run.bus import EventBus, Subscriber
from backend.run.engine import RunContext, RunOptions, Step
from backend.run.journal import ANSWERS, Journal, RunDir, journal_failure
from backend.run.runlock import RunLock
from backend.target import Target, TargetOptions, default_speed, open_target

TargetOpener = Callable[[Answers, TargetOptions], Awaitable[Target]]
ConfirmHostKey = Callable[[str], Awaitable[bool]]  # (SSH fingerprint) -> trusted?
ConfirmCertificate = Callable[[str], Awaitable[bool]]  # (the VMS certificate's SHA-256) -> trusted?


@dataclass
class Launch:
    """Everything the engine needs for one run, decided before it starts."""

    run: RunDir
    answers: Answers
    options: RunOptions
    speed: float = 1.0
    planned: list[tuple[str, str, str]] = field(default_factory=list)  # (id, title, group) shown before they start
    lock: RunLock | None = None  # the run directory's lock, held from the launch to the engine's end


def new_launch(answers: Answers, run_dir: str | Path | None, speed: float | None, force: bool) -> Launch:
    """Create the run directory and save the answers in it (secrets stay references)."""
    run = RunDir.create(run_dir, answers.vm.name)
    lock = RunLock.acquire(run.path)
    answers_mod.save(answers, run.path / ANSWERS)
    speed = speed or default_speed(answers.proxmox.url)
    run.update_meta(speed=speed, force=force, until=None, retry_on_failure=False, answers_source="wizard")
    return Launch(run, answers, RunOptions(force=force), speed, lock=lock)


def resume_launch(path: str | Path, speed: float | None = None) -> Launch:
    """An unfinished run, continued with the answers and options it started with, to its end: a run
    stopped by `--until` goes on (as `vast-loopback --resume` does)."""
    run = RunDir.open(path)
    lock = RunLock.acquire(run.path)
    try:
        meta = run.read_meta(required=True)
        answers = answers_mod.load_saved(run.path / ANSWERS)
        options = RunOptions(force=bool(meta.get("force", False)), until=None,
                             retry_on_failure=bool(meta.get("retry_on_failure", False)), resume=True)
        run.update_meta(status="running", outcome=None, message=None, until=None)
    except BaseException:
        lock.release()
        raise
    return Launch(run, answers, options, speed or float(meta.get("speed", 1.0)), lock=lock)


async def run_engine(launch: Launch, subscriber: Subscriber, *,
                     plan: Callable[[], list[Step]] | None = None,
                     opener: TargetOpener = open_target,
                     retry_changes: dict | None = None,
                     confirm_host_key: ConfirmHostKey | None = None,
                     confirm_vms_certificate: ConfirmCertificate | None = None) -> int:
    """Run the plan (the run's own plan by default: backend.run.attempts), or with `retry_changes` roll
    back and retry with that remedy. Every event reaches the journal first, then `subscriber`.
    `confirm_host_key` asks the user about a guest host key that is neither pinned nor known,
    `confirm_vms_certificate` about a VMS certificate that nothing vouches for (without them such a
    key or certificate is refused, as headless). Returns the exit code."""
    if launch.lock is None or not launch.lock.held:
        launch.lock = RunLock.acquire(launch.run.path)  # a retry, after the first pass gave it back
    try:
        return await _run_journaled(launch, subscriber, plan, opener, retry_changes, confirm_host_key,
                                    confirm_vms_certificate)
    finally:
        launch.lock.release()


async def _run_journaled(launch: Launch, subscriber: Subscriber, plan: Callable[[], list[Step]] | None,
                         opener: TargetOpener, retry_changes: dict | None,
                         confirm_host_key: ConfirmHostKey | None,
                         confirm_vms_certificate: ConfirmCertificate | None) -> int:
    from backend.clients.vmstrust import CONFIRM_VMS_CERTIFICATE
    from backend.run import attempts as runner  # the steps pull in SSH and friends: only when a run starts
    from backend.steps.prepare import CONFIRM_HOST_KEY

    journal = Journal(launch.run)
    try:
        target = await opener(launch.answers, TargetOptions(speed=launch.speed, state_dir=launch.run.path / "lab",
                                                            resume=launch.options.resume or bool(retry_changes)))
        try:
            bus = EventBus(target.clock)
            bus.subscribe(journal)
            bus.subscribe(subscriber)
            ctx = RunContext(answers=launch.answers, target=target, bus=bus, run=launch.run,
                             options=launch.options)
            journal.on_failure = lambda exc: ctx.halt(journal_failure(exc))
            if confirm_host_key is not None:
                ctx.services[CONFIRM_HOST_KEY] = confirm_host_key
            if confirm_vms_certificate is not None:
                ctx.services[CONFIRM_VMS_CERTIFICATE] = confirm_vms_certificate
            if retry_changes:
                ctx.options.resume = True
                ctx.facts.update(_facts_so_far(launch))
                launch.planned = []
                return await runner.retry(ctx, retry_changes)
            steps = plan() if plan is not None else runner.resume_plan(ctx)
            launch.planned = [(s.id, s.title, s.group) for s in steps]
            return await runner.run(ctx, steps)
        finally:
            await target.close()
    finally:
        journal.close()
        if journal.failure is not None:
            launch.run.mark_stopped(journal_failure(journal.failure))


def _facts_so_far(launch: Launch) -> dict:
    """What the run's finished steps produced (vmid, node, guest address...), for a retry."""
    facts: dict = {}
    for result in launch.run.finished_steps().values():
        facts.update(result)
    return facts
