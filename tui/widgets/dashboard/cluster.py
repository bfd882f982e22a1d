"""The VAST cluster: its state now and for how long, every transition with its time and how long
the state lasted, and the VMS tasks (cluster_deploy) with their state."""

from __future__ import annotations

from backend.analysis.charts import Line
from backend.clients.vtask import TASK_FAILED_STATES
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane, clock, span

STATE_STYLES = {"ONLINE": "bold green", "ACTIVATING": "bold yellow", "INIT": "bold cyan"}
BAD_STATES = ("UNKNOWN", "FAILED", "KILLED", "DEGRADED")


def state_style(state: str) -> str:
    upper = state.upper()
    if upper in BAD_STATES:
        return "bold red"
    return STATE_STYLES.get(upper, "bold")


def task_style(state: str) -> str:
    upper = state.upper()
    if upper in ("COMPLETED", "SUCCEEDED"):
        return "green"
    if upper in TASK_FAILED_STATES:
        return "bold red"
    return "yellow"


class ClusterPane(Pane):
    PANE_TITLE = "Cluster"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        state = session.state
        if not state.cluster_states:
            return [(("no cluster yet", "dim"),), (("(the install creates it)", "dim"),)]
        now = session.now()
        current_t, current = state.cluster_states[-1]
        head: Line = ((current, state_style(current)), (f"  for {span((now or current_t) - current_t)}", "dim"))
        transitions: list[Line] = []
        for index, (t, name) in enumerate(state.cluster_states):
            until = state.cluster_states[index + 1][0] if index + 1 < len(state.cluster_states) else now
            lasted = span((until or t) - t)
            stamp = clock(t) + " " if width >= 24 else ""  # a narrow pane keeps the states and durations
            transitions.append(((stamp, "dim"), (name.ljust(11), state_style(name)), (lasted, "dim")))
        tasks: list[Line] = []
        for name, task in state.vtasks.items():
            runtime = task.get("runtime_s")
            extra = f" {span(runtime)}" if isinstance(runtime, int | float) else ""
            tasks.append(((f"{name} ", ""), (str(task.get("state", "")), task_style(str(task.get("state", "")))),
                          (extra, "dim")))
        room = max(0, height - 1 - len(tasks))
        shown = transitions[-room:] if room else []
        return [head, *shown, *tasks][:height]
