"""Typed events: facts, named in the past tense, that the engine emits and everyone else reads.

The TUI, the headless printer, the run journal, resume, diagnosis and the report all consume the
same events. An event serialises to one JSON object with a "type" key and its fields; `ts` is the
target's clock (see `backend.clock`). Adding a field with a default is compatible; renaming is not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

_REGISTRY: dict[str, type[Event]] = {}


@dataclass(kw_only=True)
class Event:
    """Base of every event. `ts` is stamped by the bus when left at 0."""

    ts: float = 0.0
    kind: ClassVar[str] = "Event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = cls.__name__
        _REGISTRY[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.kind}
        for f in dataclasses.fields(self):
            data[f.name] = getattr(self, f.name)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Event:
        """Rebuild an event; unknown types become `UnknownEvent`, unknown fields are dropped."""
        cls = _REGISTRY.get(str(data.get("type")))
        if cls is None:
            return UnknownEvent(ts=float(data.get("ts", 0.0)), raw=dict(data))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def event_types() -> dict[str, type[Event]]:
    return dict(_REGISTRY)


@dataclass(kw_only=True)
class UnknownEvent(Event):
    """An event of a type this version does not know (e.g. written by a newer version)."""

    raw: dict = field(default_factory=dict)


# --- the run -----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class RunStarted(Event):
    run_id: str
    target: str  # e.g. "lab (seed, speed 120)" or "https://pve:8006"
    where: str = ""  # the target's description (Target.description), the headless first line
    vm_name: str
    resumed: bool = False
    clock: dict = field(default_factory=dict)  # Clock.to_dict() of the target
    version: str = ""


@dataclass(kw_only=True)
class RunFinished(Event):
    outcome: str  # "online" | "prepared" | "failed" | "aborted" | "blocked"
    exit_code: int
    message: str = ""


@dataclass(kw_only=True)
class StepStarted(Event):
    step: str
    title: str
    group: str  # "provision" | "prepare" | "install" | "finish"
    detail: str = ""


@dataclass(kw_only=True)
class StepProgressed(Event):
    step: str
    message: str
    fraction: float | None = None


@dataclass(kw_only=True)
class StepFinished(Event):
    step: str
    ok: bool
    result: dict = field(default_factory=dict)  # what later steps and resume need (vmid, ...)
    error: str = ""


@dataclass(kw_only=True)
class StepSkipped(Event):
    step: str
    reason: str
    result: dict = field(default_factory=dict)


# --- sizing and host facts ---------------------------------------------------------------------


@dataclass(kw_only=True)
class HostFactsGathered(Event):
    node: str
    facts: dict  # NodeFacts.to_dict()
    pve_version: str = ""


@dataclass(kw_only=True)
class SizingEvaluated(Event):
    findings: list  # [Finding.to_dict()]
    recommendation: dict
    forced: bool = False


# --- Proxmox -----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ProxmoxTaskStarted(Event):
    upid: str
    task_type: str
    description: str = ""


@dataclass(kw_only=True)
class ProxmoxTaskFinished(Event):
    upid: str
    task_type: str
    exitstatus: str
    ok: bool
    duration_s: float = 0.0
    log_tail: list = field(default_factory=list)


@dataclass(kw_only=True)
class HostChanged(Event):
    """The run changed the host beyond its own VM (e.g. a storage's content types), to be reverted
    once it is no longer needed unless `kept` (proxmox.keep_host_changes)."""

    change: str  # what was changed, as an id: "storage-content:local:images"
    what: str  # in words: "added 'images' to storage local's content (was: iso,vztmpl,backup,import)"
    why: str = ""
    kept: bool = False


@dataclass(kw_only=True)
class HostChangeReverted(Event):
    """A HostChanged was undone (or found undone already: `note` says so)."""

    change: str
    what: str
    note: str = ""


@dataclass(kw_only=True)
class VmCreated(Event):
    vmid: int
    node: str
    name: str
    config: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class VmFound(Event):
    vmid: int
    node: str
    name: str


@dataclass(kw_only=True)
class VmConfigured(Event):
    vmid: int
    changes: dict


@dataclass(kw_only=True)
class VmPowerChanged(Event):
    vmid: int
    state: str  # "running" | "stopped"
    action: str  # "start" | "shutdown" | "stop" | "reboot"


@dataclass(kw_only=True)
class SnapshotCreated(Event):
    vmid: int
    name: str


@dataclass(kw_only=True)
class SnapshotRolledBack(Event):
    vmid: int
    name: str


# --- guest -------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class BootAttemptFailed(Event):
    """The guest did not come up on a disk controller within the bound (no address, no SSH or no
    agent): its initramfs most likely lacks the controller's driver (dracut's emergency shell)."""

    vmid: int
    controller: str
    waited_s: float
    reason: str
    next_controller: str = ""  # the controller tried next; "" when none is left


@dataclass(kw_only=True)
class GuestAddressResolved(Event):
    address: str
    source: str  # "answers" | "sdn-ipam" | "neighbour-table" | "guest-agent" (backend/steps/guestaddr.py)
    detail: str = ""  # how it was found (the MAC, the probe's subnets and time)


@dataclass(kw_only=True)
class GuestConnected(Event):
    address: str
    user: str
    host_key: str  # SHA256 fingerprint


@dataclass(kw_only=True)
class GuestDisconnected(Event):
    reason: str


@dataclass(kw_only=True)
class GuestRebooted(Event):
    """The guest rebooted and answers again; `boot_id` is its new boot's id."""

    vmid: int
    boot_id: str
    why: str = ""


@dataclass(kw_only=True)
class GuestReconnected(Event):
    attempts: int
    down_s: float


@dataclass(kw_only=True)
class RootFilesystemVerified(Event):
    """The guest's root filesystem after growing it to its partition and disk, as `df` shows it."""

    device: str  # e.g. /dev/sda3
    fstype: str
    size_gib: float
    before_gib: float
    disk_gib: float
    grown: bool  # whether the partition or the filesystem changed in this step


@dataclass(kw_only=True)
class TuningChecked(Event):
    """One tuning step read back from the guest."""

    id: str
    expected: str
    observed: str
    ok: bool
    after_reboot: bool = False
    persisted: bool | None = None
    reason: str = ""


@dataclass(kw_only=True)
class TuningApplied(Event):
    id: str
    changed: bool
    detail: str = ""


@dataclass(kw_only=True)
class PreflightChecked(Event):
    items: list  # [{"id","title","expected","observed","ok","severity"}]
    ok: bool


# --- install -----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class InstallLogAppended(Event):
    """Lines of the install log, ANSI and spinners stripped, with the byte offset they end at."""

    source: str  # e.g. "bootstrap", "cluster_create"
    lines: list
    offset: int


@dataclass(kw_only=True)
class VmsCertificateTrusted(Event):
    """The VMS's TLS certificate is trusted before any credential is sent to it: pinned (`fingerprint`)
    or checked against a CA (`ca_file`); `source` says why (backend/clients/vmstrust.py)."""

    address: str
    fingerprint: str = ""
    ca_file: str = ""
    source: str = ""


@dataclass(kw_only=True)
class ClusterStateChanged(Event):
    state: str  # any string: VAST 5.4 has more states than 5.3; never validated against a list
    previous: str = ""
    source: str = "api"  # "api" | "log"


@dataclass(kw_only=True)
class VtaskChanged(Event):
    name: str
    task_id: int
    state: str
    runtime_s: float | None = None
    message: str = ""


@dataclass(kw_only=True)
class ClusterVerified(Event):
    hosts: list
    containers: list
    ok: bool


@dataclass(kw_only=True)
class VastRestarted(Event):
    """VAST was started again after a reboot of the guest (`how`: the command run), and came ONLINE
    (`ok`), or did not: `problem` says what failed, `output` and `containers` are the evidence."""

    how: str
    ok: bool
    problem: str = ""
    exit_status: int | None = None
    cluster_state: str = ""  # what VMS said last ("" when it did not answer)
    online_after_s: float | None = None  # from the reboot to ONLINE again (target seconds)
    output: list = field(default_factory=list)  # the command's last lines
    containers: list = field(default_factory=list)  # [{"name", "state"}] of the VAST containers
    alternative: str = ""  # the other way to restart VAST, for the remedy


# --- monitoring --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SampleTaken(Event):
    """One sample of the guest agent (see backend/monitor/agent.py), timestamps on the target clock."""

    sample: dict


@dataclass(kw_only=True)
class StallDetected(Event):
    start: float
    length_ms: float
    # The detector's nominal tick: the heartbeat was silent for interval_ms + length_ms. 0 for the
    # agent's fine-grained detector; 1000 for the field run's `sleep 1` heartbeat loop (imported).
    interval_ms: float = 0.0
    # How the agent measured it: "stop" (a SIGSTOP..SIGCONT, exact) or "late" (a late tick: the real
    # length is within length_ms +- err_ms). Empty for imported heartbeats.
    how: str = ""
    err_ms: float = 0.0


@dataclass(kw_only=True)
class KernelMessageSeen(Event):
    source: str  # "kmsg" | a log path | "install:<job>" | "record:kmsg" / "record:<log path>" (backend.analysis.evidence)
    text: str
    level: str = ""
    match: str = ""  # what made it matter: "oom", "panic", "hung_task", ...
    # Where the monitoring agent read it, so a resumed run's agent goes on after it: the kernel's
    # sequence number (kmsg), the byte offset after the line (a log). None when not from the agent.
    seq: int | None = None
    offset: int | None = None


@dataclass(kw_only=True)
class GuestRecordRead(Event):
    """The guest's own record was read directly (`backend.analysis.evidence`), at a failure or when a resumed
    run had a gap: what the kernel, Docker and VAST's logs kept since this boot, whether or not the
    monitor was there to see it happen. The lines that matter and that no one had reported yet come
    as KernelMessageSeen events (source "record:kmsg", "record:<log path>"); this event counts them
    and carries the rest."""

    reason: str  # "failure" | "resume"
    reachable: bool = True
    error: str = ""  # why the record, or a part of it, could not be read
    boot_id: str = ""
    oom_kills: int | None = None  # /proc/vmstat oom_kill: the OOM killer's kills since this boot
    containers: list = field(default_factory=list)  # [{"name","status","oom_killed","exit_code","finished"}]
    kernel_records: int = 0  # records of the kernel's log read (since boot)
    new_lines: int = 0  # lines that matter, not reported before (sent as KernelMessageSeen)


@dataclass(kw_only=True)
class SamplingGapped(Event):
    """The monitor was not sampling from `start` to `end`: a gap, never interpolated."""

    start: float
    end: float
    reason: str = ""


@dataclass(kw_only=True)
class MonitorStarted(Event):
    agent_version: str
    interval_s: float
    python: str = ""
    tick_ms: float = 0.0  # the stall detector's tick (target ms)
    warnings: list = field(default_factory=list)  # [{"part","text"}]: what the agent cannot sample


@dataclass(kw_only=True)
class MonitorWarned(Event):
    """A part of the monitoring agent stopped working after it started (e.g. a file went away)."""

    part: str
    text: str


# --- diagnosis, recovery, faults ---------------------------------------------------------------


@dataclass(kw_only=True)
class AlertRaised(Event):
    id: str
    severity: str  # "warning" | "critical"
    message: str
    evidence: str = ""


@dataclass(kw_only=True)
class DiagnosisMade(Event):
    items: list  # [{"id","cause","remedy","evidence"}]


@dataclass(kw_only=True)
class RemedyApplied(Event):
    id: str
    changes: dict
    attempt: int


@dataclass(kw_only=True)
class RetryScheduled(Event):
    """An operation failed in a way worth retrying; it will be retried after `delay_s`."""

    operation: str
    attempt: int
    error: str
    delay_s: float


@dataclass(kw_only=True)
class FaultInjected(Event):
    """A fault the target made happen on purpose (a simulated target's fault injection), as the
    target reports it: which part (`source`: pve, ssh, vms), what (`kind`), before or after the
    request was handled (`when`), and its details (method, path...)."""

    source: str
    fault: str
    when: str = "before"
    details: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class RecoveredFromFault(Event):
    operation: str
    attempts: int
    error: str = ""


@dataclass(kw_only=True)
class ReportWritten(Event):
    path: str


# --- imported runs -----------------------------------------------------------------------------


@dataclass(kw_only=True)
class TracesImported(Event):
    """A folder of hand-made monitoring traces was turned into this run (backend/analysis/importer.py)."""

    source: str  # the folder imported
    files: list = field(default_factory=list)  # [{"name","kind","records","skipped","first","last","note"}]
    facts: dict = field(default_factory=dict)  # what the traces tell about the guest: kernel, ncpu, ...
    notes: list = field(default_factory=list)  # what was assumed or left out, one sentence each
