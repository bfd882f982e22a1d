"""Ending a lab world's guests from its state directory, after its lab process is gone.

The lab's guests outlive the lab process by design (a resumed run finds them running). Where a run
is over for good, e.g. when `vast-loopback demo` quits, its guests are ended here: each guest's
record (`guests/<vmid>/guest.json`) names its PID 1 by pid, start time and PID namespace, so the
right processes are ended and a recycled pid never is. The records stay as they are: a later
resume finds the guest gone and boots it afresh, as after a host crash.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.lab.guest.namespace import Holder


def end_guests(state_dir: str | Path) -> int:
    """Hard-stop every running guest of the lab world in `state_dir`; returns how many were running."""
    ended = 0
    for record in sorted(Path(state_dir).glob("guests/*/guest.json")):
        try:
            holder = Holder.from_dict(json.loads(record.read_text()).get("holder"))
        except (OSError, ValueError, TypeError):
            continue
        if holder is not None and holder.alive():
            holder.end(graceful=False)
            ended += 1
    return ended
