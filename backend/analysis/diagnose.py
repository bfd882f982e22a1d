"""Diagnosis: failure signatures in a run's events -> cause -> remedy, with the evidence.

Signatures (the field report's three attempts and the raw traces of the one that worked):
- OOM killer lines (or /proc/vmstat's oom_kill rising, or the guest's record read after the fact:
  oom_kill since boot, Docker's OOMKilled) -> RAM too small; the remedy names the RAM the observed
  peak needs, capped at what the host can give.
- `PANIC[P653...]` / `vmsg_keepalive_fiber`, or stalls of seconds with rising steal -> vCPU
  overcommit; the remedy is vCPUs <= the host's physical cores.
- ACTIVATING -> (UNKNOWN ->) INIT, a FAILED cluster, `cluster_deploy` FAILED.
- A phase (or ACTIVATING) running far beyond the field run's duration -> stuck.
- Early warnings, raised as alerts before a failure: sustained steal, a stall over 1 s,
  MemAvailable under a few GiB (critical during activation).

`Watcher` consumes events one at a time (live: the dashboard, headless) and returns what became
true with each one; `diagnose(events)` is the same over a recorded run (the report). Remedies carry
`changes` a later rollback-and-retry can apply through the Proxmox API (`{"vcpus": 12}`,
`{"memory_gib": 120}`). Severity "critical" explains (or foretells) a failed install; "warning"
is a risk the run survived. A rollback starts a new attempt: its diagnosis is its own (the earlier
attempts' items stay in `all_items()` for the report).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from backend import events as ev
from backend.clients.vtask import TASK_FAILED_STATES
from backend.model import vmconfig
from backend.model.guestmemory import guest_gib, sized, vm_gib_for_guest
from backend.model.hostfacts import GIB, NodeFacts
from backend.model.sizing import (
    FIELD_VM_MEMORY_GIB,
    GUEST_MIN_GIB,
    MEMORY_MIN_GIB,
    MEMORY_RECOMMENDED_GIB,
    VALIDATED_VCPUS,
    max_safe_memory_gib,
)

# --- thresholds (the field run as reference) ---------------------------------------------------

STEAL_SUSTAINED_PCT = 10.0  # mean over STEAL_WINDOW_S
STEAL_WINDOW_S = 60.0
STEAL_RISING_PCT = 5.0  # the recent mean that, with stalls of seconds, says overcommit
STEAL_BASELINE_S = 300.0
STALL_ALERT_MS = 1000.0
STALL_SECONDS_MS = 2000.0  # one stall this long, or two over STALL_ALERT_MS within STALL_PAIR_S
STALL_PAIR_S = 600.0
MEM_LOW_GIB = 4.0  # warning; the field run's MemAvailable fell to 3.3 GiB in activation, 1.2 GiB after
MEM_CRITICAL_GIB = 2.0  # critical when it falls this low before the cluster is ONLINE
MEM_HEADROOM_GIB = 8.0  # what a remedy leaves available at the observed peak
STUCK_FACTOR = 3.0
STUCK_MIN_EXTRA_S = 600.0

# Durations of the field run (seconds), from its raw install log: Phase 8 bootstrap 18:32:13 ->
# 18:47:00, Phase 9 cluster creation 18:47:00 -> 19:04:54, ACTIVATING 18:48:39 -> ONLINE 18:59:20,
# cluster_deploy runtime 1064.11 s. Step ids are matched exactly first, then by keyword.
REFERENCE_STEP_S = {
    "bootstrap": 887.0,
    "cluster_create": 1074.0,
    "wait_online": 650.0,
    "wait_deploy": 1064.0,
}
REFERENCE_KEYWORDS = (("bootstrap", 887.0), ("deploy", 1064.0), ("create", 1074.0), ("online", 650.0))
REFERENCE_STATE_S = {"ACTIVATING": 641.0, "INIT": 9.0}
KERNEL_SIGNATURES = (
    ("oom", re.compile(r"invoked oom-killer|Out of memory|oom-kill:|Memory cgroup out of memory|Killed process \d+")),
    ("panic", re.compile(r"PANIC\[|Kernel panic|vmsg_keepalive_fiber")),
    ("hung_task", re.compile(r"blocked for more than \d+ seconds")),
    ("soft_lockup", re.compile(r"soft lockup")),
    ("rcu_stall", re.compile(r"rcu.{0,20}detected stall")),
)
SIGKILL_EXIT = 137  # 128 + SIGKILL: Docker's exit code for a container whose main process was killed
OVERCOMMIT_LINE = re.compile(r"PANIC\[P653|vmsg_keepalive_fiber|test_if_stuck")

def classify_line(text: str) -> str:
    """The signature a kernel or VAST log line matches ("oom", "panic", ...), or ""."""
    for name, pattern in KERNEL_SIGNATURES:
        if pattern.search(text):
            return name
    return ""


def reference_duration(step: str) -> float | None:
    """The field run's duration of a step, when it has one."""
    if step in REFERENCE_STEP_S:
        return REFERENCE_STEP_S[step]
    lowered = step.lower()
    return next((seconds for word, seconds in REFERENCE_KEYWORDS if word in lowered), None)


def stuck_limit(reference_s: float) -> float:
    return max(STUCK_FACTOR * reference_s, reference_s + STUCK_MIN_EXTRA_S)


# --- what a diagnosis is -----------------------------------------------------------------------


@dataclass
class Evidence:
    t: float | None
    source: str  # "kmsg", "install log", "samples", "heartbeat", "cluster state", "vtask", "step", ...
    text: str
    value: float | None = None

    def to_dict(self) -> dict:
        return {"t": self.t, "source": self.source, "text": self.text, "value": self.value}


@dataclass
class Item:
    """One diagnosis (a cause) or alert (an early warning), with its remedy and evidence."""

    id: str
    kind: str  # "diagnosis" | "alert"
    severity: str  # "critical" | "warning"
    cause: str
    remedy: str = ""
    changes: dict = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    t: float | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "severity": self.severity, "cause": self.cause,
                "remedy": self.remedy, "changes": dict(self.changes), "t": self.t,
                "evidence": [e.to_dict() for e in self.evidence]}

    def to_event(self) -> ev.Event:
        """An AlertRaised for an alert; a one-item DiagnosisMade for a diagnosis."""
        if self.kind == "alert":
            return ev.AlertRaised(ts=self.t or 0.0, id=self.id, severity=self.severity, message=self.cause,
                                  evidence="; ".join(e.text for e in self.evidence))
        return ev.DiagnosisMade(ts=self.t or 0.0, items=[self.to_dict()])


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


# --- the watcher -------------------------------------------------------------------------------


class Watcher:
    """Consumes a run's events one by one; `feed` returns the items that became true with it.

    Memory stays bounded over a 24-hour run: a few minutes of steal and stalls, a few counters."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.earlier: list[Item] = []  # the items of attempts that ended in a rollback
        self.now: float = 0.0
        self.host_cores: int | None = None
        self.host: NodeFacts | None = None
        self.vm_vcpus: int | None = None
        self.vm_memory_gib: float | None = None
        self.mem_total: float | None = None
        self.mem_peak_used: float = 0.0
        self.mem_peak_used_t: float | None = None
        self.mem_min_available: float | None = None
        self.mem_min_available_t: float | None = None
        self.mem_min_available_state = ""
        self.mem_min_activation: float | None = None
        self.oom_kills: int | None = None
        self.oom_t: float | None = None  # when the OOM killer first ran, by a dated piece of evidence
        self.cluster_state = ""
        self.state_since: float | None = None
        self.states: deque[tuple[float, str]] = deque(maxlen=4)
        self.states_by_source: dict[str, deque[tuple[float, str]]] = {}
        self.running: dict[str, tuple[float, str]] = {}  # step -> (start, title)
        # steal of the last minute (recent) and of the four minutes before it (baseline), with sums
        self._recent: deque[tuple[float, float]] = deque()
        self._baseline: deque[tuple[float, float]] = deque()
        self._recent_sum = 0.0
        self._baseline_sum = 0.0
        self._stalls: deque[tuple[float, float]] = deque()
        self.stall_max_ms = 0.0

    # --- public ---

    def feed(self, event: ev.Event) -> list[Item]:
        if event.ts:
            self.now = max(self.now, event.ts)
        handler = getattr(self, f"_on_{event.kind}", None)
        new = handler(event) if handler is not None else []
        new = list(new or [])
        new.extend(self._check_stuck())
        return new

    def feed_sample(self, sample: dict, ts: float | None = None) -> list[Item]:
        """A sample dict as the agent writes it (the report's fast path skips building events)."""
        t = float(sample.get("t") or ts or 0.0)
        if t:
            self.now = max(self.now, t)
        new = self._sample(t, sample)
        new.extend(self._check_stuck())
        return new

    def finish(self) -> list[Item]:
        """Conclusions only the whole run allows (called once, at the end of a recording)."""
        new: list[Item] = []
        low = self.mem_min_available
        if low is not None and low < MEM_LOW_GIB * GIB and "oom" not in self.items:
            memory_gib = self._memory_needed(oom=False)
            state = f" (cluster {self.mem_min_available_state})" if self.mem_min_available_state else ""
            new.append(self._raise(Item(
                "memory_tight", "diagnosis", "warning",
                f"Memory headroom was tight: MemAvailable fell to {_gib(low)} of {_gib(self.mem_total or 0)}"
                f"{state}; a little more load would have met the OOM killer (the field run's attempt 1).",
                *self._memory_remedy(memory_gib),
                [Evidence(self.mem_min_available_t, "samples", f"MemAvailable {_gib(low)}", low / GIB),
                 Evidence(self.mem_peak_used_t, "samples", f"peak used {_gib(self.mem_peak_used)}",
                          self.mem_peak_used / GIB)],
                self.mem_min_available_t,
            )))
        oom = self.items.get("oom")
        state = self._state_at(self.oom_t) if oom is not None and self.oom_t is not None else ""
        if oom is not None and state:  # a line read after the fact may predate the states it fell in
            oom.cause = _oom_cause(state)
        self._one_retry_fixes_every_cause()
        root = self.items.get("overcommit") or self.items.get("oom")
        for consequence in ("activation_collapsed", "deploy_failed", "cluster_failed"):
            item = self.items.get(consequence)
            if item is not None and root is not None and not item.changes:
                item.changes = dict(root.changes)
                item.remedy = f"Roll back to the pre-install snapshot, then ({root.id}): {root.remedy}"
        return [i for i in new if i is not None]

    def all_items(self) -> list[Item]:
        """Every attempt's items: those of attempts rolled back, then the current one's."""
        return [*self.earlier, *self.items.values()]

    def _one_retry_fixes_every_cause(self) -> None:
        """Two causes at once (an OOM on a VM that also had more vCPUs than cores, as attempt 1 may have
        had): the earliest cause's remedy, the one a retry applies, takes the others' changes too."""
        causes = sorted((i for i in self.items.values()
                         if i.kind == "diagnosis" and i.severity == "critical" and i.changes),
                        key=lambda i: i.t or 0.0)
        for other in causes[1:]:
            extra = {key: value for key, value in other.changes.items() if key not in causes[0].changes}
            if extra:
                causes[0].changes = {**causes[0].changes, **extra}
                causes[0].remedy += f" Also ({other.id}): {other.remedy}"

    def diagnoses(self) -> list[Item]:
        return [i for i in self.items.values() if i.kind == "diagnosis"]

    def alerts(self) -> list[Item]:
        return [i for i in self.items.values() if i.kind == "alert"]

    # --- facts about the host and the VM ---

    def _on_HostFactsGathered(self, e: ev.HostFactsGathered) -> list[Item]:
        try:
            self.host = NodeFacts.from_dict(dict(e.facts))
            self.host_cores = self.host.cores
        except (TypeError, ValueError, KeyError):
            cores = e.facts.get("cores") if isinstance(e.facts, dict) else None
            self.host_cores = int(cores) if isinstance(cores, int | float) else self.host_cores
        return []

    def _vm_config(self, config: dict) -> None:
        self.vm_vcpus = vmconfig.vcpus_of(config) or self.vm_vcpus
        memory = config.get("memory")
        if isinstance(memory, int | float) or (isinstance(memory, str) and memory.isdigit()):
            self.vm_memory_gib = int(memory) / 1024  # Proxmox: MiB
        if isinstance(config.get("memory_gib"), int | float):
            self.vm_memory_gib = float(config["memory_gib"])

    def _on_VmCreated(self, e: ev.VmCreated) -> list[Item]:
        self._vm_config(dict(e.config))
        return []

    def _on_VmConfigured(self, e: ev.VmConfigured) -> list[Item]:
        self._vm_config(dict(e.changes))
        return []

    def _on_TracesImported(self, e: ev.TracesImported) -> list[Item]:
        if isinstance(e.facts.get("ncpu"), int):
            self.vm_vcpus = self.vm_vcpus or e.facts["ncpu"]
        return []

    # --- steps and the cluster ---

    def _on_StepStarted(self, e: ev.StepStarted) -> list[Item]:
        self.running[e.step] = (e.ts, e.title)
        return []

    def _on_StepFinished(self, e: ev.StepFinished) -> list[Item]:
        self.running.pop(e.step, None)
        return []

    def _on_StepSkipped(self, e: ev.StepSkipped) -> list[Item]:
        self.running.pop(e.step, None)
        return []

    def _on_SnapshotRolledBack(self, e: ev.SnapshotRolledBack) -> list[Item]:
        """The guest is back where it was before the install and boots again: the cluster, its steps
        and what the attempt that ended showed start over (a signature of the next attempt is news
        again; the ended attempt's items stay in `earlier`, for the report)."""
        self.cluster_state, self.state_since = "", None
        self.states.clear()
        self.states_by_source.clear()
        self.running.clear()
        self.mem_min_activation = None
        self.mem_min_available = self.mem_min_available_t = None
        self.mem_min_available_state = ""
        self.oom_kills = None  # a new boot counts from 0
        self.oom_t = None
        self.earlier.extend(self.items.values())
        self.items = {}
        return []

    def _on_RunFinished(self, e: ev.RunFinished) -> list[Item]:
        self.running.clear()
        return []

    def _on_ClusterStateChanged(self, e: ev.ClusterStateChanged) -> list[Item]:
        """States are followed per source (the install log and VMS polls report the same states at
        slightly different moments), so one source lagging the other never looks like a collapse."""
        state = e.state.upper()
        seen = self.states_by_source.setdefault(e.source, deque(maxlen=4))
        if seen and seen[-1][1] == state:
            return []
        seen.append((e.ts, state))
        if state != self.cluster_state:
            self.cluster_state, self.state_since = state, e.ts
            self.states.append((e.ts, state))
        names = [s for _, s in seen]
        new: list[Item] = []
        if state == "INIT" and "ACTIVATING" in names[:-1]:
            path = " -> ".join(names[names.index("ACTIVATING"):])
            new.append(self._raise(Item(
                "activation_collapsed", "diagnosis", "critical",
                f"Activation collapsed: the cluster went {path} (the leader was lost and the cluster fell "
                "back to INIT, as in the field run's attempt 2); it will not come ONLINE by itself.",
                "Roll back to the pre-install snapshot and retry once its cause is fixed "
                "(most often vCPU overcommit or too little RAM).",
                {},
                [Evidence(t, f"cluster state ({e.source})", s) for t, s in seen],
                e.ts,
            )))
            new.extend(self._overcommit_by_config(e.ts))
        if state in ("FAILED", "KILLED"):
            new.append(self._raise(Item(
                "cluster_failed", "diagnosis", "critical", f"The cluster went to {state}.",
                "Roll back to the pre-install snapshot and retry once its cause is fixed.", {},
                [Evidence(e.ts, "cluster state", f"{e.previous or '?'} -> {state}")], e.ts)))
        return [i for i in new if i is not None]

    def _overcommit_by_config(self, t: float) -> list[Item]:
        """A collapsed activation on a VM with more vCPUs than the host has cores: overcommit, even
        before (or without) a PANIC line or stalls to show it."""
        if "overcommit" in self.items or not (self.vm_vcpus and self.host_cores and self.vm_vcpus > self.host_cores):
            return []
        item = self._raise(Item(
            "overcommit", "diagnosis", "critical",
            f"vCPU overcommit: the VM has {self.vm_vcpus} vCPUs on a host with {self.host_cores} physical cores; "
            "under the activation load the keepalive fibers miss their deadlines (the field run's attempt 2).",
            f"Give the VM {self.host_cores} vCPUs (1 socket): no more vCPUs than this host's physical cores; "
            "hyperthreads do not count.",
            {"vcpus": self.host_cores},
            [Evidence(t, "VM config", f"{self.vm_vcpus} vCPUs", float(self.vm_vcpus)),
             Evidence(t, "host", f"{self.host_cores} physical cores", float(self.host_cores))],
            t))
        return [item] if item else []

    def _on_VtaskChanged(self, e: ev.VtaskChanged) -> list[Item]:
        if e.name == "cluster_deploy" and e.state.upper() in TASK_FAILED_STATES:
            item = self._raise(Item(
                "deploy_failed", "diagnosis", "critical",
                f"The cluster_deploy task ({e.task_id}) ended {e.state.upper()}.",
                "Roll back to the pre-install snapshot and retry once its cause is fixed "
                "(`PATCH /clusters/{id}/resume_deploy/` rarely helps after a collapsed activation).",
                {}, [Evidence(e.ts, "vtask", e.message or f"cluster_deploy {e.state}")], e.ts))
            # a failed deploy on more vCPUs than cores names the overcommit too, whatever else killed it
            return [i for i in (item, *self._overcommit_by_config(e.ts)) if i]
        return []

    def _on_VastRestarted(self, e: ev.VastRestarted) -> list[Item]:
        """VAST did not come back after a reboot (the reboot test, backend/steps/restart.py)."""
        if e.ok:
            return []
        evidence = [Evidence(e.ts, e.how, str(line)) for line in e.output[-4:]]
        stopped = [c for c in e.containers if isinstance(c, dict) and c.get("state") != "running"]
        evidence += [Evidence(e.ts, "docker ps -a", f"{c.get('name')} {c.get('state')}") for c in stopped[:6]]
        if not any(isinstance(c, dict) and c.get("name") == "vast_vms" for c in e.containers):
            evidence.append(Evidence(e.ts, "docker ps -a", "no vast_vms container (it runs with --rm)"))
        evidence.append(Evidence(e.ts, "cluster state", e.cluster_state or "VMS did not answer"))
        platform_down = any(str(c.get("name", "")).startswith("vast_platform") for c in stopped)
        why = ("The VAST node containers did not come back with Docker after the reboot, so there was nothing "
               f"for {e.how} to start VMS in. " if platform_down else "")
        item = self._raise(Item(
            "restart_failed", "diagnosis", "critical",
            f"VAST did not come back after a reboot: {e.problem}. The cluster was installed and ONLINE before "
            "the reboot; the vast-online snapshot was not taken of a cluster that does not come back.",
            f"{why}Start VAST the other way on the guest: `{e.alternative}`, wait for ONLINE (the VMS UI or "
            f"`vast-loopback report`), then take the vast-online snapshot by hand. Until {e.how} works here, a "
            "restored vast-online needs the same restart; `vast: {reboot_test: false}` skips this test.",
            {}, evidence, e.ts))
        return [item] if item else []

    def _check_stuck(self) -> list[Item]:
        new: list[Item] = []
        for step, (start, title) in list(self.running.items()):
            reference = reference_duration(step)
            if reference is None or self.now - start <= stuck_limit(reference):
                continue
            new.append(self._raise(Item(
                f"stuck:{step}", "diagnosis", "critical",
                f"Stuck: step '{title or step}' has run {_mmss(self.now - start)}, far beyond the "
                f"{_mmss(reference)} it took in the field run.",
                "Look at the install log's last lines; if nothing moves, roll back to the pre-install "
                "snapshot and retry.",
                {}, [Evidence(start, "step", f"{step} started"),
                     Evidence(self.now, "step", f"still running after {_mmss(self.now - start)}",
                              self.now - start)],
                self.now)))
        state_ref = REFERENCE_STATE_S.get(self.cluster_state)
        if state_ref and self.state_since is not None and self.now - self.state_since > stuck_limit(state_ref):
            new.append(self._raise(Item(
                f"stuck:{self.cluster_state}", "diagnosis", "critical",
                f"Stuck: the cluster has been {self.cluster_state} for {_mmss(self.now - self.state_since)} "
                f"({_mmss(state_ref)} in the field run).",
                "Check steal, stalls and memory; if nothing moves, roll back and retry.",
                {}, [Evidence(self.state_since, "cluster state", self.cluster_state)], self.now)))
        return [i for i in new if i is not None]

    # --- kernel and log lines ---

    def _on_KernelMessageSeen(self, e: ev.KernelMessageSeen) -> list[Item]:
        return self._line(e.ts, e.text, e.match or classify_line(e.text), e.source or "kmsg")

    def _on_InstallLogAppended(self, e: ev.InstallLogAppended) -> list[Item]:
        new: list[Item] = []
        for line in e.lines:
            text = str(line)
            if "PANIC" in text or "oom" in text.lower() or "Out of memory" in text or "vmsg_keepalive" in text:
                new.extend(self._line(e.ts, text, classify_line(text), "install log"))
        return new

    def _on_GuestRecordRead(self, e: ev.GuestRecordRead) -> list[Item]:
        """The guest's own record, read after the fact (its lines came before it as KernelMessageSeen):
        the OOM killer's kills since this boot, and the containers Docker saw OOM-killed. A container
        ended by SIGKILL (exit 137) is not proof of an OOM by itself (`docker kill` does the same, and
        Docker leaves OOMKilled false when the kernel's global OOM killer struck): it only adds to an
        OOM the record shows otherwise."""
        new: list[Item] = []
        if e.oom_kills:
            new.extend(self._oom(Evidence(e.ts, "guest record", f"/proc/vmstat oom_kill: {e.oom_kills} since this boot",
                                          float(e.oom_kills)), dated=False))
        for container in e.containers:
            name, code = container.get("name"), container.get("exit_code")
            if container.get("oom_killed"):
                new.extend(self._oom(Evidence(container.get("finished") or e.ts, "docker",
                                              f"container {name} was OOM-killed (exit {code})"),
                                     dated=container.get("finished") is not None))
            elif code == SIGKILL_EXIT and "oom" in self.items:
                self._oom(Evidence(container.get("finished") or e.ts, "docker",
                                   f"container {name} was killed (exit {code})"))
        return new

    def _line(self, t: float, text: str, match: str, source: str) -> list[Item]:
        if match == "oom":
            return self._oom(Evidence(t, source, text.strip()[:300]))
        if match == "panic" and OVERCOMMIT_LINE.search(text):
            return self._overcommit([Evidence(t, source, text.strip()[:300])], panic=True)
        if match in ("hung_task", "soft_lockup", "rcu_stall"):
            item = self._raise(Item(f"kernel_{match}", "alert", "warning",
                                    f"The guest kernel reported a {match.replace('_', ' ')}.", "", {},
                                    [Evidence(t, source, text.strip()[:300])], t))
            return [item] if item else []
        return []

    def _oom(self, evidence: Evidence, *, dated: bool = True) -> list[Item]:
        """`dated`: the evidence's time is when the OOM killer ran (not when it was read)."""
        if dated and evidence.t is not None and (self.oom_t is None or evidence.t < self.oom_t):
            self.oom_t = evidence.t
        if "oom" in self.items:
            if len(self.items["oom"].evidence) < 5:
                self.items["oom"].evidence.append(evidence)
            return []
        memory_gib = self._memory_needed(oom=True)
        item = self._raise(Item(
            "oom", "diagnosis", "critical", _oom_cause(self._state_at(self.oom_t) if self.oom_t is not None else ""),
            *self._memory_remedy(memory_gib),
            [evidence] + ([Evidence(self.mem_peak_used_t, "samples", f"peak used {_gib(self.mem_peak_used)}",
                                    self.mem_peak_used / GIB)] if self.mem_peak_used else []),
            evidence.t))
        return [item] if item else []

    def _memory_needed(self, *, oom: bool) -> float:
        """GiB the guest must see (MemTotal). After an OOM this run's peak was cut short at what the guest
        had: the field run's peak use is the evidence of what is enough, unless the guest had that
        already (then more than it had). Without one: this run's peak with MEM_HEADROOM_GIB to spare."""
        guest = (self.mem_total or 0.0) / GIB or (guest_gib(self.vm_memory_gib) if self.vm_memory_gib else 0.0)
        if oom:
            return GUEST_MIN_GIB if guest < GUEST_MIN_GIB else guest + MEM_HEADROOM_GIB
        return max(GUEST_MIN_GIB, self.mem_peak_used / GIB + MEM_HEADROOM_GIB)

    def _memory_remedy(self, guest_need_gib: float) -> tuple[str, dict]:
        """The remedy's text and changes: the VM size whose guest sees `guest_need_gib` (the report's
        128 GB+ or the field's 120 GiB VM where they suffice), capped at what the host can give."""
        needed = vm_gib_for_guest(guest_need_gib)
        why = f"the guest should see {guest_need_gib:.1f} GiB: {self._memory_reason(guest_need_gib)}"
        cap = (max_safe_memory_gib(self.host, int(self.vm_vcpus or VALIDATED_VCPUS))
               if self.host is not None else None)
        fits = [size for size in (MEMORY_RECOMMENDED_GIB, FIELD_VM_MEMORY_GIB)
                if size >= needed and (cap is None or size <= cap)]
        if fits or cap is None or needed <= cap:
            memory_gib = fits[0] if fits else needed
            return f"Give the VM {sized(memory_gib)}; {why}.", {"memory_gib": memory_gib}
        if cap >= MEMORY_MIN_GIB and cap > (self.vm_memory_gib or 0):
            return (f"Give the VM {sized(cap)}, the most this host can give; {why} (a VM of {needed} GiB, "
                    "on a bigger host).", {"memory_gib": cap})
        return f"Use a bigger host: this one can give a VM at most {sized(cap)}; {why}.", {}

    def _memory_reason(self, guest_need_gib: float) -> str:
        """Which figure decided what the guest needs."""
        peak = self.mem_peak_used / GIB
        if guest_need_gib <= GUEST_MIN_GIB + 0.05:
            return "the field run's guest used that much at its peak"
        if peak and abs(guest_need_gib - (peak + MEM_HEADROOM_GIB)) < 0.05:
            return f"this run's peak use of {peak:.1f} GiB and {MEM_HEADROOM_GIB:.0f} GiB to spare"
        return f"more than the {guest_need_gib - MEM_HEADROOM_GIB:.1f} GiB it had, where the OOM killer cut its use short"

    # --- samples ---

    def _on_SampleTaken(self, e: ev.SampleTaken) -> list[Item]:
        return self._sample(float(e.sample.get("t") or e.ts or 0.0), e.sample)

    def _sample(self, t: float, sample: dict) -> list[Item]:
        new: list[Item] = []
        cpu = sample.get("cpu")
        if isinstance(cpu, dict) and isinstance(cpu.get("steal"), int | float):
            new.extend(self._steal_sample(t, float(cpu["steal"])))
            if isinstance(cpu.get("ncpu"), int) and self.vm_vcpus is None:
                self.vm_vcpus = cpu["ncpu"]
        mem = sample.get("mem")
        if isinstance(mem, dict):
            new.extend(self._mem_sample(t, mem))
        oom_kill = sample.get("oom_kill")
        if isinstance(oom_kill, int | float):
            if self.oom_kills is not None and oom_kill > self.oom_kills:
                new.extend(self._oom(Evidence(t, "samples", f"/proc/vmstat oom_kill rose to {int(oom_kill)}",
                                              float(oom_kill))))
            self.oom_kills = int(oom_kill)
        return new

    def _mem_sample(self, t: float, mem: dict) -> list[Item]:
        total, available = mem.get("total"), mem.get("available")
        if not isinstance(total, int | float) or not isinstance(available, int | float):
            return []
        self.mem_total = float(total)
        used = float(mem.get("used", total - available))
        if used > self.mem_peak_used:
            self.mem_peak_used, self.mem_peak_used_t = used, t
        if self.mem_min_available is None or available < self.mem_min_available:
            self.mem_min_available, self.mem_min_available_t = float(available), t
            self.mem_min_available_state = self.cluster_state
        activating = self.cluster_state == "ACTIVATING"
        if activating and (self.mem_min_activation is None or available < self.mem_min_activation):
            self.mem_min_activation = float(available)
        new: list[Item] = []
        where = "during activation" if activating else (f"while {self.cluster_state}" if self.cluster_state else "")
        if available < MEM_LOW_GIB * GIB and "memory_low" not in self.items:
            new.append(self._raise(Item(
                "memory_low", "alert", "warning",
                f"MemAvailable is down to {_gib(available)} of {_gib(total)} {where}".rstrip() + ".",
                "", {}, [Evidence(t, "samples", f"MemAvailable {_gib(available)}", available / GIB)], t)))
        before_online = self.cluster_state not in ("ONLINE",) and bool(self.cluster_state or self.running)
        if available < MEM_CRITICAL_GIB * GIB and before_online and "memory_critical" not in self.items:
            new.append(self._raise(Item(
                "memory_critical", "alert", "critical",
                f"MemAvailable is down to {_gib(available)} of {_gib(total)} {where}".rstrip()
                + ": the OOM killer is close.",
                "", {}, [Evidence(t, "samples", f"MemAvailable {_gib(available)}", available / GIB)], t)))
        return [i for i in new if i is not None]

    def _steal_sample(self, t: float, steal: float) -> list[Item]:
        self._recent.append((t, steal))
        self._recent_sum += steal
        while self._recent and self._recent[0][0] <= t - STEAL_WINDOW_S:
            moved = self._recent.popleft()
            self._recent_sum -= moved[1]
            self._baseline.append(moved)
            self._baseline_sum += moved[1]
        while self._baseline and self._baseline[0][0] <= t - STEAL_BASELINE_S:
            self._baseline_sum -= self._baseline.popleft()[1]
        if len(self._recent) < STEAL_WINDOW_S / 2 or "steal_sustained" in self.items:
            return []
        mean = self._recent_sum / len(self._recent)
        if mean < STEAL_SUSTAINED_PCT:
            return []
        item = self._raise(Item(
            "steal_sustained", "alert", "warning",
            f"CPU steal has averaged {mean:.1f} % over the last minute: the host is not giving the VM its "
            "vCPUs (overcommit or other load on the host).",
            "", {}, [Evidence(t, "samples", f"steal mean {mean:.1f} % over {STEAL_WINDOW_S:.0f} s", mean)], t))
        return [item] if item else []

    def steal_trend(self) -> tuple[float | None, float | None]:
        """Mean steal of the last minute and of the four minutes before it (None when unknown)."""
        recent = self._recent_sum / len(self._recent) if self._recent else None
        before = self._baseline_sum / len(self._baseline) if self._baseline else None
        return recent, before

    # --- stalls ---

    def _on_StallDetected(self, e: ev.StallDetected) -> list[Item]:
        t = e.start or e.ts
        self.stall_max_ms = max(self.stall_max_ms, e.length_ms)
        new: list[Item] = []
        if e.length_ms >= STALL_ALERT_MS:
            self._stalls.append((t, e.length_ms))
            while self._stalls and self._stalls[0][0] < t - STALL_PAIR_S:
                self._stalls.popleft()
            item = self._raise(Item(
                "stall_over_1s", "alert", "critical" if e.length_ms >= STALL_SECONDS_MS else "warning",
                f"The guest stalled for {e.length_ms / 1000:.2f} s: nothing ran on its vCPUs.",
                "", {}, [Evidence(t, "heartbeat", f"stall {e.length_ms:.0f} ms", e.length_ms)], t))
            if item:
                new.append(item)
            seconds = [s for s in self._stalls if s[1] >= STALL_SECONDS_MS]
            if seconds or len(self._stalls) >= 2:
                recent, before = self.steal_trend()
                rising = recent is not None and recent >= STEAL_RISING_PCT and (
                    before is None or recent >= before + 3.0)
                if rising or (recent is not None and recent >= STEAL_SUSTAINED_PCT):
                    evidence = [Evidence(ts, "heartbeat", f"stall {ms:.0f} ms", ms) for ts, ms in self._stalls]
                    evidence.append(Evidence(t, "samples", f"steal {recent:.1f} % over the last minute"
                                             + (f" (was {before:.1f} % before)" if before is not None else ""),
                                             recent))
                    new.extend(self._overcommit(evidence, panic=False))
        return new

    def _overcommit(self, evidence: list[Evidence], *, panic: bool) -> list[Item]:
        if "overcommit" in self.items:
            item = self.items["overcommit"]
            if panic and "P653" not in item.cause:
                item.cause = ("vCPU overcommit: the guest stalled for seconds while steal rose, then the VMsg "
                              "keepalive fiber was starved and VAST panicked (P653, as in the field run's attempt 2).")
            if len(item.evidence) < 8:
                item.evidence.extend(evidence[: 8 - len(item.evidence)])
            return []
        vcpus, cores = self.vm_vcpus, self.host_cores
        target: int | None
        if cores:
            target = cores if vcpus is None or vcpus > cores else None
            where = f"this host's {cores} physical cores"
        else:
            target = VALIDATED_VCPUS if vcpus is None or vcpus > VALIDATED_VCPUS else None
            where = f"the host's physical cores (not known here; the field host had {VALIDATED_VCPUS})"
        if vcpus is not None and cores:
            evidence.append(Evidence(None, "config", f"{vcpus} vCPUs on {cores} physical cores", float(vcpus)))
        what = ("the VMsg keepalive fiber was starved and VAST panicked (P653, as in the field run's attempt 2)"
                if panic else "the guest stalls for seconds while steal rises")
        if target is not None:
            remedy = f"Give the VM {target} vCPUs (1 socket): no more vCPUs than {where}; hyperthreads do not count."
        else:
            remedy = (f"The VM's {vcpus} vCPUs are already within {where}: the host itself is busy; stop other "
                      "VMs or load on the host, then retry.")
        item = self._raise(Item(
            "overcommit", "diagnosis", "critical",
            f"vCPU overcommit: {what}.", remedy, {"vcpus": target} if target else {}, evidence,
            evidence[0].t if evidence and evidence[0].t else self.now))
        return [item] if item else []

    # --- bookkeeping ---

    def _state_at(self, t: float | None) -> str:
        """The cluster's state at `t` (a line read from the guest's record after the fact is dated by
        its own time); "" when that is older than the states kept."""
        if t is None or not self.states or t >= self.states[-1][0]:
            return self.cluster_state
        before = [state for ts, state in self.states if ts <= t]
        return before[-1] if before else ""

    def _raise(self, item: Item) -> Item | None:
        if item.id in self.items:
            return None
        self.items[item.id] = self._with_memory_floor(item)
        return item

    def _with_memory_floor(self, item: Item) -> Item:
        """A remedy for another cause (e.g. vCPUs) on a VM whose guest sees less than the field run's
        peak use (a sizing blocker overridden on purpose) also gives it the memory: its retry would
        otherwise meet the OOM killer next (the field's attempt 3 changed both)."""
        vm = self.vm_memory_gib
        if (item.kind != "diagnosis" or item.severity != "critical" or not item.changes
                or "memory_gib" in item.changes or not vm or guest_gib(vm) >= GUEST_MIN_GIB):
            return item
        text, changes = self._memory_remedy(self._memory_needed(oom=False))
        if changes:
            item.changes = {**item.changes, **changes}
            item.remedy += (f" And the memory: the guest of this {vm:g} GiB VM sees ≈{guest_gib(vm):.1f} GiB, "
                            f"less than the field run's peak use, so a retry would meet the OOM killer next. {text}")
        return item


def _oom_cause(state: str) -> str:
    during = f" during {state}" if state else ""
    return f"RAM too small: the OOM killer ran{during} (as in the field run's attempt 1, whose guest saw 97 GB)."


def _mmss(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def diagnose(events: Iterable[ev.Event]) -> list[dict]:
    """Every diagnosis and alert of a recorded run, in the order they became true."""
    watcher = Watcher()
    for event in events:
        watcher.feed(event)
    watcher.finish()
    return [item.to_dict() for item in sorted(watcher.all_items(), key=lambda i: i.t or 0.0)]
