"""A fleet as the TUI follows it: one RunSession per member, fed by that member's own events.

`FleetSession.run()` runs `backend.run.fleet.up` (or `resume`); each member's session folds exactly
what a single run's dashboard folds, so Enter on a member opens the ordinary dashboard on it.
Plain Python, no Textual.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend import events as ev
from backend.errors import VlbError
from backend.model.answers import Answers
from backend.run import fleet
from backend.run.bus import EventBus
from backend.secrets import redact
from tui.session import RunEnd, RunSession

Listener = Callable[[str], None]


@dataclass
class FleetSession:
    answers: Answers
    count: int
    run_dir: str | Path | None = None
    options: fleet.FleetOptions = field(default_factory=fleet.FleetOptions)
    sessions: dict[str, RunSession] = field(default_factory=dict)  # member name -> its session, in order
    plan: dict = field(default_factory=dict)
    worst_stall_ms: dict[str, float] = field(default_factory=dict)  # member name -> its longest stall
    end: int | None = None
    message: str = ""
    _listeners: list[Listener] = field(default_factory=list)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self, what: str) -> None:
        for listener in list(self._listeners):
            listener(what)

    def member(self, name: str, bus: EventBus) -> Callable[[int], None]:
        """The fleet's member hook: a live session per member, ended with the member's exit code."""
        session = RunSession(title=f"VM {name}", live=True, clock=bus.clock)
        session.running = True
        # events emitted from another thread are folded on this loop, as a run's own session does
        session._thread, session._loop = threading.get_ident(), asyncio.get_running_loop()
        self.sessions[name] = session
        session.listen(self._notify)
        bus.subscribe(session.subscriber)
        self.worst_stall_ms[name] = 0.0

        def stall(event: ev.Event) -> None:
            if isinstance(event, ev.StallDetected):
                self.worst_stall_ms[name] = max(self.worst_stall_ms[name], float(event.length_ms))

        bus.subscribe(stall)
        self._notify("changed")

        def ended(code: int) -> None:
            state = session.state
            session.finish(RunEnd(code, state.outcome or ("done" if code == 0 else "failed"), state.message))

        return ended

    def row(self, name: str) -> dict:
        """A member's row: node, phase, memory used vs the VM's, max steal, worst stall, cluster state."""
        session = self.sessions[name]
        state = session.state
        step = state.current_step
        member = next((m for m in self.plan.get("members", ()) if m["name"] == name), {})
        used = session.used_max.value
        return {
            "name": name, "node": member.get("node", ""),
            "phase": session.end.outcome if session.end else (step.title if step else "starting"),
            "memory": (f"{used / 1024**3:.1f} / {member.get('memory_gib', '?')} GiB" if used is not None
                       else f"- / {member.get('memory_gib', '?')} GiB"),
            "steal": f"{session.steal_max.value:.1f} %" if session.steal_max.value is not None else "-",
            "stall": f"{self.worst_stall_ms.get(name, 0):.0f} ms" if self.worst_stall_ms.get(name) else "-",
            "cluster": state.cluster_state or "-",
        }

    def alerts(self) -> list[str]:
        """Every member's alerts and diagnoses, prefixed with the member's name."""
        lines = []
        for name, session in self.sessions.items():
            lines += [f"{name}: [{a['severity']}] {a['message']}" for a in session.alerts.values()]
            lines += [f"{name}: DIAGNOSIS {d.get('cause', d.get('id'))}" for d in session.diagnoses.values()]
        return lines

    def planned(self, data: dict) -> None:
        self.plan = data
        self._notify("changed")

    async def run(self) -> int:
        try:
            code = await fleet.up(self.answers, self.count, self.run_dir, self.options, on_member=self.member,
                                  on_plan=self.planned, answers_source="wizard")
        except VlbError as exc:
            code, self.message = exc.exit_code, redact(str(exc)).splitlines()[0]
        self.end = code
        if code == 3 and not self.message:
            self.message = self.plan.get("summary", "")
        self._notify("ended")
        return code
