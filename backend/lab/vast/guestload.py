"""What the lab guest's kernel shows while VAST installs: its load for the fake /proc files, and the
stalls to inflict on its processes.

`VastGuestLoad` is a `GuestLoad` of the lab guest (backend/lab/guest/load.py: `at(lab_time) ->
LoadPoint`): it reads the guest's scenario and world events and follows the field run's curves
(curves.py) from the moment bootstrap starts; before that, and on a guest without a scenario, it is
the guest's idle load. It keeps nothing between calls but caches, so a restarted lab continues.

`StallDriver` applies the scenario's stall schedule (lab seconds after cluster create started,
lengths in lab ms) through `pause(lab_ms)`, the lab guest's hook that stops every guest process
(SIGSTOP) and continues them (SIGCONT) that much later, so a monitor inside measures real stalls.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.clock import Clock
from backend.lab.vast import EVENTS_PATH, SCENARIO_PATH, GuestPaths, as_paths
from backend.lab.vast.curves import LoadSample, VastLoad
from backend.lab.vast.vaststate import VastWorld, WorldReader

log = logging.getLogger("vlb.lab.vast")

STEAL_MAX_CPU_FACTOR = 2.5  # modelled: the field kept no per-CPU steal (mpstat.log is missing)
STALE_STALL_S = 30.0  # a stall due longer ago than this (lab s) was missed while the lab was down


class _ScenarioFile:
    """The guest's scenario file, read again only when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._data: dict | None = None

    def get(self) -> dict | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._key, self._data = None, None
            return None
        key = (stat.st_size, stat.st_mtime_ns)
        if key != self._key:
            try:
                self._data = json.loads(self.path.read_text())
                self._key = key
            except ValueError:  # being rewritten: keep the previous one
                pass
        return self._data


class VastGuestLoad:
    """The guest's load as the VAST install drives it (the lab guest's GuestLoad protocol)."""

    def __init__(self, guest: GuestPaths | Path, mem_total: int | None = None) -> None:
        paths = as_paths(guest)
        self.scenario_file = _ScenarioFile(paths.host(SCENARIO_PATH))
        self.reader = WorldReader(paths.host(EVENTS_PATH))
        self.mem_total = mem_total
        self._model: tuple[int, VastLoad] | None = None

    def sample(self, lab_time: float) -> tuple[LoadSample | None, VastWorld]:
        """The curves' sample (None before a scenario or an install exists) and the world."""
        world = self.reader.world()
        scenario = self.scenario_file.get()
        if scenario is None:
            return None, world
        if self._model is None or self._model[0] != id(scenario):
            self._model = (id(scenario), VastLoad(scenario, self.mem_total))
        sample = self._model[1].sample(world, lab_time)
        return (None if sample.phase == "idle" else sample), world

    def at(self, lab_time: float) -> Any:
        from backend.lab.guest.load import DiskLoad, LoadPoint  # the lab guest's types

        sample, world = self.sample(lab_time)
        if sample is None:
            return LoadPoint()
        scenario = self.scenario_file.get() or {}
        boot_t = float(scenario.get("boot_t", 0.0))
        busy = sample.user + sample.sys
        return LoadPoint(
            user=sample.user, system=sample.sys, iowait=sample.iowait, steal=sample.steal,
            steal_max_cpu=min(100.0, sample.steal * STEAL_MAX_CPU_FACTOR),
            load=(sample.load1, sample.load5, sample.load15), running=max(1, sample.runnable), tasks=sample.tasks,
            mem_available=sample.mem_available, mem_free=sample.mem_free, cached=sample.mem_cached,
            disks={"sda": DiskLoad(**sample.disk)}, containers=dict(sample.containers),
            oom_kill=sum(1 for t in world.ooms if boot_t <= t <= lab_time),
            ctxt_s=450.0 + 190.0 * busy, intr_s=300.0 + 60.0 * busy, forks_s=2.0 + 0.5 * busy,
        )


class StallDriver:
    """Applies the guest's stall schedule on the lab clock, in a background thread."""

    def __init__(self, guest: GuestPaths | Path, clock: Clock, pause: Callable[[float], None], *,
                 poll_s: float = 0.02) -> None:
        paths = as_paths(guest)
        self.scenario_file = _ScenarioFile(paths.host(SCENARIO_PATH))
        self.reader = WorldReader(paths.host(EVENTS_PATH))
        self.clock = clock
        self.pause = pause
        self.poll_s = poll_s
        self.applied: list[tuple[float, float]] = []  # (lab time, lab ms) of every stall applied
        self._done: set[tuple[float, float]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: float) -> list[tuple[float, float]]:
        """Stalls (lab time, lab ms) due by `now` and not applied yet; stale ones are dropped."""
        scenario = self.scenario_file.get()
        if not scenario or not scenario.get("stalls"):
            return []
        run = self.reader.world().tools.get("cluster_create")
        if run is None or run.started < float(scenario.get("boot_t", 0.0)):
            return []
        due = []
        for at, length_ms in scenario["stalls"]:
            when = run.started + float(at)
            key = (round(when, 3), float(length_ms))
            if when > now or key in self._done:
                continue
            self._done.add(key)
            if run.finished is not None and when > run.finished:
                continue  # the tool ended (killed, rebooted): its activation load is gone
            if now - when <= STALE_STALL_S:
                due.append(key)
        return due

    def step(self) -> None:
        for when, length_ms in self.due(self.clock.now()):
            self.pause(length_ms)
            self.applied.append((when, length_ms))

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.step()
            except Exception:
                log.exception("stall driver failed")

    def start(self) -> StallDriver:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lab-vast-stalls", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
