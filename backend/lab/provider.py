"""The 'lab' target provider: starts the lab's world for a run and hands the engine a Target."""

from __future__ import annotations

from backend.answers import Answers
from backend.errors import RunFailed
from backend.target import Target, TargetOptions, register_provider


async def open_lab(answers: Answers, options: TargetOptions) -> Target:
    raise RunFailed("the built-in lab is not available yet")


register_provider("lab", open_lab)
