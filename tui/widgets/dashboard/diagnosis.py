"""The diagnosis in full: each cause with the evidence that triggered it (time, source, line or
value) and its remedy, wrapped to the pane's width; the remedy a rollback-and-retry would apply is
named. The alerts (early warnings) follow, shorter."""

from __future__ import annotations

import textwrap

from backend.analysis.charts import Line
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane, clock

EVIDENCE_SHOWN = 5


def wrapped(text: str, width: int, first: str, rest: str, style: str, lead_style: str = "dim") -> list[Line]:
    room = max(10, width - len(first))
    chunks = textwrap.wrap(text, room) or [""]
    return [((first if n == 0 else rest, lead_style), (chunk, style)) for n, chunk in enumerate(chunks)]


def diagnosis_lines(session: RunSession, width: int, *, alerts: bool = True) -> list[Line]:
    items = sorted(session.diagnoses.values(), key=lambda d: (d.get("severity") != "critical", d.get("t") or 0.0))
    out: list[Line] = []
    if not items:
        stopped_by_preflight = any(not i.get("ok") and i.get("severity", "blocker") == "blocker"
                                   for i in session.state.preflight)
        if session.end is None or not session.failed:
            out.append((("✓ nothing to diagnose", "green"),))
        elif stopped_by_preflight:
            out.append((("the preflight stopped the run before the install; failed checks below", "yellow"),))
        else:
            out.append((("no known failure signature matched; see the log (l on the dashboard)", "yellow"),))
    for item in items:
        critical = item.get("severity") == "critical"
        mark = "✖ " if critical else "! "
        out += wrapped(str(item.get("cause", "")), width, mark, "  ", "bold " + ("red" if critical else "yellow"),
                       "bold red" if critical else "bold yellow")
        unique = {(e.get("t"), e.get("source"), e.get("text")): e for e in item.get("evidence") or []}
        for number, evidence in enumerate(list(unique.values())[:EVIDENCE_SHOWN]):
            when = clock(evidence.get("t")) if evidence.get("t") else "        "
            text = f"{when} {evidence.get('source', '')}: {evidence.get('text', '')}"
            out += wrapped(text, width, "  evidence " if number == 0 else "           ", "           ", "")
        if item.get("remedy"):
            out += wrapped(str(item["remedy"]), width, "  remedy   ", "           ", "italic green")
        changes = item.get("changes") or {}
        if changes and critical:
            shown = ", ".join(f"{key}={value}" for key, value in changes.items())
            out.append((("           ", ""), (f"r rolls back to pre-install and retries with {shown}", "bold")))
    if session.earlier:
        out.append((("earlier attempts", "bold"),))
        for item in session.earlier:
            out += wrapped(str(item.get("cause", "")), width, f"  attempt {item.get('attempt')}: ", "    ", "dim")
    if alerts and session.alerts:
        out.append((("alerts", "bold"),))
        for alert in sorted(session.alerts.values(), key=lambda a: a.get("t") or 0.0):
            mark = "✖ " if alert.get("severity") == "critical" else "! "
            out += wrapped(f"{clock(alert.get('t'))} {alert.get('message', '')}", width, mark, "  ",
                           "red" if mark == "✖ " else "yellow")
    return out


class DiagnosisPane(Pane):
    PANE_TITLE = "Diagnosis"

    DEFAULT_CSS = """
    DiagnosisPane { height: auto; min-height: 3; }
    """

    show_alerts = True

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        return diagnosis_lines(session, width, alerts=self.show_alerts)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return max(1, len(diagnosis_lines(self.session, width, alerts=self.show_alerts)))

    def sync(self) -> None:
        """Unlike the other panes, this one grows with what it has to say (its height is auto)."""
        if not self.display:
            return
        width = self.content_size.width
        if width <= 0:
            return
        lines = tuple(diagnosis_lines(self.session, width, alerts=self.show_alerts))
        if lines != self.view:
            self.view = lines
            self.refresh(layout=True)
