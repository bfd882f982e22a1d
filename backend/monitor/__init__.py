"""Live monitoring: the guest agent (agent.py, shipped as one standard-library file) and the
jump-host side that turns its JSON lines into events."""

from __future__ import annotations

from pathlib import Path

AGENT_PATH = Path(__file__).with_name("agent.py")


def agent_source() -> str:
    """The agent exactly as it is shipped to the guest."""
    return AGENT_PATH.read_text(encoding="utf-8")
