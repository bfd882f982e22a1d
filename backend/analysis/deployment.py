"""The deployment analysis of a run directory, as data: what `report` renders and `report --json`
prints. Every number comes from the run's raw events and samples, never from expectations.

One pass: the events (small) are read whole, the samples (86,400 for a day at 1 Hz) are streamed
from samples.jsonl and folded into running statistics and time bins as they come, with the
diagnosis watcher fed the same stream in time order, so that "during activation" means what the
cluster state was at that second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from backend import events as ev
from backend.analysis.diagnose import Watcher
from backend.analysis.evidence import describe as describe_record
from backend.analysis.stats import Stat, TimeBins, histogram
from backend.clients.installlog import line_timestamp
from backend.model.guestmemory import sized
from backend.model.hostfacts import GIB
from backend.run.journal import RUN_META, SAMPLES, DamagedMeta, RunDir
from backend.run.safefiles import Skipped, json_lines

BIN_S = 10.0
STALL_EDGES = (50, 100, 250, 500, 1000, 2000, 5000)
LIST_LIMIT = 50

# What the field report's prose says (../shared/seed/VAST_5.4_Deployment_Analysis.md), to set
# beside what this run's data says; where they differ, the report follows the data.
FIELD_PROSE = (
    ("timeline.total_s", "Install time", "32 min 41 s", 1961.0, "s"),
    ("timeline.activation_s", "Activation (ACTIVATING -> ONLINE)", "10 min 41 s", 641.0, "s"),
    ("cpu.steal_pct.max", "Max CPU steal", "0.33 %", 0.33, "%"),
    ("cpu.steal_pct.mean", "Mean CPU steal", "~0.05 %", 0.05, "%"),
    ("cpu.user_pct.max", "Max %user", "79 %", 79.0, "%"),
    ("load.load1.max", "Peak load average", "40.0", 40.0, ""),
    ("memory.used_gib.max", "Peak memory used in the guest", "105 GB", 105.0, "GiB"),
    ("memory.available_gib.min", "Lowest MemAvailable in the guest", "4-5 GB (activation), 2-4 GB (steady)", 2.0, "GiB"),
    ("disk.r_await_ms.max", "Max r_await", "21.65 ms", 21.65, "ms"),
    ("disk.w_await_ms.max", "Max w_await", "36.02 ms", 36.02, "ms"),
    ("heartbeat.gaps_over_2s", "Heartbeat gaps > 2 s", "0", 0.0, ""),
)

MILESTONES = (
    (re.compile(r"Installing build \S+ on"), "Installing the build on the hosts", "first"),
    (re.compile(r"Installed build \S+ on"), "Build installed on all hosts", "last"),
    (re.compile(r"Created [cd]node-\d+"), "CNodes and DNodes created", "last"),
    (re.compile(r"formatting cluster"), "Cluster formatting started", "first"),
    (re.compile(r"Waiting for cluster DB creation"), "Waiting for the cluster DB", "first"),
    (re.compile(r"S3 certificates were set"), "S3 certificates set", "first"),
    (re.compile(r"Trial license was created"), "Trial license created", "first"),
    (re.compile(r"bootstrap finished"), "Bootstrap finished", "first"),
    (re.compile(r"Done, VMS is up"), "VMS up", "first"),
)


def read_samples(path: Path, skipped: Skipped | None = None) -> Iterator[dict]:
    """Sample dicts from samples.jsonl, without building event objects (the fast path). Lines that
    are not samples are skipped and said in `skipped`; a sample's values are only ever read by
    name, so nesting is limited by what Python's JSON reader can read."""
    for number, data, reason in json_lines(path):
        sample = data.get("sample") if isinstance(data, dict) else None
        if isinstance(sample, dict):
            if "t" not in sample:
                sample["t"] = data.get("ts")
            if isinstance(sample.get("t"), int | float):
                yield sample
                continue
        if skipped is not None:
            skipped.add(path.name, number, reason or "not a sample (no sample with a time)")


class Stages:
    """What the install was doing at a time: provisioning, bootstrap, activation, ... from events."""

    ORDER = ("before install", "provisioning", "preparation", "install checks", "bootstrap", "cluster install",
             "activation", "online (deploy finishing)", "after activation", "steady state")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.step = ""
        self.group = ""
        self.cluster_state = ""
        self.activated = False
        self.deploy_done = False

    def apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.SnapshotRolledBack):  # the guest is back before the install: start over
            self.reset()
        elif isinstance(event, ev.StepStarted):
            self.step, self.group = event.step, event.group
        elif isinstance(event, ev.ClusterStateChanged):
            self.cluster_state = event.state.upper()
            self.activated = self.activated or self.cluster_state == "ACTIVATING"
        elif isinstance(event, ev.VtaskChanged) and event.name == "cluster_deploy" and \
                event.state.upper() in ("COMPLETED", "SUCCEEDED"):
            self.deploy_done = True

    @property
    def current(self) -> str:
        if self.deploy_done:
            return "steady state"
        if self.cluster_state == "ONLINE":
            return "online (deploy finishing)"
        if self.cluster_state == "ACTIVATING":
            return "activation"
        if self.cluster_state:
            return "after activation" if self.activated else "cluster install"
        step = self.step.lower()
        if "bootstrap" in step:
            return "bootstrap"
        if "creat" in step or "deploy" in step or "online" in step:
            return "cluster install"
        return {"provision": "provisioning", "prepare": "preparation", "install": "install checks"}.get(
            self.group, "before install")


class StageStats:
    """Per stage: its time span and a few maxima/minima."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    def add(self, stage: str, t: float, values: dict[str, float]) -> None:
        """Keys ending in `_min` keep the smallest value, all others the largest."""
        entry = self.stages.get(stage)
        if entry is None:
            entry = self.stages[stage] = {"stage": stage, "start": t, "end": t, "n": 0}
        entry["end"] = t
        entry["n"] += 1
        for key, value in values.items():
            old = entry.get(key)
            if old is None or (value < old if key.endswith("_min") else value > old):
                entry[key] = value
        steal = values.get("steal_max")
        if steal is not None:
            entry["_steal_sum"] = entry.get("_steal_sum", 0.0) + steal
            entry["_steal_n"] = entry.get("_steal_n", 0) + 1

    def rows(self) -> list[dict]:
        out = []
        for entry in sorted(self.stages.values(), key=lambda e: e["start"]):
            row = {k: (round(v, 2) if isinstance(v, float) and k not in ("start", "end") else v)
                   for k, v in entry.items() if not k.startswith("_")}
            if entry.get("_steal_n"):
                row["steal_mean"] = round(entry["_steal_sum"] / entry["_steal_n"], 2)
            out.append(row)
        return out


class Analysis:
    """Folds a run's events and samples into the report's data (see `result`)."""

    def __init__(self) -> None:
        self.watcher = Watcher()
        self.stage = Stages()
        self.cpu = {k: Stat(keep=(k == "steal")) for k in ("user", "sys", "iowait", "steal", "steal_max_cpu")}
        self.load = {k: Stat() for k in ("load1", "load5", "load15")}
        self.runnable = Stat()
        self.mem_used, self.mem_available = Stat(), Stat()
        self.mem_total: float | None = None
        self.disks: dict[str, dict[str, Stat]] = {}
        self.containers: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.hb_late = Stat(keep=True)  # each sample's worst tick lateness (ms)
        self.stage_cpu, self.stage_load, self.stage_mem = StageStats(), StageStats(), StageStats()
        self.bins = {k: TimeBins(BIN_S) for k in ("steal", "user_sys", "mem_used", "mem_available", "load1")}
        self.sample_count = 0
        self.first_sample: float | None = None
        self.last_sample: float | None = None
        self.sample_holes: list[dict] = []
        self.oom_kill_max = 0

    # --- samples ---

    def sample(self, s: dict) -> None:
        t = float(s["t"])
        self.watcher.feed_sample(s)
        stage = self.stage.current
        dt = s.get("dt")
        interval = float(dt) if isinstance(dt, int | float) and dt > 0 else 1.0  # a compressed lab samples sparser
        if self.last_sample is not None and t - self.last_sample > max(5.0, 2.5 * interval):
            self.sample_holes.append({"start": self.last_sample, "end": t, "duration_s": round(t - self.last_sample, 1),
                                      "reason": "no sample in the samples file", "dt": interval})
        self.sample_count += 1
        if self.first_sample is None:
            self.first_sample = t
        self.last_sample = t
        cpu = s.get("cpu")
        if isinstance(cpu, dict):
            values = {}
            for key in ("user", "sys", "iowait", "steal", "steal_max_cpu"):
                value = cpu.get(key)
                if isinstance(value, int | float):
                    self.cpu[key].add(float(value), t)
                    values[key] = float(value)
            if "steal" in values:
                self.bins["steal"].add(t, values["steal"])
            if "user" in values and "sys" in values:
                self.bins["user_sys"].add(t, values["user"] + values["sys"])
            self.stage_cpu.add(stage, t, {f"{k}_max": v for k, v in values.items() if k != "steal_max_cpu"})
        load = s.get("load")
        if isinstance(load, list | tuple) and len(load) >= 3:
            for key, value in zip(("load1", "load5", "load15"), load, strict=False):
                if isinstance(value, int | float):
                    self.load[key].add(float(value), t)
            if isinstance(load[0], int | float):
                self.bins["load1"].add(t, float(load[0]))
                self.stage_load.add(stage, t, {"load1_max": float(load[0]), "load5_max": float(load[1]),
                                               "load15_max": float(load[2])})
        if isinstance(s.get("runnable"), int | float):
            self.runnable.add(float(s["runnable"]), t)
        mem = s.get("mem")
        if isinstance(mem, dict) and isinstance(mem.get("total"), int | float) and \
                isinstance(mem.get("available"), int | float):
            total, available = float(mem["total"]), float(mem["available"])
            used = float(mem.get("used", total - available))
            self.mem_total = max(self.mem_total or 0.0, total)
            self.mem_used.add(used / GIB, t)
            self.mem_available.add(available / GIB, t)
            self.bins["mem_used"].add(t, used / GIB)
            self.bins["mem_available"].add(t, available / GIB)
            self.stage_mem.add(stage, t, {"used_max": used / GIB, "used_min": used / GIB,
                                          "available_min": available / GIB, "available_max": available / GIB})
        disks = s.get("disks")
        if isinstance(disks, dict):
            for name, disk in disks.items():
                if not isinstance(disk, dict):
                    continue
                stats = self.disks.get(name)
                if stats is None:
                    stats = self.disks[name] = {}
                for key, value in disk.items():
                    if isinstance(value, int | float):
                        stat = stats.get(key)
                        if stat is None:
                            stat = stats[key] = Stat()
                        stat.add(float(value), t)
        containers = s.get("containers")
        if isinstance(containers, dict):
            for name, row in containers.items():
                if isinstance(row, dict) and isinstance(row.get("mem"), int | float):
                    self._container(name, row, t)
        for key, value in s.items():
            if key.startswith("tcp_") and isinstance(value, dict):
                self._port(key, value, t)
        hb = s.get("hb")
        if isinstance(hb, dict) and isinstance(hb.get("max_ms"), int | float):
            self.hb_late.add(float(hb["max_ms"]), t)
        if isinstance(s.get("oom_kill"), int | float):
            self.oom_kill_max = max(self.oom_kill_max, int(s["oom_kill"]))

    def _container(self, name: str, row: dict, t: float) -> None:
        mem = float(row["mem"])
        entry = self.containers.get(name)
        if entry is None:
            entry = self.containers[name] = {"name": name, "first_seen": t, "peak": mem, "t_peak": t}
        if mem > entry["peak"]:
            entry["peak"], entry["t_peak"] = mem, t
        entry["last"], entry["last_seen"] = mem, t
        if isinstance(row.get("limit"), int | float):
            entry["limit"] = float(row["limit"])

    def _port(self, key: str, value: dict, t: float) -> None:
        entry = self.ports.setdefault(key, {"port": key[4:], "first_established": None, "max_established": 0,
                                            "max_connections": 0, "send_q_max": 0, "recv_q_max": 0})
        states = value.get("states") if isinstance(value.get("states"), dict) else {}
        established = int(states.get("ESTAB", 0))
        if established and entry["first_established"] is None:
            entry["first_established"] = t
        entry["max_established"] = max(entry["max_established"], established)
        entry["max_connections"] = max(entry["max_connections"], sum(int(v) for v in states.values()))
        for q in ("send_q_max", "recv_q_max"):
            if isinstance(value.get(q), int | float):
                entry[q] = max(entry[q], int(value[q]))



def analyse(run_dir: str | Path | RunDir) -> dict:
    """The analysis of a run directory (see FIELD_PROSE and the report for what each key means);
    the lines skipped while reading it are in `data["skipped"]` (and in the RunDir given)."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    events = sorted(run.events(), key=lambda e: e.ts)
    analysis = Analysis()
    index = 0
    for sample in read_samples(run.path / SAMPLES, run.skipped):
        t = float(sample["t"])
        while index < len(events) and events[index].ts <= t:
            analysis.watcher.feed(events[index])
            analysis.stage.apply(events[index])
            index += 1
        analysis.sample(sample)
    for event in events[index:]:
        analysis.watcher.feed(event)
        analysis.stage.apply(event)
    analysis.watcher.finish()
    return assemble(analysis, run, events)


def _meta(run: RunDir) -> dict:
    """run.json for the report: a damaged one is said (with the skipped lines), not fatal."""
    try:
        return run.read_meta()
    except DamagedMeta as exc:
        run.skipped.add(RUN_META, 0, exc.reason)
        return {}


def left_behind(run: RunDir, events: list[ev.Event], meta: dict) -> list[dict]:
    """What a run that did not finish left on the host: the VMs it created that no `destroy` deleted
    (with why), and those a `destroy` could not delete. A finished run's VM is its result, not debris."""
    cleanup = meta.get("cleanup") if isinstance(meta.get("cleanup"), dict) else {}
    deleted = {int(v.get("vmid", -1)) for v in cleanup.get("deleted") or () if isinstance(v, dict)}
    failed = [v for v in cleanup.get("left") or () if isinstance(v, dict)]
    if meta.get("outcome") in ("done", "online") and not failed:
        return []
    left = [{"vmid": v.get("vmid"), "node": v.get("node", ""), "name": v.get("name", ""),
             "why": str(v.get("why", ""))} for v in failed]
    named = {item["vmid"] for item in left}
    for event in events:
        if isinstance(event, ev.VmCreated) and event.vmid not in deleted and event.vmid not in named:
            named.add(event.vmid)
            left.append({"vmid": event.vmid, "node": event.node, "name": event.name,
                         "why": f"the run did not finish; `vast-loopback destroy {run.path}` deletes it"})
    return left


def milestone_lines(events: list[ev.Event]) -> list[dict]:
    """Milestones of the install log that carry their own timestamp (first or last occurrence)."""
    found: dict[str, dict] = {}
    for event in events:
        if not isinstance(event, ev.InstallLogAppended):
            continue
        for line in event.lines:
            text = str(line)
            for pattern, label, which in MILESTONES:
                if pattern.search(text):
                    t = line_timestamp(text)
                    if t is None:
                        continue
                    if label not in found or which == "last":
                        found[label] = {"t": t, "event": label, "line": text.strip()[:200]}
    return sorted(found.values(), key=lambda m: m["t"])


def stall_summary(events: list[ev.Event], late: Stat) -> dict:
    stalls = [e for e in events if isinstance(e, ev.StallDetected)]
    lengths = [e.length_ms for e in stalls]
    worst = max(stalls, key=lambda e: e.length_ms, default=None)
    max_stall = max([*lengths, late.max or 0.0]) if (lengths or late.count) else None
    interval_ms = max((e.interval_ms for e in stalls), default=0.0)
    max_gap = max(((e.interval_ms + e.length_ms) / 1000.0 for e in stalls), default=None)
    if max_gap is None and max_stall is not None:
        max_gap = (interval_ms + max_stall) / 1000.0
    return {
        "max_gap_s": None if max_gap is None else round(max_gap, 3),
        "max_stall_ms": None if max_stall is None else round(max_stall, 1),
        "t_max": (worst.start if worst else late.t_max),
        "interval_s": interval_ms / 1000.0 if interval_ms else None,
        "stalls": sum(1 for x in lengths if x >= 50.0),
        # Stall events, or samples whose worst lateness was one (where no event was sent for it):
        # never fewer gaps than the worst stall reported beside them implies.
        "gaps_over_1s": max(sum(1 for x in lengths if x > 1000.0), sum(1 for x in late.values if x > 1000.0)),
        "gaps_over_2s": max(sum(1 for x in lengths if x > 2000.0), sum(1 for x in late.values if x > 2000.0)),
        "histogram_ms": histogram([x for x in lengths if x >= 50.0], STALL_EDGES),
        "latest": [{"t": e.start, "length_ms": round(e.length_ms, 1)} for e in stalls if e.length_ms >= 50.0][-10:],
        "worst": sorted(({"t": e.start, "length_ms": round(e.length_ms, 1)} for e in stalls),
                        key=lambda x: -x["length_ms"])[:5],
        "measured": bool(stalls or late.count),
    }


def phase_rows(events: list[ev.Event]) -> list[dict]:
    """Every run of every step, in order. `attempt` counts rollbacks (a retry after a diagnosed
    failure starts attempt 2); a step cut short by a crash and run again on resume shows twice, the
    first time as "interrupted"."""
    rows: list[dict] = []
    open_rows: dict[str, dict] = {}
    attempt = 1
    for event in events:
        if isinstance(event, ev.SnapshotRolledBack):
            attempt += 1
        elif isinstance(event, ev.RunStarted) and event.resumed:
            for row in open_rows.values():
                row["status"] = "interrupted"
            open_rows.clear()
        elif isinstance(event, ev.StepStarted):
            if event.step in open_rows:
                open_rows[event.step]["status"] = "interrupted"
            row = {"id": event.step, "title": event.title, "group": event.group, "start": event.ts, "end": None,
                   "duration_s": None, "status": "running", "attempt": attempt}
            rows.append(row)
            open_rows[event.step] = row
        elif isinstance(event, ev.StepFinished) and event.step in open_rows:
            row = open_rows.pop(event.step)
            row["end"], row["status"] = event.ts, "done" if event.ok else "failed"
            row["duration_s"] = round(event.ts - row["start"], 3)
            if event.error:
                row["error"] = event.error[:300]
        elif isinstance(event, ev.StepSkipped) and not any(r["id"] == event.step for r in rows):
            rows.append({"id": event.step, "title": event.step, "group": "", "start": event.ts, "end": event.ts,
                         "duration_s": 0.0, "status": "skipped", "reason": event.reason, "attempt": attempt})
    return sorted(rows, key=lambda r: r["start"])


def cluster_rows(events: list[ev.Event], end: float | None) -> tuple[list[dict], str]:
    """Cluster states with how long each lasted. Two sources may report them: the install log (vcli's
    own lines, stamped to the second) and VMS polls; the rows come from the log when it has any (its
    timestamps are exact), else from the polls, so one state never shows twice. The final state is
    the latest either source saw. A rollback ends the state it interrupts (the guest went back to
    before the install), so the retry's INIT is a state of its own."""
    changes = [e for e in events if isinstance(e, ev.ClusterStateChanged)]
    sources = {e.source for e in changes}
    chosen = "log" if "log" in sources else ("api" if "api" in sources else None)
    relevant = sorted((e for e in events if isinstance(e, ev.SnapshotRolledBack)
                       or (isinstance(e, ev.ClusterStateChanged) and (chosen is None or e.source == chosen))),
                      key=lambda e: e.ts)
    rows: list[dict] = []
    open_row: dict | None = None
    for event in relevant:
        if isinstance(event, ev.SnapshotRolledBack):
            if open_row is not None:
                open_row["duration_s"] = round(event.ts - open_row["t"], 3)
                open_row = None
            continue
        if open_row is not None and open_row["state"] == event.state:
            continue
        if open_row is not None:
            open_row["duration_s"] = round(event.ts - open_row["t"], 3)
        open_row = {"state": event.state, "t": event.ts, "duration_s": None, "source": event.source}
        rows.append(open_row)
    if open_row is not None and end is not None:
        open_row["duration_s"] = round(end - open_row["t"], 3)
    final = max(changes, key=lambda e: e.ts).state if changes else ""
    return rows, final


def reboot_test_rows(events: list[ev.Event]) -> dict:
    """The reboot test (backend/steps/finish.py): "passed", "failed", "off" (vast.reboot_test: false) or
    "not run", with how VAST came back and how long after the reboot it was ONLINE again."""
    status, result = "not run", {}
    for event in events:
        if isinstance(event, ev.StepFinished) and event.step.split("@")[0] == "reboot_test" and event.ok:
            status = "off" if event.result.get("reboot_test") == "off" else status
        elif isinstance(event, ev.VastRestarted):
            status = "passed" if event.ok else "failed"
            result = {"how": event.how, "problem": event.problem, "online_after_s": event.online_after_s,
                      "cluster_state": event.cluster_state, "t": event.ts}
    return {"status": status, **result}


# --- assembling the result ---------------------------------------------------------------------

CHART_COLUMNS = 64
STATE_MARKS = {"INIT": "I", "ACTIVATING": "A", "ONLINE": "O", "UNKNOWN": "U", "FAILED": "F"}


def _first(events: list[ev.Event], kind: type[ev.Event]) -> ev.Event | None:
    return next((e for e in events if isinstance(e, kind)), None)


def _gib(value: float | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


def _timeline(events: list[ev.Event], phases: list[dict], states: list[dict]) -> dict:
    install = [p for p in phases if p["group"] == "install"]
    deploy_done = next((e.ts for e in events if isinstance(e, ev.VtaskChanged) and e.name == "cluster_deploy"
                        and e.state.upper() in ("COMPLETED", "SUCCEEDED")), None)
    # the attempt that completed (after a rollback and retry, the last one), else the last attempt
    if deploy_done is not None:
        before = [p for p in install if p["start"] <= deploy_done]
        attempt = max((p["attempt"] for p in before), default=1)
    else:
        attempt = max((p["attempt"] for p in install), default=1)
    current = [p for p in install if p["attempt"] == attempt]
    install_start = min((p["start"] for p in current), default=None)
    online = next((s["t"] for s in states if s["state"] == "ONLINE"), None)
    activating = None
    for state in states:
        if state["state"] == "ACTIVATING" and (online is None or state["t"] <= online):
            activating = state["t"]
    init = None
    for state in states:
        if state["state"] == "INIT" and activating is not None and state["t"] <= activating:
            init = state["t"]
    ended = [p["end"] for p in current if p["end"] is not None]
    script_end = max(ended) if current and len(ended) == len(current) else None
    bootstrap = next((p for p in reversed(current) if "bootstrap" in p["id"] and p["status"] == "done"), None)

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    return {
        "start": install_start,
        "deploy_completed": deploy_done,
        "total_s": span(install_start, deploy_done),
        "attempts": max((p["attempt"] for p in phases), default=0),
        "total_end": "cluster_deploy completed",
        "install_end": script_end,
        "install_script_s": span(install_start, script_end),
        "activation_s": span(activating, online),
        "init_to_activating_s": span(init, activating),
        "online_to_deploy_s": span(online, deploy_done),
        "bootstrap_s": bootstrap["duration_s"] if bootstrap else None,
        "phases": phases,
        "milestones": milestone_lines(events),
    }


def _vm_memory_gib(events: list[ev.Event]) -> float | None:
    """The VM's RAM (GiB) as the run configured it (Proxmox's `memory`, MiB), when the run says."""
    memory = None
    for event in events:
        config = event.config if isinstance(event, ev.VmCreated) else (
            event.changes if isinstance(event, ev.VmConfigured) else {})
        value = str(config.get("memory", "")).split(",")[0]
        if value.isdigit():
            memory = int(value) / 1024
    return memory


def _config_rows(run: RunDir, events: list[ev.Event], analysis: Analysis) -> list[dict]:
    rows: list[dict] = []

    def add(parameter: str, value: object, source: str) -> None:
        if value not in (None, "", {}):
            rows.append({"parameter": parameter, "value": str(value), "source": source})

    host = _first(events, ev.HostFactsGathered)
    if isinstance(host, ev.HostFactsGathered):
        facts = host.facts
        add("Proxmox node", facts.get("node"), "Proxmox API")
        add("Proxmox VE", host.pve_version or facts.get("pve_version"), "Proxmox API")
        add("Host CPU", facts.get("cpu_model"), "Proxmox API")
        if facts.get("cores"):
            add("Host cores / threads", f"{facts.get('cores')} / {facts.get('threads')}", "Proxmox API")
        if isinstance(facts.get("mem_total"), int | float):
            add("Host RAM", f"{facts['mem_total'] / GIB:.1f} GiB", "Proxmox API")
    config: dict = {}
    for event in events:
        if isinstance(event, ev.VmCreated):
            config.update(event.config)
        elif isinstance(event, ev.VmConfigured):
            config.update(event.changes)
    for key, label in (("cores", "VM cores"), ("sockets", "VM sockets"), ("cpu", "VM CPU type"),
                       ("memory", "VM memory (MiB)"), ("balloon", "VM ballooning"), ("scsihw", "SCSI controller"),
                       ("scsi0", "OS disk"), ("numa", "NUMA"), ("machine", "Machine type")):
        add(label, config.get(key), "VM config")
    boots = [e for e in events if isinstance(e, ev.BootAttemptFailed)]
    first_boot = next((e for e in reversed(events) if isinstance(e, ev.StepFinished) and e.ok
                       and e.step == "first_boot"), None)
    if isinstance(first_boot, ev.StepFinished) and first_boot.result.get("boot_controller"):
        tried = "".join(f" after {e.controller} did not boot" for e in boots if e.controller
                        != first_boot.result["boot_controller"])
        add("First-boot controller", f"{first_boot.result['boot_controller']}{tried}", "first boot")
    root = root_filesystem(events)
    if root is not None:
        add("Root filesystem", f"{root['size_gib']:.0f} GiB ({root['device']}, {root['fstype']}; "
            f"{root['before_gib']:.0f} GiB as imported)", "guest (df)")
    answers_path = run.path / "answers.yaml"
    if answers_path.exists():
        try:
            from backend.model.answers import load

            answers = load(answers_path)
            add("VM name", answers.vm.name, "answers")
            add("vCPUs", answers.vm.vcpus, "answers")
            memory = answers.vm.memory_gib
            add("VM RAM", f"{sized(memory)}" if isinstance(memory, int) else f"{memory} GiB", "answers")
            add("Disk", f"{answers.vm.disk_gib} GiB", "answers")
            add("VAST build", answers.vast.build, "answers")
            add("Cluster name", answers.vast.cluster_name, "answers")
        except Exception:  # a report never fails on an unreadable answers file
            add("answers.yaml", "present but not readable", "answers")
    imported = _first(events, ev.TracesImported)
    if isinstance(imported, ev.TracesImported):
        facts = imported.facts
        add("vCPUs seen by the guest", facts.get("ncpu"), "iostat / dmesg")
        add("CPU model seen by the guest", facts.get("cpu_model"), "dmesg")
        add("Machine", facts.get("machine"), "dmesg")
        add("Hypervisor", facts.get("hypervisor"), "dmesg")
        add("Storage controller", facts.get("scsi_controller"), "dmesg")
        add("Kernel", facts.get("kernel"), "iostat / dmesg")
        add("Guest hostname", facts.get("hostname"), "iostat")
        add("Management IP", facts.get("mgmt_ip"), "install log")
        add("VAST build", facts.get("build"), "install log")
        add("Cluster name", facts.get("cluster_name"), "install log")
        add("Free disk at install", f"{facts['disk_free_gb']} GB" if facts.get("disk_free_gb") else None,
            "install log")
    if analysis.mem_total:
        add("Memory seen by the guest (MemTotal)", f"{analysis.mem_total / GIB:.2f} GiB", "samples")
    return rows


def _tuning(events: list[ev.Event]) -> list[dict]:
    latest: dict[tuple[str, bool], dict] = {}
    for event in events:
        if isinstance(event, ev.TuningChecked):
            latest[(event.id, event.after_reboot)] = {
                "id": event.id, "expected": event.expected, "observed": event.observed, "ok": event.ok,
                "after_reboot": event.after_reboot, "persisted": event.persisted, "reason": event.reason,
                "t": event.ts}
    return sorted(latest.values(), key=lambda r: (r["after_reboot"], r["t"]))


def _faults(events: list[ev.Event], holes: list[dict]) -> tuple[dict, list[dict]]:
    retries, recoveries, disconnects, remedies, rollbacks = [], [], [], [], []
    gaps = []
    for e in events:
        if isinstance(e, ev.RetryScheduled):
            retries.append({"t": e.ts, "operation": e.operation, "attempt": e.attempt, "error": e.error[:200],
                            "delay_s": e.delay_s})
        elif isinstance(e, ev.RecoveredFromFault):
            recoveries.append({"t": e.ts, "operation": e.operation, "attempts": e.attempts, "error": e.error[:200]})
        elif isinstance(e, ev.GuestDisconnected):
            disconnects.append({"t": e.ts, "event": "guest disconnected", "detail": e.reason[:200]})
        elif isinstance(e, ev.GuestReconnected):
            disconnects.append({"t": e.ts, "event": "guest reconnected",
                                "detail": f"after {e.attempts} attempts, {e.down_s:.1f} s down"})
        elif isinstance(e, ev.RemedyApplied):
            remedies.append({"t": e.ts, "id": e.id, "changes": e.changes, "attempt": e.attempt})
        elif isinstance(e, ev.SnapshotRolledBack):
            rollbacks.append({"t": e.ts, "vmid": e.vmid, "snapshot": e.name})
        elif isinstance(e, ev.SamplingGapped):
            gaps.append({"start": e.start, "end": e.end, "duration_s": round(e.end - e.start, 1),
                         "reason": e.reason})
    for hole in holes:  # a SamplingGapped ends where the next sample's interval begins (its t - dt)
        slack = 1 + float(hole.get("dt") or 0)
        if not any(g["start"] <= hole["start"] + 1 and hole["end"] <= g["end"] + slack for g in gaps):
            gaps.append({k: v for k, v in hole.items() if k != "dt"})
    gaps.sort(key=lambda g: g["start"])
    episodes, outages = _episodes(events), _outages(events)
    faults = {
        "retries": retries[:LIST_LIMIT], "recoveries": recoveries[:LIST_LIMIT],
        "connection": disconnects[:LIST_LIMIT], "remedies": remedies, "rollbacks": rollbacks,
        "episodes": episodes[:LIST_LIMIT], "outages": outages[:LIST_LIMIT],
        "counts": {"retries": len(retries), "recoveries": len(recoveries), "connection": len(disconnects),
                   "remedies": len(remedies), "rollbacks": len(rollbacks), "sampling_gaps": len(gaps)},
        "summary": {"episodes": len(episodes), "recovered": sum(1 for e in episodes if e["outcome"] == "recovered"),
                    "outages": len(outages), "longest_outage_s": max((o["down_s"] for o in outages), default=None),
                    "gap_s": round(sum(g["duration_s"] for g in gaps), 1)},
    }
    return faults, gaps


def _episodes(events: list[ev.Event]) -> list[dict]:
    """One row per operation that hit a fault: its retries folded together, then how it ended
    ("recovered", or "not recovered" when the call failed for good or the run ended first)."""
    episodes: list[dict] = []
    open_: dict[str, dict] = {}
    for e in events:
        if isinstance(e, ev.RetryScheduled):
            episode = open_.get(e.operation)
            if episode is None or e.attempt <= episode["retries"]:  # a new call of the same operation
                if episode is not None:
                    episode["outcome"] = "not recovered"
                episode = {"start": e.ts, "end": None, "operation": e.operation, "retries": 0, "errors": [],
                           "waited_s": 0.0, "outcome": "not recovered", "attempts": None}
                open_[e.operation] = episode
                episodes.append(episode)
            episode["retries"] = max(episode["retries"], e.attempt)
            episode["waited_s"] = round(episode["waited_s"] + e.delay_s, 3)
            error = e.error[:120]
            if error not in episode["errors"]:
                episode["errors"].append(error)
        elif isinstance(e, ev.RecoveredFromFault):
            episode = open_.pop(e.operation, None)
            if episode is None:
                episode = {"start": e.ts, "operation": e.operation, "retries": max(0, e.attempts - 1),
                           "errors": [e.error[:120]] if e.error else [], "waited_s": 0.0}
                episodes.append(episode)
            episode.update(end=e.ts, outcome="recovered", attempts=e.attempts)
    for episode in episodes:
        episode["error"] = ", then ".join(episode["errors"][:3])
    return episodes


def _injected(events: list[ev.Event]) -> dict | None:
    """The faults the target injected on purpose, as it reported them (FaultInjected events: a
    simulated target's fault injection), or None when it reported none."""
    injected = [e for e in events if isinstance(e, ev.FaultInjected)]
    if not injected:
        return None
    by_kind: dict[str, int] = {}
    for event in injected:
        by_kind[event.fault] = by_kind.get(event.fault, 0) + 1
    rows = [{"t": e.ts, "source": e.source, "kind": e.fault, "when": e.when, **e.details}
            for e in injected[:LIST_LIMIT * 4]]
    return {"count": len(injected), "by_kind": dict(sorted(by_kind.items())), "faults": rows}


def _outages(events: list[ev.Event]) -> list[dict]:
    """The guest connection's outages: lost (with the reason) until reconnected."""
    outages: list[dict] = []
    lost: dict | None = None
    for e in events:
        if isinstance(e, ev.GuestDisconnected):
            if lost is None:
                lost = {"start": e.ts, "end": None, "down_s": None, "reason": e.reason[:200], "attempts": None}
                outages.append(lost)
        elif isinstance(e, ev.GuestReconnected):
            if lost is None:  # the loss was noticed by the reconnection itself
                lost = {"start": round(e.ts - e.down_s, 3), "reason": ""}
                outages.append(lost)
            lost.update(end=e.ts, down_s=e.down_s, attempts=e.attempts)
            lost = None
    return outages


def _markers(timeline: dict, states: list[dict], diagnosis: list[dict]) -> list[dict]:
    marks = []
    for phase in timeline["phases"]:
        if "bootstrap" in phase["id"]:
            marks.append({"t": phase["start"], "mark": "B", "label": "bootstrap started"})
        elif phase["id"] == "cluster_create" or ("creat" in phase["id"] and phase["group"] == "install"):
            marks.append({"t": phase["start"], "mark": "C", "label": "cluster creation started"})
    for state in states:
        mark = STATE_MARKS.get(state["state"].upper())
        if mark:
            marks.append({"t": state["t"], "mark": mark, "label": f"cluster {state['state']}"})
    if timeline["deploy_completed"] is not None:
        marks.append({"t": timeline["deploy_completed"], "mark": "D", "label": "cluster_deploy completed"})
    for item in diagnosis:
        if item["severity"] == "critical" and item["t"] is not None:
            marks.append({"t": item["t"], "mark": "X", "label": item["id"]})
    return sorted(marks, key=lambda m: m["t"])


def _charts(analysis: Analysis, start: float | None, end: float | None) -> dict:
    if start is None or end is None or end <= start:
        return {}
    columns = max(8, min(CHART_COLUMNS, int((end - start) // BIN_S) + 1))
    end = max(end, start + columns)  # a short run still spans its columns

    def series(name: str, pick: str) -> list[float | None]:
        return [None if b is None else round(getattr(b, pick), 2)
                for b in analysis.bins[name].resample(start, end + BIN_S, columns)]

    return {"start": start, "end": end + BIN_S, "columns": columns,
            "column_s": round((end + BIN_S - start) / columns, 1),
            "steal_max": series("steal", "max"), "steal_mean": series("steal", "mean"),
            "user_sys_max": series("user_sys", "max"), "load1_max": series("load1", "max"),
            "mem_used_max": series("mem_used", "max"), "mem_available_min": series("mem_available", "min")}


def _lookup(data: dict, dotted: str) -> object:
    node: object = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def root_filesystem(events: list[ev.Event]) -> dict | None:
    """The root filesystem as the run last verified it (`RootFilesystemVerified`), or None."""
    last = next((e for e in reversed(events) if isinstance(e, ev.RootFilesystemVerified)), None)
    if last is None:
        return None
    return {k: v for k, v in last.to_dict().items() if k not in ("type", "ts")}


def assemble(analysis: Analysis, run: RunDir, events: list[ev.Event]) -> dict:
    """The report's data from a finished `Analysis` pass."""
    meta = _meta(run)
    started = _first(events, ev.RunStarted)
    finished = next((e for e in reversed(events) if isinstance(e, ev.RunFinished)), None)
    imported = _first(events, ev.TracesImported)
    times = [t for t in (analysis.first_sample, analysis.last_sample) if t is not None]
    times += [e.ts for e in events if e.ts]
    run_start, run_end = (min(times), max(times)) if times else (None, None)
    phases = phase_rows(events)
    states, final_state = cluster_rows(events, run_end)
    timeline = _timeline(events, phases, states)
    items = sorted(analysis.watcher.all_items(), key=lambda i: i.t or 0.0)
    diagnosis = [i.to_dict() for i in items if i.kind == "diagnosis"]
    alerts = [i.to_dict() for i in items if i.kind == "alert"]
    known = {i.id for i in items}
    for event in events:  # what a live watcher (or another component) recorded and we did not find
        if isinstance(event, ev.DiagnosisMade):
            for item in event.items:
                if isinstance(item, dict) and item.get("id") not in known:
                    known.add(item.get("id"))
                    diagnosis.append({"kind": "diagnosis", "severity": "critical", "changes": {}, "t": event.ts,
                                      **item, "recorded": True})
        elif isinstance(event, ev.AlertRaised) and event.id not in known:
            known.add(event.id)
            alerts.append({"id": event.id, "kind": "alert", "severity": event.severity, "cause": event.message,
                           "remedy": "", "changes": {}, "t": event.ts, "recorded": True,
                           "evidence": [{"t": event.ts, "source": "recorded", "text": event.evidence,
                                         "value": None}]})
    faults, sampling_gaps = _faults(events, analysis.sample_holes)
    faults["injected"] = _injected(events)
    cpu = analysis.cpu
    steal = cpu["steal"]
    steal_summary = steal.summary(2, (99,))
    steal_summary.update({
        "samples_over_0": steal.count_over(0.0), "seconds_over_10": steal.count_over(10.0),
        "pct_samples_over_0": round(100.0 * steal.count_over(0.0) / steal.count, 2) if steal.count else None})
    disk_devices = {}
    for name, stats in sorted(analysis.disks.items()):
        disk_devices[name] = {key: {"max": round(stat.max, 2) if stat.max is not None else None, "t_max": stat.t_max,
                                    "mean": round(stat.mean, 2) if stat.mean is not None else None}
                              for key, stat in sorted(stats.items())}

    def disk_max(key: str) -> dict:
        best = None
        for name, stats in analysis.disks.items():
            stat = stats.get(key)
            if stat is not None and stat.max is not None and (best is None or stat.max > best["max"]):
                best = {"max": round(stat.max, 2), "t_max": stat.t_max, "device": name}
        return best or {"max": None, "t_max": None, "device": None}

    total = analysis.mem_total
    containers = []
    for entry in sorted(analysis.containers.values(), key=lambda c: -c.get("last", 0.0)):
        containers.append({
            "name": entry["name"], "peak_gib": _gib(entry["peak"]), "t_peak": entry["t_peak"],
            "last_gib": _gib(entry.get("last")), "last_seen": entry.get("last_seen"),
            "first_seen": entry["first_seen"], "limit_gib": _gib(entry.get("limit")),
            "pct_of_total_last": round(100.0 * entry.get("last", 0.0) / total, 2) if total else None,
        })
    stalls = stall_summary(events, analysis.hb_late)
    if isinstance(imported, ev.TracesImported) and isinstance(imported.facts.get("heartbeat"), dict):
        stalls["ticks"] = imported.facts["heartbeat"].get("ticks")
        stalls["source"] = "heartbeat.log (a `sleep 1` loop, imported)"
    elif stalls["measured"]:
        stalls["source"] = "the monitoring agent's stall detector"
    data: dict = {
        "run": {
            "id": meta.get("id") or run.path.name, "path": str(run.path),
            "target": getattr(started, "target", ""), "vm_name": getattr(started, "vm_name", ""),
            "outcome": getattr(finished, "outcome", "") or meta.get("outcome", ""),
            "message": getattr(finished, "message", ""),
            "imported_from": getattr(imported, "source", None),
            "start": run_start, "end": run_end,
            "samples": analysis.sample_count, "first_sample": analysis.first_sample,
            "last_sample": analysis.last_sample,
            "left_behind": left_behind(run, events, meta),
        },
        "config": _config_rows(run, events, analysis),
        "root_filesystem": root_filesystem(events),
        "timeline": timeline,
        "reboot_test": reboot_test_rows(events),
        "cluster": {
            "final_state": final_state, "states": states,
            "vtasks": [{"t": e.ts, "name": e.name, "task_id": e.task_id, "state": e.state, "runtime_s": e.runtime_s}
                       for e in events if isinstance(e, ev.VtaskChanged)],
        },
        "cpu": {
            "steal_pct": steal_summary,
            "user_pct": cpu["user"].summary(2), "sys_pct": cpu["sys"].summary(2),
            "iowait_pct": cpu["iowait"].summary(2),
            "steal_max_cpu_pct": cpu["steal_max_cpu"].summary(2) if cpu["steal_max_cpu"].count else None,
            "stages": analysis.stage_cpu.rows(),
        },
        "load": {
            "load1": analysis.load["load1"].summary(2), "load5": analysis.load["load5"].summary(2),
            "load15": analysis.load["load15"].summary(2), "runnable": analysis.runnable.summary(0),
            "stages": analysis.stage_load.rows(),
        },
        "memory": {
            "total_gib": _gib(total), "vm_gib": _vm_memory_gib(events),
            "used_gib": analysis.mem_used.summary(2), "available_gib": analysis.mem_available.summary(2),
            "stages": analysis.stage_mem.rows(), "oom_kills": analysis.oom_kill_max,
        },
        "containers": containers,
        "disk": {"r_await_ms": disk_max("r_await"), "w_await_ms": disk_max("w_await"), "r_s": disk_max("r_s"),
                 "w_s": disk_max("w_s"), "rkb_s": disk_max("rkb_s"), "wkb_s": disk_max("wkb_s"),
                 "util_pct": disk_max("util"), "devices": disk_devices},
        "network": sorted(analysis.ports.values(), key=lambda p: p["port"]),
        "heartbeat": stalls,
        "kernel": [{"t": e.ts, "source": e.source, "match": e.match, "text": e.text[:300]}
                   for e in events if isinstance(e, ev.KernelMessageSeen)][:LIST_LIMIT],
        "guest_record": [{"t": e.ts, "reason": e.reason, "reachable": e.reachable, "text": describe_record(e)}
                         for e in events if isinstance(e, ev.GuestRecordRead)][:LIST_LIMIT],
        "tuning": _tuning(events),
        "host_changes": _host_changes(events),
        "preflight": next((list(e.items) for e in reversed(events) if isinstance(e, ev.PreflightChecked)), []),
        "diagnosis": diagnosis,
        "alerts": alerts,
        "faults": faults,
        "sampling_gaps": sampling_gaps[:LIST_LIMIT],
        "imported": {"files": imported.files, "notes": imported.notes} if isinstance(imported, ev.TracesImported)
        else None,
    }
    data["charts"] = _charts(analysis, analysis.first_sample, analysis.last_sample)
    data["markers"] = _markers(timeline, states, diagnosis)
    data["compare"] = [{"key": key, "metric": label, "field_report": prose, "field_report_value": value,
                        "unit": unit, "data": _lookup(data, key)} for key, label, prose, value, unit in FIELD_PROSE]
    data["missing"] = _missing(data)
    data["skipped"] = {"count": len(run.skipped), "lines": run.skipped.rows(LIST_LIMIT)}
    return data


def _host_changes(events: list[ev.Event]) -> list[dict]:
    """What the run changed on the host beyond its VM, and whether (and when) it was reverted."""
    changes: dict[str, dict] = {}
    for e in events:
        if isinstance(e, ev.HostChanged):
            changes[e.change] = {"change": e.change, "what": e.what, "why": e.why, "t": e.ts, "kept": e.kept,
                                 "reverted": None, "revert_note": ""}
        elif isinstance(e, ev.HostChangeReverted) and e.change in changes:
            changes[e.change].update(reverted=e.ts, revert_note=e.note or e.what)
    return list(changes.values())


def _missing(data: dict) -> list[str]:
    missing = []
    if not data["run"]["samples"]:
        missing.append("No samples: the CPU, load, memory, disk and container sections have no data "
                       "(the monitor did not run, or samples.jsonl is absent).")
    if not data["timeline"]["phases"]:
        missing.append("No install phases were recorded: the timeline has no phase durations.")
    elif not any(p["group"] == "install" for p in data["timeline"]["phases"]):
        missing.append("The install did not start in this run: no install phases.")
    if not data["cluster"]["states"]:
        missing.append("No cluster state was seen.")
    if data["timeline"]["total_s"] is None and data["timeline"]["phases"]:
        missing.append("cluster_deploy never completed, so there is no total install time.")
    if not data["heartbeat"]["measured"]:
        missing.append("No heartbeat or stall-detector data: scheduling gaps cannot be analysed.")
    if not data["tuning"]:
        missing.append("No tuning checks were recorded (imported traces never carry them).")
    return missing
