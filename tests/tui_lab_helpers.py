"""Helpers for the wizard's end-to-end tests on the built-in lab: waiting for what the screen shows,
a lab target opener with an empty known_hosts (so the guest's host key is unknown, as on a first
real connection), and ending every lab guest a test booted (they outlive the lab process by design).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.css.query import NoMatches

import backend.lab  # noqa: F401  - registers the 'lab' target provider, as the entry point does
from backend.lab import shutdown
from backend.lab.guest.namespace import Holder
from backend.model.answers import Answers
from backend.target import Target, TargetOptions, open_target
from tests.lab_fixtures import require_lab_guest


def require_lab() -> None:
    """Skip with the lab's own reason where its guest cannot run."""
    require_lab_guest()


async def lab_without_known_hosts(answers: Answers, options: TargetOptions) -> Target:
    """The lab, but the guest's host key is in no known_hosts file: the run must ask (or refuse)."""
    target = await open_target(answers, options)
    state_dir = Path(options.state_dir or ".")
    empty = state_dir / "known_hosts.empty"
    if not empty.exists():
        empty.write_text("")
    target.known_hosts = empty
    return target


def end_guests(root: Path) -> int:
    """Hard-stop every lab guest whose world lives under `root` (see backend.lab.shutdown); returns
    how many were running."""
    return sum(ended_by_world(root).values())


def ended_by_world(root: Path) -> dict[Path, int]:
    """Hard-stop every lab guest under `root`: {a lab world's state directory: guests it had running}."""
    ended = {guests.parent: shutdown.end_guests(guests.parent)
             for guests in sorted(Path(root).glob("**/guests")) if guests.is_dir()}
    return {world: count for world, count in ended.items() if count}


def guests_alive(root: Path) -> int:
    alive = 0
    for record in Path(root).glob("**/guests/*/guest.json"):
        holder = Holder.from_dict(json.loads(record.read_text()).get("holder"))
        alive += bool(holder is not None and holder.alive())
    return alive


async def until(pilot, check: Callable[[], object], seconds: float = 60.0, what: str = "") -> None:  # noqa: ANN001
    """Let the app run until `check()` is true (polling every 20 ms); fail with `what` after `seconds`.
    A widget not found yet (a screen still being mounted) counts as not yet."""
    for _ in range(int(seconds / 0.02)):
        with contextlib.suppress(NoMatches):
            if check():
                return
        await pilot.pause(0.02)
    pytest.fail(f"timed out waiting for {what or check}; on top: {pilot.app.screen!r}")


def screen_name(app) -> str:  # noqa: ANN001
    return type(app.screen).__name__
