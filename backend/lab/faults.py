"""Faults the lab injects on purpose: at random with a seed, or on a schedule. Off by default.

One plan serves the whole lab (built from the answers' `lab.faults` by `plan_from_answers`). Each
part of the lab asks it at every *opportunity*, i.e. whenever it serves something a client asked for:
    "pve"  every Proxmox API request              (`decide("pve", method, path)`)
    "ssh"  every SSH session opened on a guest (`decide("ssh", "session", command or "sftp")`)
    "vms"  every VMS request                       (`decide("vms", method, path)`)
Never in the lab's own control paths (its clock ticker, `GuestLab.exec`, the stall driver, the VMS
listener watch): only where a real network, host or VMS could fail a client.

A kind's prefix names its part: `pve_500`, `pve_503` (an error answer), `pve_timeout` (the request
hangs until the client gives up), `pve_reset` (the connection is reset), `pve_ticket` (every ticket
issued so far expires; API tokens are not affected, as on a real host), `ssh_drop` (every SSH
connection to that guest is cut a moment later, mid-command or not; detached jobs live on),
`vms_restart` (the VMS answers 502 and then refuses connections for a lab minute).

A fault may strike `after` the request was handled: the change happened but the answer is lost,
which is what makes a blind retry of a create dangerous. Every injected fault is appended to
`<state>/faults.jsonl` as {"t" (lab clock), "source", "kind", "when", ...details}, so a run's faults
can be matched with its recoveries.

Random faults: each opportunity strikes with probability `rate` (seeded: one random stream per
part, so the same run replays the same decisions). Scheduled faults (`ScheduledFault`): the `nth`
matching opportunity and the `count - 1` after it, or every `every`-th from the `nth` on. Tests can
also `arm(kind)`: the next opportunity of that kind's part strikes.
"""

from __future__ import annotations

import json
import random
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from backend.events import FaultInjected
from backend.run.safefiles import open_append

KINDS = ("pve_500", "pve_503", "pve_timeout", "pve_reset", "pve_ticket", "ssh_drop", "vms_restart")
# Kinds that may strike after a change was made (the answer is lost or replaced by an error).
_AFTER_OK = {"pve_500", "pve_timeout", "pve_reset"}


@dataclass(frozen=True)
class Fault:
    kind: str
    after: bool = False  # True: the request was handled, only its answer is lost or replaced


@dataclass
class ScheduledFault:
    """Strike the `nth` (1-based) request that matches, and the `count - 1` matching ones after it."""

    kind: str
    method: str | None = None
    path: str | None = None  # a regular expression searched in the API path
    nth: int = 1
    count: int = 1
    every: int = 0  # > 0: strike every `every`-th matching opportunity from the `nth` on (count ignored)
    after: bool = False
    seen: int = field(default=0, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(re.search(self.path, path)))

    def strikes(self) -> bool:
        """Whether the opportunity just counted (`seen`) is one this rule strikes."""
        if self.seen < self.nth:
            return False
        if self.every > 0:
            return (self.seen - self.nth) % self.every == 0
        return self.seen < self.nth + self.count


class FaultPlan:
    """Decides, per opportunity, whether a fault strikes; thread-safe; records what it injected."""

    def __init__(self, *, rate: float = 0.0, seed: int = 1, kinds: Iterable[str] = KINDS,
                 schedule: Iterable[ScheduledFault] = (), record: Path | None = None,
                 clock_now=None) -> None:
        self.rate = float(rate)
        self.seed = seed
        self.kinds = tuple(k for k in kinds if k in KINDS)
        self.schedule = list(schedule)
        self.record_path = record
        self.clock_now = clock_now
        self._lock = threading.Lock()
        self._rngs: dict[str, random.Random] = {}
        self._armed: dict[str, Fault] = {}  # source -> the fault its next opportunity gets

    @classmethod
    def off(cls) -> FaultPlan:
        return cls()

    @property
    def active(self) -> bool:
        return bool(self.schedule) or bool(self._armed) or (self.rate > 0 and bool(self.kinds))

    def arm(self, kind: str, after: bool = False) -> None:
        """The next opportunity of this kind's part strikes with it (one pending fault per part)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")
        with self._lock:
            self._armed[kind.split("_", 1)[0]] = Fault(kind, after)

    def uniform(self, source: str, low: float, high: float) -> float:
        """A seeded random number for a detail of a fault (e.g. when a drop cuts), per part."""
        with self._lock:
            return self._rng(source + ":detail").uniform(low, high)

    def _rng(self, source: str) -> random.Random:
        if source not in self._rngs:
            self._rngs[source] = random.Random(self.seed * 1_000_003 + zlib.crc32(source.encode()))
        return self._rngs[source]

    def decide(self, source: str, method: str = "", path: str = "") -> Fault | None:
        """The fault for this opportunity of part `source` ("pve", "ssh", "vms"), or None."""
        if not self.active:
            return None
        with self._lock:
            struck: Fault | None = None
            for rule in self.schedule:  # every rule counts its matching requests
                if rule.kind.startswith(source + "_") and rule.matches(method, path):
                    rule.seen += 1
                    if struck is None and rule.strikes():
                        struck = Fault(rule.kind, rule.after)
            if struck is not None:
                return struck
            armed = self._armed.pop(source, None)
            if armed is not None:
                return armed
            kinds = [k for k in self.kinds if k.startswith(source + "_")]
            if not kinds or self.rate <= 0:
                return None
            rng = self._rng(source)
            if rng.random() >= self.rate:
                return None
            kind = rng.choice(kinds)
            after = kind in _AFTER_OK and method not in ("GET", "") and rng.random() < 0.5
            return Fault(kind, after)

    def record(self, source: str, fault: Fault, **details: object) -> None:
        if self.record_path is None:
            return
        entry = {"t": round(self.clock_now(), 3) if self.clock_now else None, "source": source, "kind": fault.kind,
                 "when": "after" if fault.after else "before", **details}
        with self._lock, open_append(self.record_path) as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()


FAULTS_FILE = "faults.jsonl"  # in the lab's state directory: one line per injected fault


class FaultReports:
    """The lab's injected faults as FaultInjected events for the engine (backend/target.py
    `Target.reported`): each call returns the faults recorded since the last one. A resumed run's
    lab starts after what the file held already (the run before it reported those)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def __call__(self) -> list[FaultInjected]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = []
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or not isinstance(row.get("kind"), str):
                continue
            details = {k: v for k, v in row.items() if k not in ("t", "source", "kind", "when")}
            events.append(FaultInjected(ts=float(row.get("t") or 0.0), source=str(row.get("source", "")),
                                        fault=row["kind"], when=str(row.get("when", "before")), details=details))
        return events


def plan_from_answers(faults: object, record: Path | None, clock_now=None) -> FaultPlan:
    """A plan from the answers' `lab.faults` section (rate, seed, kinds, schedule)."""
    schedule = [ScheduledFault(kind=rule.kind, method=getattr(rule, "method", None), path=getattr(rule, "path", None),
                               nth=getattr(rule, "nth", 1), count=getattr(rule, "count", 1),
                               every=getattr(rule, "every", 0), after=getattr(rule, "after", False))
                for rule in getattr(faults, "schedule", None) or ()]
    return FaultPlan(rate=getattr(faults, "rate", 0.0), seed=getattr(faults, "seed", 1),
                     kinds=getattr(faults, "kinds", KINDS), schedule=schedule, record=record, clock_now=clock_now)
