"""Faults the lab injects on purpose: at random with a seed, or on a schedule. Off by default.

Each part of the lab asks the plan before it serves something: the Proxmox API per request
(`decide("pve", method, path)`), later the guest's SSH server (`"ssh"`) and the VMS (`"vms"`).
A kind's prefix names its part: `pve_500`, `pve_503` (an error answer), `pve_timeout` (the request
hangs until the client gives up), `pve_reset` (the connection is reset), `pve_ticket` (every ticket
issued so far expires), `ssh_drop`, `vms_restart`.

A fault may strike `after` the request was handled: the change happened but the answer is lost,
which is what makes a blind retry of a create dangerous. Every injected fault is appended to
`<state>/faults.jsonl`, so a run's faults can be matched with its recoveries.
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
    after: bool = False
    seen: int = field(default=0, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(re.search(self.path, path)))


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

    @classmethod
    def off(cls) -> FaultPlan:
        return cls()

    @property
    def active(self) -> bool:
        return bool(self.schedule) or (self.rate > 0 and bool(self.kinds))

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
                    if struck is None and rule.nth <= rule.seen < rule.nth + rule.count:
                        struck = Fault(rule.kind, rule.after)
            if struck is not None:
                return struck
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
        entry = {"t": self.clock_now() if self.clock_now else None, "source": source, "kind": fault.kind,
                 "when": "after" if fault.after else "before", **details}
        with self._lock, open(self.record_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()


def plan_from_answers(faults: object, record: Path | None, clock_now=None) -> FaultPlan:
    """A plan from the answers' `lab.faults` section (rate, seed, kinds)."""
    return FaultPlan(rate=getattr(faults, "rate", 0.0), seed=getattr(faults, "seed", 1),
                     kinds=getattr(faults, "kinds", KINDS), record=record, clock_now=clock_now)
