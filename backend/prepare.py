"""Steps of the 'prepare' group (see backend/plan.py). Filled in by its issue."""

from __future__ import annotations

from backend.engine import Step


def steps() -> list[Step]:
    return []
