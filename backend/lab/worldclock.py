"""The lab's clock: compressed time that the lab's world can hold while it does its real work.

The lab runs its clock `scale` times faster than the wall. Some world actions take a known time in
the real world (a guest boots in its boot delay) but cost the lab real work besides (a namespace,
its mounts, sshd, the network segment), which on a loaded machine lasts wall seconds, i.e. lab
*minutes* at a high speed. So that the product never sees that cost, the world *holds* its clock
while it does such work: `hold(limit)` says "lab time does not pass `limit` until I release"; the
release shifts the clock's origin by the wall time it was held, so lab time continues from where it
stood. Holds compose (the clock stands at the lowest limit of the holds in force; several guests
may boot at once) and cannot deadlock: a hold is never waited for, only read, and each expires on
its own after `HOLD_CAP_WALL_S` wall seconds (a world action that takes longer than that is a lab
bug: the clock then runs on and the lab says so in its log).

Every reader sees the same time: the product reads this object (`Target.clock`), the lab's
Proxmox, VMS and guest threads too, and the guests' tools read `snapshot()` from a file (written by
the listeners at every change, see `subscribe`). `to_dict()` is the plain clock of the moment
({scale, origin_wall, origin_target}, what `Clock` takes); `snapshot()` adds the holds in force
({"holds": [[limit, until_wall], ...]}), for the state directory's clock.json and the guests' own.
A new process on the same state directory (`from_snapshot`) continues at the time the file's
readers saw: holds of a dead process are released there (their work died with it).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.clock import Clock

log = logging.getLogger("vlb.lab.clock")

# Wall seconds after which a hold lapses by itself (a lab guest boots in 0.3 to 10 wall seconds,
# more on a loaded machine; a hold never lasts longer than its work, this only bounds a lab bug).
HOLD_CAP_WALL_S = 120.0
HISTORY_PIECES = 4096  # pieces of the clock's past kept for `to_target` (a piece per hold change)


@dataclass(frozen=True)
class _Hold:
    limit: float  # lab time does not pass this...
    until_wall: float  # ...until released, or until this wall time at the latest
    why: str
    pace: float = 0.0  # the limit moves this many lab seconds per wall second (1: real time)...
    since_wall: float = 0.0  # ...from this wall time

    def as_list(self) -> list[float]:
        return [self.limit, self.until_wall, self.pace, self.since_wall]


@dataclass(frozen=True)
class _Piece:
    """The clock as it was until `until_wall`: its origin and the holds then in force."""

    until_wall: float
    origin_wall: float
    origin_target: float
    holds: tuple[_Hold, ...]


def evaluate(scale: float, origin_wall: float, origin_target: float, holds: list | tuple, wall: float) -> float:
    """Lab time at `wall`: the scaled wall time, capped by every hold still in force at `wall`.

    `holds` are `_Hold`s or their `as_list()` ([limit, until_wall] or [limit, until_wall, pace,
    since_wall]); the guests' tools apply the same rule to `snapshot()` (backend/lab/vast/player.py)."""
    value = origin_target + scale * (wall - origin_wall)
    for hold in holds:
        limit, until_wall, pace, since_wall = (list(hold.as_list() if isinstance(hold, _Hold) else hold)
                                               + [0.0, 0.0])[:4]
        limit += pace * max(0.0, wall - since_wall)
        if wall < until_wall and limit < value:
            value = limit
    return value


class WorldClock(Clock):
    """A `Clock` whose time the lab's world may hold (see the module's docstring)."""

    def __init__(self, scale: float = 1.0, origin_wall: float = 0.0, origin_target: float = 0.0) -> None:
        super().__init__(float(scale), float(origin_wall), float(origin_target))
        self._lock = threading.RLock()
        self._holds: dict[int, _Hold] = {}
        self._serial = 0
        self._past: list[_Piece] = []
        self._listeners: list[Callable[[dict], None]] = []

    @classmethod
    def from_snapshot(cls, data: dict, scale: float | None = None) -> WorldClock:
        """The clock a new process continues from a `snapshot()`: the time its readers saw now,
        running on at `scale` (the snapshot's own by default), with no holds."""
        wall = time.time()
        old = float(data["scale"])
        now = evaluate(old, float(data["origin_wall"]), float(data["origin_target"]),
                       [tuple(h) for h in data.get("holds") or []], wall)
        if not data.get("holds") and (scale is None or float(scale) == old):
            return cls(old, float(data["origin_wall"]), float(data["origin_target"]))
        return cls(old if scale is None else float(scale), wall, now)

    # -- reading ----------------------------------------------------------------------------------
    def now(self) -> float:
        with self._lock:
            return evaluate(self.scale, self.origin_wall, self.origin_target, tuple(self._holds.values()),
                            time.time())

    def to_target(self, wall_epoch: float) -> float:
        """The lab time the clock showed (or will show, if nothing changes) at `wall_epoch`."""
        with self._lock:
            index = bisect.bisect_right([piece.until_wall for piece in self._past], wall_epoch)
            if index < len(self._past):
                piece = self._past[index]
                return evaluate(self.scale, piece.origin_wall, piece.origin_target, piece.holds, wall_epoch)
            return evaluate(self.scale, self.origin_wall, self.origin_target, tuple(self._holds.values()),
                            wall_epoch)

    def held(self) -> bool:
        """Whether lab time stands still now (a hold in force has reached its limit)."""
        with self._lock:
            wall = time.time()
            free = self.origin_target + self.scale * (wall - self.origin_wall)
            return evaluate(self.scale, self.origin_wall, self.origin_target, tuple(self._holds.values()), wall) < free

    def snapshot(self) -> dict:
        """The clock with its holds in force, for the files other processes read it from."""
        with self._lock:
            return {**self.to_dict(), "holds": [h.as_list() for h in self._holds.values()]}

    def publish(self, writer: Callable[[dict], None]) -> None:
        """`writer(snapshot())` under the clock's lock: no change of the clock slips in between."""
        with self._lock:
            writer(self.snapshot())

    def subscribe(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        """Call `listener(snapshot())` at every change of the clock (under the clock's lock, so
        that files written by listeners always end with the latest); returns an unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- holding ----------------------------------------------------------------------------------
    def hold(self, limit: float, why: str = "", *, pace: float = 0.0) -> int:
        """Lab time does not pass `limit` (never earlier than now) until `release(token)`; with a
        `pace`, the limit moves on at that many lab seconds per wall second (1: the lab's time runs
        at the real world's while it waits on something real, e.g. its network's own timing)."""
        with self._lock:
            wall = time.time()
            current = self.now()
            self._remember(wall)
            self._serial += 1
            self._holds[self._serial] = _Hold(max(float(limit), current), wall + HOLD_CAP_WALL_S, why,
                                              float(pace), wall)
            self._changed()
            return self._serial

    def release(self, token: int) -> None:
        """End a hold; lab time continues from where it stands (the held wall time is not counted)."""
        with self._lock:
            hold = self._holds.get(token)
            if hold is None:
                return
            wall = time.time()
            current = self.now()
            self._remember(wall)
            del self._holds[token]
            if wall >= hold.until_wall:
                log.warning("the lab clock's hold for %s lapsed after %.0f wall s", hold.why or "?", HOLD_CAP_WALL_S)
            self.origin_wall, self.origin_target = wall, current
            self._changed()

    def _remember(self, wall: float) -> None:
        self._past.append(_Piece(wall, self.origin_wall, self.origin_target, tuple(self._holds.values())))
        if len(self._past) > HISTORY_PIECES:
            del self._past[: len(self._past) - HISTORY_PIECES]

    def _changed(self) -> None:
        snapshot = self.snapshot()
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except OSError as exc:  # a guest's runtime directory gone with its boot
                log.debug("lab clock listener: %s", exc)


def as_world_clock(clock: Clock) -> WorldClock:
    """`clock` itself if the lab can hold it, else a `WorldClock` running exactly like it (then every
    reader must read the returned one, e.g. the lab's `clock` attribute)."""
    if isinstance(clock, WorldClock):
        return clock
    return WorldClock(clock.scale, clock.origin_wall, clock.origin_target)


def hold(clock: Clock, limit: float, why: str = "", *, pace: float = 0.0) -> int | None:
    """Hold `clock` at `limit` if it is a `WorldClock` (any other clock has nothing to hold)."""
    return clock.hold(limit, why, pace=pace) if isinstance(clock, WorldClock) else None


def release(clock: Clock, token: int | None) -> None:
    """End a hold made with `hold` (None: there was none)."""
    if token is not None and isinstance(clock, WorldClock):
        clock.release(token)


def publish(clock: Clock, writer: Callable[[dict], None]) -> None:
    """`writer(snapshot)` with the clock's state of this moment, holds included, so that no change
    of the clock is written over by an older state (a `WorldClock`'s listeners write under its lock)."""
    if isinstance(clock, WorldClock):
        clock.publish(writer)
    else:
        writer(clock.to_dict())


def subscribe(clock: Clock, listener: Callable[[dict], None]) -> Callable[[], None]:
    """`WorldClock.subscribe` for any clock (one that never changes calls no listener)."""
    if isinstance(clock, WorldClock):
        return clock.subscribe(listener)
    return lambda: None
