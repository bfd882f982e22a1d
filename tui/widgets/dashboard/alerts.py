"""What needs attention: diagnoses and alerts (the engine's and the live watcher's), then the log of
notable events (kernel lines, stalls, retries and recoveries, cluster changes, install log lines).
Also the one-line versions the compact dashboard keeps at its bottom: the run's header line and the
most important alert."""

from __future__ import annotations

from textual.widgets import Static

from backend.analysis.charts import Line
from tui.session import LogEntry, RunSession
from tui.widgets.dashboard.pane import Pane, clock, span
from tui.widgets.dashboard.timeline import short_line

LEVEL_STYLES = {"critical": "red", "warning": "yellow", "info": "", "log": "dim"}
MARKS = {"critical": ("✖", "bold red"), "warning": ("!", "bold yellow")}


def ranked_alerts(session: RunSession) -> list[dict]:
    """Diagnoses (critical first, the earliest first: the root cause before its consequences),
    then alerts (critical first, the newest first)."""
    diagnoses = sorted(({**d, "message": d.get("cause", ""), "diagnosis": True} for d in session.diagnoses.values()),
                       key=lambda i: (i.get("severity") != "critical", i.get("t") or 0.0))
    alerts = sorted(({**a, "diagnosis": False} for a in session.alerts.values()),
                    key=lambda i: (i.get("severity") != "critical", -(i.get("t") or 0.0)))
    return diagnoses + alerts


def alert_line(item: dict) -> Line:
    mark, style = MARKS.get(item.get("severity", ""), ("!", "bold yellow"))
    prefix = "diagnosis: " if item.get("diagnosis") else ""
    return ((f"{mark} ", style), (clock(item.get("t")) + " ", "dim"), (prefix + item.get("message", ""),
                                                                        "bold" if item.get("diagnosis") else ""))


def log_line(entry: LogEntry) -> Line:
    text = short_line(entry.text, keep_time=False) if entry.level == "log" else entry.text
    return ((clock(entry.t) + " ", "dim"), (text, LEVEL_STYLES.get(entry.level, "")))


class AlertsPane(Pane):
    PANE_TITLE = "Alerts & log"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        alerts = [alert_line(item) for item in ranked_alerts(session)]
        out: list[Line] = alerts[: max(1, height // 2)] if alerts else [(("✓ no alerts", "green"),)]
        room = height - len(out)
        if room > 0:
            entries = list(session.log)[-room:]
            out += [log_line(entry) for entry in entries]
        return out


class AlertLine(Pane):
    """One line at the bottom of the compact dashboard: the alert that matters most right now."""

    DEFAULT_CSS = """
    AlertLine { border: none; padding: 0 1; height: 1; background: $boost; }
    """

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        ranked = ranked_alerts(session)
        if not ranked:
            return [(("✓ no alerts", "green"), ("  ·  d details  l log", "dim"))]
        more = f"  (+{len(ranked) - 1} more, d)" if len(ranked) > 1 else "  (d)"
        return [alert_line(ranked[0]) + ((more, "dim"),)]


class RunHeader(Pane):
    """The run in one line: the VM, where it runs, how long it has run, the step and cluster state."""

    DEFAULT_CSS = """
    RunHeader { border: none; padding: 0 1; height: 1; background: $panel; }
    """

    badge = ""

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        state = session.state
        now = session.now()
        elapsed = span((now - state.started) if now is not None and state.started is not None else None)
        badge = self.badge or ("" if session.live or session.source is None else
                               "replay" if session.speed == float("inf") else f"replay ×{session.speed:g}")
        parts: list[tuple[str, str]] = [(f"[{badge}] " if badge else "", "bold magenta"), (session.title or "run", "bold")]
        if state.target:
            parts.append((f" · {state.target}", "dim"))
        if elapsed:
            parts.append((f" · {elapsed}", ""))
        if session.end is not None:
            ok = session.end.exit_code == 0
            parts.append((f" · {session.end.outcome.upper()} (exit {session.end.exit_code})",
                          "bold green" if ok else "bold red"))
        elif state.current_step is not None:
            parts.append((f" · ▶ {state.current_step.title}", "yellow"))
        if state.cluster_state:
            parts.append((f" · cluster {state.cluster_state}", ""))
        return [tuple(parts)]


class HintLine(Static):
    """The demo's hint: one short sentence about what to look at now (two lines at most on 80 columns)."""

    DEFAULT_CSS = """
    HintLine { height: auto; max-height: 2; padding: 0 1; color: $warning; text-style: italic; }
    """
