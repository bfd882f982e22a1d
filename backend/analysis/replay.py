"""Replay a recorded run: its events and samples merged by time, fed to a subscriber at a chosen
speed, so any subscriber (the dashboard, a printer, a test) sees an old run as it happened.

Record and replay are one feature: the journal (backend/run/journal.py) records every event, and
`replay` hands the same events back in the same order, waiting between them as long as the target
clock did, divided by `speed`. Samples are merged into the other events by time; within each file
the written order is kept (a step's start stays before its end even when they share a timestamp).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from backend.events import Event, RunFinished
from backend.run.bus import Subscriber
from backend.run.journal import EVENTS, SAMPLES, RunDir, read_events

MAX_WAIT_S = 5.0  # a quiet stretch of the recording never freezes a replay for longer (wall seconds)
YIELD_EVERY = 200  # at unlimited speed, let the UI breathe every so many events

Sleep = Callable[[float], Awaitable[None]]


def merge_by_time(*streams: Iterable[Event]) -> list[Event]:
    """Streams each in written order, merged by `ts` (stable: ties keep the stream order given)."""
    return list(heapq.merge(*streams, key=lambda e: e.ts))


def recorded_events(run_dir: str | Path) -> list[Event]:
    """Every event of a run directory, samples included, merged by time."""
    run = RunDir.open(run_dir)
    return merge_by_time(read_events(run.path / EVENTS), read_events(run.path / SAMPLES))


def recorded_exit_code(events: Sequence[Event]) -> int:
    """The exit code the recorded run ended with (0 when it never finished)."""
    finished = [e for e in events if isinstance(e, RunFinished)]
    return finished[-1].exit_code if finished else 0


async def replay(events: Sequence[Event], subscriber: Subscriber, *, speed: float = 1.0,
                 sleep: Sleep = asyncio.sleep, max_wait: float = MAX_WAIT_S) -> int:
    """Feed `events` to `subscriber`, waiting (target time between events) / speed between them.

    `speed` may be `math.inf` (no waiting). Returns the recorded run's exit code."""
    previous: float | None = None
    since_yield = 0
    for event in events:
        if previous is not None and math.isfinite(speed) and speed > 0:
            delay = (event.ts - previous) / speed
            if delay > 0:
                await sleep(min(delay, max_wait))
                since_yield = 0
        since_yield += 1
        if since_yield >= YIELD_EVERY:
            await asyncio.sleep(0)
            since_yield = 0
        previous = event.ts if previous is None else max(previous, event.ts)
        subscriber(event)
    return recorded_exit_code(events)
