"""RunState: the events of a run folded into what the views show.

The dashboard, the headless summary and resume fold the same events with `RunState.apply`, so what
one shows the others agree with. History is bounded (rings) except for what the report needs in
full, which the report reads from the run directory instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from backend import events as ev

SAMPLE_HISTORY = 3600  # one hour at 1 Hz
LOG_HISTORY = 500


@dataclass
class StepView:
    id: str
    title: str
    group: str
    status: str = "pending"  # pending | running | done | failed | skipped
    started: float | None = None
    finished: float | None = None
    message: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)  # facts worth keeping under the step once it is done

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or self.started) - self.started


@dataclass
class RunState:
    run_id: str = ""
    target: str = ""
    vm_name: str = ""
    started: float | None = None
    now: float | None = None
    steps: dict[str, StepView] = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    recommendation: dict = field(default_factory=dict)
    vmid: int | None = None
    guest_address: str = ""
    guest_connected: bool = False
    tuning: dict[str, dict] = field(default_factory=dict)  # id -> latest TuningChecked as dict
    preflight: list = field(default_factory=list)
    cluster_state: str = ""
    cluster_states: list[tuple[float, str]] = field(default_factory=list)
    vtasks: dict[str, dict] = field(default_factory=dict)
    samples: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_HISTORY))
    gaps: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_HISTORY))
    gap_count_1s: int = 0
    gap_count_2s: int = 0
    gap_max_ms: float = 0.0
    sampling_gaps: list[tuple[float, float]] = field(default_factory=list)
    kernel_messages: deque = field(default_factory=lambda: deque(maxlen=200))
    alerts: list = field(default_factory=list)
    diagnosis: list = field(default_factory=list)
    log_tail: deque = field(default_factory=lambda: deque(maxlen=LOG_HISTORY))
    retries: list = field(default_factory=list)
    boot_attempts: list = field(default_factory=list)  # BootAttemptFailed events as dicts
    root_fs: dict = field(default_factory=dict)  # the latest RootFilesystemVerified as a dict
    snapshots: list[str] = field(default_factory=list)  # names taken in this run
    restart: dict = field(default_factory=dict)  # the latest VastRestarted (the reboot test), as a dict
    outcome: str = ""
    exit_code: int | None = None
    message: str = ""

    def plan(self, steps: list[tuple[str, str, str]]) -> None:
        """Declare the planned steps (id, title, group) so pending ones show before they start."""
        for step_id, title, group in steps:
            self.steps.setdefault(step_id, StepView(step_id, title, group))

    @property
    def current_step(self) -> StepView | None:
        running = [s for s in self.steps.values() if s.status == "running"]
        return running[-1] if running else None

    def apply(self, event: ev.Event) -> None:
        self.now = max(self.now or 0.0, event.ts)
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    # --- handlers, one per event type that matters to the views ---

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        self.run_id, self.target, self.vm_name = e.run_id, e.target, e.vm_name
        if self.started is None:
            self.started = e.ts
        self.outcome, self.exit_code, self.message = "", None, ""

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        self.outcome, self.exit_code, self.message = e.outcome, e.exit_code, e.message
        for step in self.steps.values():
            if step.status == "running":
                step.status, step.finished = "failed", e.ts

    def _on_StepStarted(self, e: ev.StepStarted) -> None:
        step = self.steps.setdefault(e.step, StepView(e.step, e.title, e.group))
        step.title, step.group = e.title, e.group
        step.status, step.started, step.finished, step.error = "running", e.ts, None, ""
        step.message = e.detail

    def _on_StepProgressed(self, e: ev.StepProgressed) -> None:
        if e.step in self.steps:
            self.steps[e.step].message = e.message

    def _on_StepFinished(self, e: ev.StepFinished) -> None:
        step = self.steps.setdefault(e.step, StepView(e.step, e.step, ""))
        step.status = "done" if e.ok else "failed"
        step.finished, step.error = e.ts, e.error
        if "vmid" in e.result:
            self.vmid = e.result["vmid"]

    def _on_StepSkipped(self, e: ev.StepSkipped) -> None:
        step = self.steps.setdefault(e.step, StepView(e.step, e.step, ""))
        if step.status == "pending":
            step.status = "skipped"
        step.message = e.reason
        if "vmid" in e.result:
            self.vmid = e.result["vmid"]

    def _on_HostFactsGathered(self, e: ev.HostFactsGathered) -> None:
        self.host = dict(e.facts)

    def _on_SizingEvaluated(self, e: ev.SizingEvaluated) -> None:
        self.findings, self.recommendation = list(e.findings), dict(e.recommendation)

    def _on_VmCreated(self, e: ev.VmCreated) -> None:
        self.vmid = e.vmid

    def _on_VmFound(self, e: ev.VmFound) -> None:
        self.vmid = e.vmid

    def _on_GuestAddressResolved(self, e: ev.GuestAddressResolved) -> None:
        self.guest_address = e.address

    def _on_GuestConnected(self, e: ev.GuestConnected) -> None:
        self.guest_connected = True

    def _on_GuestDisconnected(self, e: ev.GuestDisconnected) -> None:
        self.guest_connected = False

    def _on_GuestReconnected(self, e: ev.GuestReconnected) -> None:
        self.guest_connected = True

    def _on_TuningChecked(self, e: ev.TuningChecked) -> None:
        key = f"{e.id}@reboot" if e.after_reboot else e.id
        self.tuning[key] = e.to_dict()

    def _on_PreflightChecked(self, e: ev.PreflightChecked) -> None:
        self.preflight = list(e.items)

    def _on_ClusterStateChanged(self, e: ev.ClusterStateChanged) -> None:
        if e.state != self.cluster_state:
            self.cluster_state = e.state
            self.cluster_states.append((e.ts, e.state))

    def _on_VtaskChanged(self, e: ev.VtaskChanged) -> None:
        self.vtasks[e.name] = e.to_dict()

    def _on_SnapshotRolledBack(self, e: ev.SnapshotRolledBack) -> None:
        """The guest went back to before the install: no cluster and no VMS task any more (the
        transitions so far stay in `cluster_states`, the history of the run)."""
        self.cluster_state = ""
        self.vtasks.clear()

    def _on_InstallLogAppended(self, e: ev.InstallLogAppended) -> None:
        self.log_tail.extend(e.lines)

    def _on_SampleTaken(self, e: ev.SampleTaken) -> None:
        self.samples.append(e.sample)

    def _on_StallDetected(self, e: ev.StallDetected) -> None:
        self.gaps.append((e.start, e.length_ms))
        self.gap_max_ms = max(self.gap_max_ms, e.length_ms)
        if e.length_ms > 1000:
            self.gap_count_1s += 1
        if e.length_ms > 2000:
            self.gap_count_2s += 1

    def _on_SamplingGapped(self, e: ev.SamplingGapped) -> None:
        self.sampling_gaps.append((e.start, e.end))

    def _on_KernelMessageSeen(self, e: ev.KernelMessageSeen) -> None:
        self.kernel_messages.append(e.to_dict())

    def _on_AlertRaised(self, e: ev.AlertRaised) -> None:
        self.alerts.append(e.to_dict())

    def _on_DiagnosisMade(self, e: ev.DiagnosisMade) -> None:
        self.diagnosis = list(e.items)

    def _on_SnapshotCreated(self, e: ev.SnapshotCreated) -> None:
        if e.name not in self.snapshots:
            self.snapshots.append(e.name)

    def _on_VastRestarted(self, e: ev.VastRestarted) -> None:
        self.restart = e.to_dict()

    def _on_RetryScheduled(self, e: ev.RetryScheduled) -> None:
        self.retries.append(e.to_dict())

    def _on_BootAttemptFailed(self, e: ev.BootAttemptFailed) -> None:
        self.boot_attempts.append(e.to_dict())
        step = self.current_step
        if step is not None:
            then = f", trying {e.next_controller}" if e.next_controller else ""
            step.notes.append(f"no boot on {e.controller}{then}")
            step.message = f"the guest did not come up on {e.controller}{then}"

    def _on_RootFilesystemVerified(self, e: ev.RootFilesystemVerified) -> None:
        self.root_fs = e.to_dict()


def fold(events) -> RunState:  # noqa: ANN001 - any iterable of events
    state = RunState()
    for event in events:
        state.apply(event)
    return state
