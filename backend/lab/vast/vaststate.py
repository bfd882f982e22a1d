"""The VAST world of one lab guest, folded from the events file the guest-side player appends to.

Each line of `/var/lib/lab/vast/events.jsonl` (in the guest) is one JSON object with `t` (lab epoch
seconds) and `kind`:
    tool      {tool: "bootstrap"|"cluster_create"|"start", phase: "started"|"finished", exit?, pid?}
    reset     a bootstrap began: the VMS, its cluster and tasks are new
    vms       {up: bool}
    cluster   {state, leader_state?, name?, build?, mgmt_ip?}  (the first one creates the cluster)
    vtask     {id, name, state, runtime?, message?, messages? (a list of strings)}
    hosts     {hosts: [{label, node_type, install_state}]}
    node      {node_type: "cnode"|"dnode", name, label?, state}
    license   {state}
    oom, panic  what the kernel / VAST logged (for the load model and diagnosis)
Nothing here is kept between reads: the VMS and the load model fold the file whenever they need it,
so they are stateless and survive restarts of the lab process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ToolRun:
    tool: str
    started: float
    finished: float | None = None
    exit: int | None = None


@dataclass
class VastWorld:
    vms_up: bool = False
    vms_up_since: float | None = None
    cluster: dict | None = None  # {"state", "leader_state", "name", "build", "created", "online_since", ...}
    state_changes: list[tuple[float, str]] = field(default_factory=list)
    tasks: dict[int, dict] = field(default_factory=dict)
    hosts: list[dict] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)  # name -> {"node_type", "label", "state", ...}
    license: dict | None = None
    tools: dict[str, ToolRun] = field(default_factory=dict)  # the latest run of each tool
    ooms: list[float] = field(default_factory=list)
    panics: list[float] = field(default_factory=list)
    last_t: float = 0.0

    def apply(self, event: dict) -> None:
        t = float(event.get("t", 0.0))
        self.last_t = max(self.last_t, t)
        kind = event.get("kind")
        if kind == "tool":
            name = str(event.get("tool"))
            if event.get("phase") == "started":
                self.tools[name] = ToolRun(name, t)
            elif name in self.tools:
                self.tools[name].finished = t
                self.tools[name].exit = int(event.get("exit", 0))
        elif kind == "reset":
            self.__dict__.update(VastWorld(tools=self.tools, last_t=t).__dict__)
        elif kind == "vms":
            up = bool(event.get("up"))
            if up:  # every "up" is a VMS (re)started: after a reboot it is down until one comes
                self.vms_up_since = t
            self.vms_up = up
        elif kind == "cluster":
            self._cluster(t, event)
        elif kind == "vtask":
            task_id = int(event["id"])
            task = self.tasks.setdefault(task_id, {"id": task_id, "name": event.get("name", ""), "start_time": t})
            task["state"] = event.get("state", task.get("state", "RUNNING"))
            for key in ("runtime", "message", "messages"):
                if key in event:
                    task[key] = event[key]
            if task["state"] != "RUNNING":
                task["end_time"] = t
        elif kind == "hosts":
            self.hosts = [dict(host, since=t) for host in event.get("hosts", [])]
        elif kind == "node":
            node = self.nodes.setdefault(str(event["name"]), {"created": t})
            node.update({k: v for k, v in event.items() if k not in ("t", "kind")})
        elif kind == "license":
            self.license = {"state": event.get("state", "ACTIVE"), "created": t}
        elif kind == "oom":
            self.ooms.append(t)
        elif kind == "panic":
            self.panics.append(t)

    def _cluster(self, t: float, event: dict) -> None:
        if self.cluster is None:
            self.cluster = {"created": t, "leader_state": "DOWN"}
        previous = self.cluster.get("state")
        for key, value in event.items():
            if key not in ("t", "kind"):
                self.cluster[key] = value
        state = self.cluster.get("state")
        if state != previous:
            self.state_changes.append((t, str(state)))
            if state == "ONLINE":
                self.cluster["online_since"] = t


def read_events(path: Path) -> list[dict]:
    """Every complete event in the file (a line still being written is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def fold(events: list[dict]) -> VastWorld:
    world = VastWorld()
    for event in events:
        world.apply(event)
    return world


class WorldReader:
    """Folds the events file again only when it changed (size and mtime)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._world = VastWorld()

    def world(self) -> VastWorld:
        try:
            stat = self.path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            key = (0, 0)
        if key != self._key:
            self._world = fold(read_events(self.path))
            self._key = key
        return self._world


def append_event(path: Path, t: float, kind: str, **fields: object) -> None:
    """Append one event (used by the lab itself, e.g. for tests; the guest's player writes the rest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps({"t": t, "kind": kind, **fields}) + "\n")
