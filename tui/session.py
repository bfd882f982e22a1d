"""A run as the TUI follows it: the folded `RunState`, the live diagnosis, chart series and the
notable-events log, fed by one source of events (the engine, or a recorded run replayed).

The session outlives the screens that show it: the dashboard, its details and log screens and the
result screen all read the same session, so leaving a screen and coming back loses nothing, and a
resumed run first reads its journal so the charts show what happened before the restart. Screens
subscribe with `listen()`; a change costs them one callback, and they repaint when they choose
(coalesced). Plain Python, no Textual.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend import events as ev
from backend.analysis import evidence
from backend.analysis.diagnose import Item, Watcher
from backend.clients.vtask import TASK_FAILED_STATES
from backend.clock import Clock
from backend.errors import VlbError
from backend.model import vmconfig
from backend.model.hostfacts import GIB
from backend.run.bus import Subscriber
from backend.run.runstate import RunState
from backend.run.service import recording, replay
from backend.secrets import redact
from tui.series import Series

Source = Callable[[Subscriber], Awaitable[int]]
Listener = Callable[[str], None]  # called with "changed" or "ended"

GAP_EDGES = (50, 100, 250, 500, 1000, 2000, 5000)  # ms, as the agent's gaps_hist
LOG_ENTRIES = 2000
HISTORY_CHUNK = 500  # events folded between two yields to the UI when reading a journal
METRICS = ("mem_used", "mem_available", "steal", "user", "sys", "load1", "load5", "load15")


@dataclass(frozen=True)
class RunEnd:
    exit_code: int
    outcome: str  # "online" | "done" | "failed" | "blocked" | "aborted" | "stopped" | ...
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 and self.outcome != "aborted"


@dataclass(frozen=True)
class LogEntry:
    t: float
    level: str  # "critical" | "warning" | "info" | "log" (an install log line)
    text: str


@dataclass
class Peak:
    value: float | None = None
    t: float | None = None

    def above(self, value: float, t: float) -> None:
        if self.value is None or value > self.value:
            self.value, self.t = value, t

    def below(self, value: float, t: float) -> None:
        if self.value is None or value < self.value:
            self.value, self.t = value, t


@dataclass
class Container:
    mem: float = 0.0
    limit: float = 0.0
    peak: float = 0.0
    peak_t: float | None = None


def gap_bucket(length_ms: float) -> str | None:
    """The histogram bucket of a gap: the largest edge it reaches ("50" for 50-99 ms), or None."""
    chosen = None
    for edge in GAP_EDGES:
        if length_ms >= edge:
            chosen = str(edge)
    return chosen


@dataclass
class RunSession:
    """Feed it events (`apply`), or give it a `source` and `await run()`."""

    title: str = ""
    run_path: Path | None = None
    source: Source | None = None
    planned: Callable[[], list[tuple[str, str, str]]] | None = None
    history: bool = False  # read the run directory's journal before the source starts (resume)
    live: bool = True  # a live run's clock keeps going between events; a replay's does not
    speed: float = 1.0
    state: RunState = field(default_factory=RunState)
    # A recording fed straight in is diagnosed here; a live run is not: the engine's own diagnosis
    # (backend/steps/recovery.py DiagnosisService) emits AlertRaised and DiagnosisMade, which fold below.
    diagnose: bool = True
    watcher: Watcher = field(default_factory=Watcher)
    series: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in METRICS})
    latest: dict = field(default_factory=dict)  # the latest value of each key of the samples
    mem_total: float | None = None  # bytes
    ncpu: int | None = None
    vm_config: dict = field(default_factory=dict)
    used_max: Peak = field(default_factory=Peak)
    available_min: Peak = field(default_factory=Peak)
    steal_max: Peak = field(default_factory=Peak)
    load1_max: Peak = field(default_factory=Peak)
    containers: dict[str, Container] = field(default_factory=dict)
    stall_hist: dict[str, int] = field(default_factory=lambda: {str(e): 0 for e in GAP_EDGES})
    sample_hist: dict[str, int] = field(default_factory=lambda: {str(e): 0 for e in GAP_EDGES})
    stalls_seen: int = 0
    alerts: dict[str, dict] = field(default_factory=dict)  # id -> {"id","severity","message","evidence","t"}
    diagnoses: dict[str, dict] = field(default_factory=dict)  # id -> Item.to_dict() shape
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_ENTRIES))
    last_line: tuple[float, str] | None = None
    report_path: str = ""
    samples_seen: int = 0
    history_events: int = 0
    revision: int = 0
    running: bool = False
    end: RunEnd | None = None
    clock: Clock | None = None
    stopper: Callable[[], None] | None = None  # stops whatever runs the source (set by the screen that started it)
    retrier: Callable[[dict], Source] | None = None  # the source of a rollback-and-retry with a remedy
    attempt: int = 1  # a rollback to pre-install starts the next attempt
    earlier: list[dict] = field(default_factory=list)  # diagnoses of earlier attempts, each with its "attempt"
    log_count: int = 0  # entries ever logged (the log keeps the last LOG_ENTRIES)
    _listeners: list[Listener] = field(default_factory=list)
    _planned_done: bool = False
    _rolled_back_in: tuple[str, str] = ("", "")  # (step, snapshot) of the last rollback
    _thread: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    # --- listening --------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def _notify(self, what: str) -> None:
        for listener in list(self._listeners):
            listener(what)

    # --- the source -------------------------------------------------------------------------------

    def subscriber(self, event: ev.Event) -> None:
        """The bus subscriber: folds the event on the UI's loop, whichever thread emitted it."""
        if self._thread is not None and threading.get_ident() != self._thread and self._loop is not None:
            self._loop.call_soon_threadsafe(self.apply, event)
        else:
            self.apply(event)

    async def run(self) -> RunEnd:
        """Read the journal when resuming, then run the source to its end; never raises but on cancel."""
        assert self.source is not None, "a session without a source is fed with apply()"
        self.running = True
        self._thread, self._loop = threading.get_ident(), asyncio.get_running_loop()
        try:
            if self.history and self.run_path is not None:
                await self.read_history(self.run_path)
            code = await self.source(self.subscriber)
            end = RunEnd(code, self.state.outcome or ("done" if code == 0 else "failed"), self.state.message)
        except asyncio.CancelledError:
            self.finish(RunEnd(130, "aborted", "aborted by the user"))
            raise
        except VlbError as exc:
            end = RunEnd(exc.exit_code, "failed", redact(str(exc)).splitlines()[0])
        except Exception as exc:  # a bug in a step or the source: one line, never a traceback
            end = RunEnd(1, "failed", redact(f"{exc.__class__.__name__}: {exc}").splitlines()[0])
        self.finish(end)
        return end

    async def read_history(self, path: Path) -> None:
        """Fold what the journal already holds (a resumed run's past), yielding to the UI now and then."""
        past = await asyncio.to_thread(recording, path)
        for index, event in enumerate(past):
            self.apply(event, notify=False)
            if index % HISTORY_CHUNK == HISTORY_CHUNK - 1:
                await asyncio.sleep(0)
        self.history_events = len(past)
        self._changed()

    def retry_with(self, changes: dict) -> bool:
        """Make the source a rollback-and-retry with `changes` (the run goes on in this session, its
        history kept); False when this session cannot retry (a replay) or is still running."""
        if self.retrier is None or self.running or not changes:
            return False
        self.source = self.retrier(dict(changes))
        self.end = None
        self._planned_done = True  # a retry's steps show as they start
        self._changed()
        return True

    def finish(self, end: RunEnd) -> None:
        if self.end is not None:
            return
        self.running = False
        self.end = end
        if self.diagnose:
            self._take(self.watcher.finish())
            for item in self.watcher.diagnoses():  # finish() may complete earlier items' remedies
                self.diagnoses[item.id] = item.to_dict()
        self.revision += 1
        self._notify("ended")

    def now(self) -> float | None:
        """The target's time: a live run's clock keeps going between events."""
        if self.clock is not None and self.running and self.end is None:
            return max(self.state.now or 0.0, self.clock.now())
        return self.state.now

    # --- folding ----------------------------------------------------------------------------------

    def apply(self, event: ev.Event, notify: bool = True) -> None:
        if not self._planned_done and self.planned is not None:
            planned = self.planned()
            if planned:
                self.state.plan(planned)
                self._planned_done = True
        self.state.apply(event)
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)
        if self.diagnose:
            self._take(self.watcher.feed(event))
        if notify:
            self._changed()

    def _changed(self) -> None:
        self.revision += 1
        self._notify("changed")

    def _note(self, t: float, level: str, text: str) -> None:
        self.log.append(LogEntry(t, level, text))
        self.log_count += 1

    def _take(self, items: list[Item]) -> None:
        for item in items:
            if item.kind == "alert":
                self._alert(item.id, item.severity, item.cause, "; ".join(e.text for e in item.evidence),
                            item.t or self.state.now or 0.0)
            else:
                self._diagnosis(item.to_dict())

    def _alert(self, alert_id: str, severity: str, message: str, evidence: str, t: float) -> None:
        if alert_id in self.alerts:
            return
        self.alerts[alert_id] = {"id": alert_id, "severity": severity, "message": message,
                                 "evidence": evidence, "t": t}
        self._note(t, severity if severity in ("warning", "critical") else "warning", message)

    def _diagnosis(self, item: dict) -> None:
        known = item.get("id", "") in self.diagnoses
        self.diagnoses[item.get("id", "")] = dict(item)
        if not known:
            self._note(item.get("t") or self.state.now or 0.0, "critical" if item.get("severity") == "critical"
                       else "warning", f"diagnosis: {item.get('cause', '')}")

    # --- handlers, one per event type the panes need beyond RunState ---

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        if self.live and e.clock:
            try:
                self.clock = Clock(**{k: float(v) for k, v in e.clock.items()})
            except (TypeError, ValueError):
                self.clock = None
        self._note(e.ts, "info", f"run {'resumed' if e.resumed else 'started'} on {e.target}")

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        level = "info" if e.exit_code == 0 else "critical"
        self._note(e.ts, level, f"run {e.outcome} (exit {e.exit_code})" + (f": {e.message}" if e.message else ""))

    def _on_StepStarted(self, e: ev.StepStarted) -> None:
        self.last_line = (e.ts, e.detail) if e.detail else None

    def _on_StepProgressed(self, e: ev.StepProgressed) -> None:
        self.last_line = (e.ts, e.message)

    def _on_StepFinished(self, e: ev.StepFinished) -> None:
        if not e.ok:
            self._note(e.ts, "critical", f"step {e.step} failed: {e.error}")

    def _on_VmCreated(self, e: ev.VmCreated) -> None:
        self.vm_config.update(e.config)

    def _on_VmConfigured(self, e: ev.VmConfigured) -> None:
        self.vm_config.update(e.changes)
        self._note(e.ts, "info", "VM config: " + ", ".join(f"{k}={v}" for k, v in e.changes.items()))

    def _on_InstallLogAppended(self, e: ev.InstallLogAppended) -> None:
        for line in e.lines:
            self._note(e.ts, "log", str(line))
        if e.lines:
            self.last_line = (e.ts, str(e.lines[-1]))

    def _on_ClusterStateChanged(self, e: ev.ClusterStateChanged) -> None:
        self._note(e.ts, "info", f"cluster {e.previous or '-'} -> {e.state}")

    def _on_VtaskChanged(self, e: ev.VtaskChanged) -> None:
        level = "critical" if e.state.upper() in TASK_FAILED_STATES else "info"
        self._note(e.ts, level, f"task {e.name} ({e.task_id}) {e.state}" + (f": {e.message}" if e.message else ""))

    def _on_KernelMessageSeen(self, e: ev.KernelMessageSeen) -> None:
        self._note(e.ts, "critical" if e.match in ("oom", "panic") else "warning", f"{e.source}: {e.text}")

    def _on_GuestRecordRead(self, e: ev.GuestRecordRead) -> None:
        self._note(e.ts, "info" if e.reachable and not e.error else "warning", evidence.describe(e))

    def _on_StallDetected(self, e: ev.StallDetected) -> None:
        self.stalls_seen += 1
        bucket = gap_bucket(e.length_ms)
        if bucket is not None:
            self.stall_hist[bucket] += 1
        if e.length_ms >= 1000:
            self._note(e.start or e.ts, "warning", f"stall: the guest stood still for {e.length_ms / 1000:.2f} s")

    def _on_SamplingGapped(self, e: ev.SamplingGapped) -> None:
        self._note(e.start, "warning", f"no samples for {e.end - e.start:.0f} s" + (f" ({e.reason})" if e.reason else ""))

    def _on_GuestConnected(self, e: ev.GuestConnected) -> None:
        self._note(e.ts, "info", f"SSH to {e.user}@{e.address}, host key {e.host_key}")

    def _on_VmsCertificateTrusted(self, e: ev.VmsCertificateTrusted) -> None:
        how = f"CA {e.ca_file}" if e.ca_file else f"pinned {e.fingerprint}"
        self._note(e.ts, "info", f"VMS at {e.address}: certificate {how} ({e.source})")

    def _on_GuestDisconnected(self, e: ev.GuestDisconnected) -> None:
        self._note(e.ts, "warning", f"guest connection lost: {e.reason}")

    def _on_GuestReconnected(self, e: ev.GuestReconnected) -> None:
        self._note(e.ts, "info", f"guest reconnected after {e.attempts} attempts ({e.down_s:.0f} s down)")

    def _on_RetryScheduled(self, e: ev.RetryScheduled) -> None:
        self._note(e.ts, "warning", f"retrying {e.operation} (attempt {e.attempt}): {e.error}")

    def _on_RecoveredFromFault(self, e: ev.RecoveredFromFault) -> None:
        self._note(e.ts, "info", f"recovered: {e.operation} after {e.attempts} attempts")

    def _on_ProxmoxTaskFinished(self, e: ev.ProxmoxTaskFinished) -> None:
        if not e.ok:
            self._note(e.ts, "critical", f"Proxmox task {e.task_type} failed: {e.exitstatus}")

    def _on_SnapshotCreated(self, e: ev.SnapshotCreated) -> None:
        self._note(e.ts, "info", f"snapshot '{e.name}' taken")

    def _on_SnapshotRolledBack(self, e: ev.SnapshotRolledBack) -> None:
        """The guest is back before the install: what was diagnosed belongs to the attempt that ended.
        The same rollback reported twice within one step (by the Proxmox client and by the recovery
        step) starts one attempt, not two."""
        step = self.state.current_step
        where = (step.id if step is not None else "", e.name)
        if where == self._rolled_back_in and where[0]:
            return
        self._rolled_back_in = where
        self._note(e.ts, "warning", f"rolled back to snapshot '{e.name}'")
        self.earlier += [{**item, "attempt": self.attempt} for item in self.diagnoses.values()]
        self.diagnoses.clear()
        self.alerts.clear()
        # (the watcher starts the next attempt afresh itself: the same signature is news again)
        self.attempt += 1

    def _on_RemedyApplied(self, e: ev.RemedyApplied) -> None:
        changes = ", ".join(f"{k}={v}" for k, v in e.changes.items())
        self._note(e.ts, "info", f"remedy {e.id} applied (attempt {e.attempt}): {changes}")

    def _on_AlertRaised(self, e: ev.AlertRaised) -> None:
        self._alert(e.id, e.severity, e.message, e.evidence, e.ts)

    def _on_DiagnosisMade(self, e: ev.DiagnosisMade) -> None:
        for item in e.items:
            if isinstance(item, dict):
                self._diagnosis({"t": e.ts, **item})

    def _on_ReportWritten(self, e: ev.ReportWritten) -> None:
        self.report_path = e.path

    def _on_SampleTaken(self, e: ev.SampleTaken) -> None:
        sample = e.sample
        t = float(sample.get("t") or e.ts)
        self.samples_seen += 1
        self.latest.update(sample)  # imported traces carry memory, CPU and containers in samples of their own
        series = self.series
        cpu = sample.get("cpu") or {}
        for key in ("steal", "user", "sys"):
            value = cpu.get(key)
            if isinstance(value, int | float):
                series[key].add(t, float(value))
        if isinstance(cpu.get("steal"), int | float):
            self.steal_max.above(float(cpu["steal"]), t)
        if isinstance(cpu.get("ncpu"), int):
            self.ncpu = cpu["ncpu"]
        load = sample.get("load")
        if isinstance(load, list | tuple) and len(load) >= 3:
            for key, value in zip(("load1", "load5", "load15"), load, strict=False):
                series[key].add(t, float(value))
            self.load1_max.above(float(load[0]), t)
        mem = sample.get("mem") or {}
        total, available = mem.get("total"), mem.get("available")
        if isinstance(total, int | float) and isinstance(available, int | float):
            used = float(mem.get("used", total - available))
            self.mem_total = float(total)
            series["mem_used"].add(t, used / GIB)
            series["mem_available"].add(t, available / GIB)
            self.used_max.above(used, t)
            self.available_min.below(float(available), t)
        for name, row in (sample.get("containers") or {}).items():
            if not isinstance(row, dict):
                continue
            box = self.containers.setdefault(name, Container())
            box.mem, box.limit = float(row.get("mem") or 0.0), float(row.get("limit") or 0.0)
            if box.mem > box.peak:
                box.peak, box.peak_t = box.mem, t
        for bucket, count in (sample.get("gaps_hist") or {}).items():
            if bucket in self.sample_hist and isinstance(count, int | float):
                self.sample_hist[bucket] += int(count)

    # --- what the panes ask ----------------------------------------------------------------------

    @property
    def gap_hist(self) -> dict[str, int]:
        """Gaps per bucket: the stall events, or the samples' own counts where those saw more
        (events lost while the stream was down); the same gap is never counted twice."""
        return {key: max(self.stall_hist[key], self.sample_hist[key]) for key in self.stall_hist}

    @property
    def vcpus(self) -> int | None:
        return vmconfig.vcpus_of(self.vm_config) or self.ncpu

    @property
    def remedies(self) -> list[dict]:
        """Critical diagnoses whose remedy a rollback-and-retry can apply (they carry `changes`), the
        root cause (the earliest) first."""
        found = [d for d in self.diagnoses.values() if d.get("changes") and d.get("severity") == "critical"]
        return sorted(found, key=lambda d: d.get("t") or 0.0)

    @property
    def failed(self) -> bool:
        return self.end is not None and self.end.failed


def launch_session(launch, *, plan=None, opener=None, confirm_host_key=None,  # noqa: ANN001
                   confirm_vms_certificate=None) -> RunSession:  # noqa: ANN001
    """The session of a wizard's run (a backend.run.service.Run): the engine as its source, the journal
    read first on resume. `confirm_host_key` (async, fingerprint -> bool) asks the user about a
    guest host key that is neither pinned nor known; `confirm_vms_certificate` likewise about a VMS
    certificate nothing vouches for."""
    from backend.run import service
    from backend.target import open_target

    confirmations = {"confirm_host_key": confirm_host_key, "confirm_vms_certificate": confirm_vms_certificate}

    async def source(subscriber: Subscriber) -> int:
        return await service.drive(launch, subscriber, plan=plan, opener=opener or open_target, **confirmations)

    def retrier(changes: dict) -> Source:
        async def retry(subscriber: Subscriber) -> int:
            return await service.retry(launch, changes, subscriber, plan=plan, opener=opener or open_target,
                                       **confirmations)

        return retry

    return RunSession(title=f"VM {launch.answers.vm.name}", run_path=launch.run.path, source=source,
                      planned=lambda: launch.planned, history=launch.options.resume, live=True,
                      speed=launch.speed, retrier=retrier, diagnose=False)


def replay_session(run_dir: str | Path, speed: float = 30.0, events: list[ev.Event] | None = None) -> RunSession:
    """The session of a recorded run replayed at `speed` (math.inf: as fast as it folds)."""
    recorded = events if events is not None else recording(run_dir)
    steps: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for event in recorded:  # the recording knows the plan: pending steps show before they start
        if isinstance(event, ev.StepStarted) and event.step not in seen:
            seen.add(event.step)
            steps.append((event.step, event.title, event.group))

    async def source(subscriber: Subscriber) -> int:
        return await replay(recorded, subscriber, speed=speed)

    started = next((e for e in recorded if isinstance(e, ev.RunStarted)), None)
    title = f"VM {started.vm_name}" if started else Path(run_dir).name
    return RunSession(title=title, run_path=Path(run_dir), source=source, planned=lambda: steps,
                      live=False, speed=speed)
