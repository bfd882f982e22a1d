"""The engine's front door: what every client (the wizard, headless, the demo, `replay`) asks of it.

Subiquity's server/client split is the model: the clients only show. They call

    probe(answers, speed)        -> Probe: the target opened, its certificate to trust, then `host()`
    evaluate(answers, host)      -> the findings (backend/steps/hostcheck.py: one evaluation for the
                                    wizard, `check` and the run's own `size` and `ova` steps)
    check(answers, speed)        -> `check --json`'s dict
    start(answers, ...)          -> Run: a new run directory, the answers saved, run.json, the lock
    resume(run_dir, ...)         -> Run: an unfinished run, with the answers and options it started with
    drive(run, subscriber, ...)  -> exit code: the target opened, the bus and the journal wired, the
                                    RunContext built, the plan run (backend/run/attempts.py)
    retry(run, changes, ...)     -> exit code: roll back to pre-install and retry with a remedy
    replay(run_dir, subscriber)  -> exit code: a recorded run fed again, by its clock

and subscribe to the events. Nothing in `tui/` or `screens/` builds an `Engine` or a `RunContext`.

One resume rule: a run resumes with the answers, the `--force`, the `--retry-on-failure` and the
speed it started with (the speed from run.json, refused when damaged; `speed=` overrides it), to its
end (a run stopped by `--until` goes on unless `until=` is given again); a finished run is not
resumed (`Run.finished` says how it ended). One diagnosis: the engine's `DiagnosisService`
(backend/steps/recovery.py), whose `AlertRaised` and `DiagnosisMade` events every client shows.

The run directory's lock (backend/run/runlock.py) is taken by `start` and `resume` (a run another
process drives is refused there, saying who holds it) and held while the engine runs; a retry takes
it again. A journal that cannot write stops the run (RunContext.halt) and run.json says why.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.analysis.replay import recorded_events
from backend.analysis.replay import replay as replay_events
from backend.errors import BadInput, VlbError
from backend.events import Event
from backend.model import answers as answers_mod
from backend.model.answers import Answers
from backend.model.hostfacts import HostInventory
from backend.model.sizing import SizingResult
from backend.run.bus import EventBus, Subscriber
from backend.run.engine import RunContext, RunOptions, Step
from backend.run.facts import Facts
from backend.run.journal import ANSWERS, COMPLETE_OUTCOMES, Journal, RunDir, journal_failure
from backend.run.runlock import RunLock
from backend.secrets import redact
from backend.steps import hostcheck
from backend.steps.guestaddr import LocalNetworks
from backend.steps.hostcheck import HostView
from backend.target import (
    Target,
    TargetOptions,
    default_speed,
    fetch_certificate_fingerprint,
    open_target,
    provider_scheme,
)

TargetOpener = Callable[[Answers, TargetOptions], Awaitable[Target]]
ConfirmHostKey = Callable[[str], Awaitable[bool]]  # (SSH fingerprint) -> trusted?
ConfirmCertificate = Callable[[str], Awaitable[bool]]  # (the VMS certificate's SHA-256) -> trusted?


# --- probe ---------------------------------------------------------------------------------------


class Probe:
    """An opened target whose certificate awaits the user's trust.

    `fingerprint` is what the user is asked to confirm; `pin_to_save` is the value that goes into
    the answers' `proxmox.fingerprint` once trusted (None when the target pins its own);
    `local_networks` is this machine's own networks as the target's probes see them (read with the
    inventory: where the guest's address can be learnt from depends on it)."""

    label: str = ""
    description: str = ""  # where it points, in words (Target.describe()): the wizard's header
    url: str = ""
    fingerprint: str = ""
    pin_to_save: str | None = None
    local_networks: LocalNetworks | None = None  # this machine's own networks, once `inventory()` ran

    async def inventory(self) -> HostInventory:
        """Authenticate with the token and read every node's facts (after the user trusted the certificate)."""
        raise NotImplementedError

    async def host(self, answers: Answers) -> HostView:
        """Everything `evaluate` needs (after the user trusted the certificate)."""
        inventory = await self.inventory()
        return HostView(inventory, self.local_networks)

    async def close(self) -> None:
        """Release the target (stops a target a provider started for the probe)."""


ProbeOpener = Callable[[Answers], Awaitable[Probe]]


class TargetProbe(Probe):
    """The real thing: a target from the provider registry and backend.clients.proxmox's client."""

    def __init__(self, target: Target, fingerprint: str, pin_to_save: str | None,
                 workdir: tempfile.TemporaryDirectory | None = None) -> None:
        self.target = target
        self.label = target.label
        self.description = target.describe()
        self.url = target.proxmox_url
        self.fingerprint = fingerprint
        self.pin_to_save = pin_to_save
        self._workdir = workdir

    async def host(self, answers: Answers) -> HostView:
        from backend.clients.proxmox import ProxmoxClient

        self.target.fingerprint = self.target.fingerprint or self.fingerprint  # trusted: pin it
        client = await ProxmoxClient.connect(self.target)
        try:
            inventory = await client.inventory()
            if not inventory.fingerprint:
                inventory = HostInventory(inventory.pve_version, inventory.nodes, self.fingerprint,
                                          inventory.cluster_name)
            host = await hostcheck.read_host(client, self.target, answers, inventory)
        finally:
            await client.close()
        self.local_networks = host.local
        return host

    async def inventory(self) -> HostInventory:
        return (await self.host(Answers.model_construct())).inventory

    async def close(self) -> None:
        try:
            await self.target.close()
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None


async def probe(answers: Answers, speed: float | None = None, opener: TargetOpener = open_target) -> Probe:
    """Open the answers' target for a connection test: its certificate (fetched without credentials
    from a real host; a provider that pins its own hands its pin over) waits for the user's trust."""
    workdir = tempfile.TemporaryDirectory(prefix="vlb-connect-")
    try:
        target = await opener(answers, TargetOptions(speed=speed or default_speed(answers.proxmox.url),
                                                     state_dir=Path(workdir.name)))
    except BaseException:
        workdir.cleanup()
        raise
    try:
        if target.fingerprint:
            return TargetProbe(target, target.fingerprint, None, workdir)
        presented = await asyncio.to_thread(fetch_certificate_fingerprint, target.proxmox_url)
        return TargetProbe(target, presented, presented, workdir)
    except BaseException:
        await target.close()
        workdir.cleanup()
        raise


def probe_opener(speed: float | None = None) -> ProbeOpener:
    """`probe` at a speed, as the wizard's Connect screen calls it."""

    async def open_probe(answers: Answers) -> Probe:
        return await probe(answers, speed)

    return open_probe


def describe_error(error: BaseException, url: str = "") -> str:
    """One clear line for any failure of a connection test; secrets scrubbed."""
    where = f" {url}" if url else ""
    if isinstance(error, VlbError):
        text = str(error)
    elif isinstance(error, ssl.SSLError | ssl.CertificateError):
        text = f"TLS handshake with{where} failed: {getattr(error, 'reason', None) or error}"
    elif isinstance(error, TimeoutError | asyncio.TimeoutError):
        text = f"no answer from{where} in time; check the address and port"
    elif isinstance(error, ConnectionRefusedError):
        text = f"connection to{where} refused; is pveproxy listening on that port?"
    elif isinstance(error, OSError):
        text = f"cannot reach{where}: {error.strerror or error.__class__.__name__}"
    elif isinstance(error, NotImplementedError):
        text = "the Proxmox client is not available in this version"
    else:
        text = f"connection test failed: {error.__class__.__name__}: {error}"
    text = redact(text).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


# --- check ---------------------------------------------------------------------------------------


def evaluate(answers: Answers, host: HostView) -> SizingResult:
    """The findings for these answers on this host (backend/steps/hostcheck.py)."""
    return hostcheck.evaluate(answers, host)


async def check(answers: Answers, speed: float | None = None) -> dict:
    """`vast-loopback check`: the answers evaluated against their target; nothing on it changes."""
    with tempfile.TemporaryDirectory(prefix="vlb-check-") as state:
        target = await open_target(answers, TargetOptions(speed=speed or default_speed(answers.proxmox.url),
                                                          state_dir=Path(state)))
        try:
            return {"target": target.describe(), **await hostcheck.check_host(answers, target)}
        finally:
            await target.close()


# --- runs ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run, decided before the engine starts: its directory, answers, options and speed."""

    run: RunDir
    answers: Answers
    options: RunOptions
    speed: float = 1.0
    planned: list[tuple[str, str, str]] = field(default_factory=list)  # (id, title, group) shown before they start
    lock: RunLock | None = None  # the run directory's lock, held from start/resume to the engine's end
    finished: str | None = None  # a resume of a run that had ended: its outcome (nothing is run)
    stopped: str = ""  # why the journal stopped the run (it could not write), else ""
    stopped_marked: bool = True  # whether run.json could say so

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def start(answers: Answers, *, run_dir: str | Path | None = None, speed: float | None = None,
          options: RunOptions | None = None, source: str = "wizard") -> Run:
    """A new run: its directory created, the answers saved in it (secrets stay references), run.json
    written and the lock taken. `source` is where the answers came from (run.json's answers_source)."""
    options = options or RunOptions()
    run = RunDir.create(run_dir, answers.vm.name)
    lock = RunLock.acquire(run.path)
    try:
        answers_mod.save(answers, run.path / ANSWERS)
        speed = speed or default_speed(answers.proxmox.url)
        run.update_meta(speed=speed, force=options.force, until=options.until,
                        retry_on_failure=options.retry_on_failure, answers_source=source,
                        target_state=str((run.path / provider_scheme(answers.proxmox.url)).resolve()))
    except BaseException:
        lock.release()
        raise
    return Run(run, answers, options, speed, lock=lock)


def recorded_speed(run: RunDir, meta: dict) -> float:
    """The speed a run was started with, from its run.json (bad input when damaged)."""
    value = meta.get("speed", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 10_000:
        raise BadInput(f"{run.meta_path}: speed {str(value)[:40]!r} is not a number between 1 and 10000",
                       hint="give --speed N to resume it, or fix run.json")
    return float(value)


def resume(path: str | Path, *, speed: float | None = None, until: str | None = None, force: bool = False,
           retry_on_failure: bool = False) -> Run:
    """An unfinished run, continued with the answers and options it started with (see the module
    doc's resume rule). The lock is taken before run.json is read: its holder may be rewriting it."""
    run = RunDir.open(path)
    lock = RunLock.acquire(run.path)
    try:
        meta = run.read_meta(required=True)
        answers = answers_mod.load_saved(run.path / ANSWERS)
        if meta.get("outcome") in COMPLETE_OUTCOMES:  # nothing to run: its answers, and how it ended
            lock.release()
            return Run(run, answers, RunOptions(resume=True), finished=str(meta["outcome"]))
        options = RunOptions(force=force or bool(meta.get("force", False)), until=until,
                             retry_on_failure=retry_on_failure or bool(meta.get("retry_on_failure", False)),
                             resume=True)
        speed = speed or recorded_speed(run, meta)
        run.update_meta(status="running", outcome=None, message=None, until=until)
    except BaseException:
        lock.release()
        raise
    return Run(run, answers, options, speed, lock=lock)


async def drive(run: Run, subscriber: Subscriber, *, plan: Callable[[], list[Step]] | None = None,
                opener: TargetOpener = open_target, retry_changes: dict | None = None,
                confirm_host_key: ConfirmHostKey | None = None,
                confirm_vms_certificate: ConfirmCertificate | None = None) -> int:
    """Run the plan (the run's own plan by default: backend/run/attempts.py), or with
    `retry_changes` roll back and retry with that remedy. Every event reaches the journal first,
    then `subscriber`. `confirm_host_key` asks the user about a guest host key that is neither
    pinned nor known, `confirm_vms_certificate` about a VMS certificate that nothing vouches for
    (without them such a key or certificate is refused, as headless). Returns the exit code."""
    if run.finished:
        return 0
    if run.lock is None or not run.lock.held:
        run.lock = RunLock.acquire(run.run.path)  # a retry, after the first pass gave it back
    try:
        return await _drive_journaled(run, subscriber, plan, opener, retry_changes, confirm_host_key,
                                      confirm_vms_certificate)
    finally:
        run.lock.release()


async def retry(run: Run, changes: dict, subscriber: Subscriber, **kwargs: object) -> int:
    """Roll back to the pre-install snapshot, apply `changes` ({"vcpus": 12} / {"memory_gib": 120}),
    install again (the result screen's rollback key, and `--retry-on-failure` inside `drive`)."""
    return await drive(run, subscriber, retry_changes=changes, **kwargs)  # type: ignore[arg-type]


async def _drive_journaled(run: Run, subscriber: Subscriber, plan: Callable[[], list[Step]] | None,
                           opener: TargetOpener, retry_changes: dict | None,
                           confirm_host_key: ConfirmHostKey | None,
                           confirm_vms_certificate: ConfirmCertificate | None) -> int:
    from backend.clients.vmstrust import CONFIRM_VMS_CERTIFICATE
    from backend.run import attempts  # the steps pull in SSH and friends: only when a run starts
    from backend.steps.prepare import CONFIRM_HOST_KEY

    journal = Journal(run.run)
    try:
        target = await opener(run.answers, TargetOptions(speed=run.speed, state_dir=state_dir(run),
                                                         resume=run.options.resume or bool(retry_changes)))
        try:
            bus = EventBus(target.clock)
            bus.subscribe(journal)
            bus.subscribe(subscriber)
            ctx = RunContext(answers=run.answers, target=target, bus=bus, run=run.run, options=run.options)
            journal.on_failure = lambda exc: ctx.halt(journal_failure(exc))
            if confirm_host_key is not None:
                ctx.services[CONFIRM_HOST_KEY] = confirm_host_key
            if confirm_vms_certificate is not None:
                ctx.services[CONFIRM_VMS_CERTIFICATE] = confirm_vms_certificate
            if retry_changes:
                ctx.options.resume = True
                ctx.facts = Facts.from_results(run.run.finished_steps().values())
                run.planned = []
                return await attempts.retry(ctx, retry_changes)
            steps = plan() if plan is not None else attempts.resume_plan(ctx)
            run.planned = [(s.id, s.title, s.group) for s in steps]
            return await attempts.run(ctx, steps)
        finally:
            await target.close()
    finally:
        journal.close()
        if journal.failure is not None:
            run.stopped = journal_failure(journal.failure)
            run.stopped_marked = run.run.mark_stopped(run.stopped)


def state_dir(run: Run) -> Path:
    """Where the run's target provider keeps its own state (a provider's world outlives the process,
    for `--resume`): what run.json records (a fleet member's is the fleet's shared one), else a folder
    of the run directory named after the provider's scheme."""
    return state_dir_of(run.run, run.answers)


def state_dir_of(run: RunDir, answers: Answers) -> Path:
    recorded = run.read_meta().get("target_state")
    return Path(recorded) if isinstance(recorded, str) and recorded else run.path / provider_scheme(answers.proxmox.url)


async def record_guest(run_dir: str | Path, *, speed: float | None = None, strict: bool = False,
                       progress: Callable[[str], None] = lambda _: None) -> Any:
    """`probe --guest RUN_DIR`: the run's guest recorded over the run's SSH (backend/run/probe.py),
    while nobody else drives the run (its lock)."""
    from backend.run import probe

    run = RunDir.open(run_dir)
    lock = RunLock.acquire(run.path)
    try:
        meta = run.read_meta(required=True)
        answers = answers_mod.load_saved(run.path / ANSWERS)
        for warning in answers_mod.check_secrets(answers, strict=strict):
            progress(warning)
        speed = speed or recorded_speed(run, meta)
        target = await open_target(answers, TargetOptions(speed=speed, state_dir=state_dir_of(run, answers),
                                                          resume=True))
        ctx = RunContext(answers=answers, target=target, bus=EventBus(target.clock), run=run,
                         options=RunOptions(resume=True), facts=Facts.from_results(run.finished_steps().values()))
        try:
            return await probe.record_run_guest(ctx, progress=progress)
        finally:
            await ctx.close()
            await target.close()
    finally:
        lock.release()


# --- replay --------------------------------------------------------------------------------------


def recording(run_dir: str | Path) -> list[Event]:
    """A recorded run's events and samples, merged by time (what `replay` feeds)."""
    return recorded_events(run_dir)


async def replay(events: Sequence[Event] | str | Path, subscriber: Subscriber, *, speed: float = 1.0) -> int:
    """Feed a recorded run (a run directory, or its events) to `subscriber` at `speed` times its
    clock; returns the recorded run's exit code."""
    recorded = events if isinstance(events, Sequence) and not isinstance(events, str) else recording(events)
    return await replay_events(recorded, subscriber, speed=speed)
