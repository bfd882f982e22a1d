"""Whose time a run is on.

A real host runs on wall time. The lab compresses time N-fold (`--speed N`): its clock runs N times
faster than the wall and every wait is N times shorter, so a compressed run still reports the field
timeline. The engine only ever talks to a `Clock`; it never asks which one it has.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

EPSILON_S = 1e-6  # target seconds within which a wait's end counts as reached (float rounding)
MIN_WAIT_WALL_S = 0.002  # shortest stretch of a wait (no spinning while the clock stands still)


@dataclass
class Clock:
    """Target time = origin_target + scale * (wall - origin_wall). scale 1 is plain wall time."""

    scale: float = 1.0
    origin_wall: float = 0.0
    origin_target: float = 0.0

    @classmethod
    def wall(cls) -> Clock:
        now = time.time()
        return cls(1.0, now, now)

    @classmethod
    def scaled(cls, scale: float, origin_wall: float | None = None, origin_target: float | None = None) -> Clock:
        now = time.time()
        return cls(
            float(scale),
            now if origin_wall is None else origin_wall,
            now if origin_target is None else origin_target,
        )

    def now(self) -> float:
        """The target's current epoch seconds."""
        return self.to_target(time.time())

    def to_target(self, wall_epoch: float) -> float:
        """Map a wall-clock epoch (e.g. a guest timestamp) onto the target's clock."""
        return self.origin_target + self.scale * (wall_epoch - self.origin_wall)

    def duration(self, wall_seconds: float) -> float:
        """A wall duration expressed in target seconds."""
        return wall_seconds * self.scale

    def wall_seconds(self, target_seconds: float) -> float:
        """How long `target_seconds` of target time last on the wall."""
        return target_seconds / self.scale

    async def sleep(self, target_seconds: float) -> None:
        """Wait `target_seconds` of target time."""
        await self.sleep_until(self.now() + max(0.0, target_seconds))

    async def sleep_until(self, target_epoch: float) -> None:
        """Wait until the target's clock shows `target_epoch`. On the clock, not the wall: a target's
        time need not run evenly with the wall (it may stand still for a while), so the wait checks
        the clock again after each stretch it expected to need."""
        left = target_epoch - self.now()
        if left <= EPSILON_S:
            await asyncio.sleep(0)  # a wait already over still lets the others run, as asyncio.sleep(0)
        while left > EPSILON_S:
            await asyncio.sleep(max(left / self.scale, MIN_WAIT_WALL_S))
            left = target_epoch - self.now()

    def to_dict(self) -> dict:
        return {"scale": self.scale, "origin_wall": self.origin_wall, "origin_target": self.origin_target}
