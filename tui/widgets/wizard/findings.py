"""The findings list: sizing findings, most severe first, each with its remedy and (for blockers)
the field report's evidence; blockers overridden on purpose are marked as such."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from backend.model.sizing import Finding

MARKS = {"blocker": ("✖ BLOCKER", "bold red"), "warning": ("! warning", "yellow"), "info": ("i", "dim cyan")}


class FindingsList(Widget):
    """Renders a tuple of findings; set `findings` (and `overridden`) and it repaints itself."""

    DEFAULT_CSS = """
    FindingsList { height: auto; width: 1fr; }
    """

    findings: reactive[tuple[Finding, ...]] = reactive((), layout=True)
    overridden: reactive[frozenset[str]] = reactive(frozenset(), layout=True)
    show_info: reactive[bool] = reactive(True, layout=True)
    show_evidence: reactive[bool] = reactive(True, layout=True)

    def render(self) -> Text:
        text = Text()
        shown = [f for f in self.findings if self.show_info or f.severity != "info"]
        if not shown:
            text.append("✓ no blockers or warnings", style="green")
            return text
        for number, finding in enumerate(shown):
            if number:
                text.append("\n")
            mark, style = MARKS.get(finding.severity, ("?", ""))
            if finding.severity == "blocker" and finding.id in self.overridden:
                mark, style = "⚠ OVERRIDDEN", "bold magenta"
            text.append(mark, style=style)
            text.append(f" {finding.message}")
            if finding.severity != "info":
                text.append(f"\n    → {finding.remedy}", style="italic")
                if finding.severity == "blocker" and self.show_evidence and finding.evidence:
                    text.append(f"\n    evidence: {finding.evidence}", style="dim")
        return text

    @property
    def counts(self) -> dict[str, int]:
        counts = {"blocker": 0, "warning": 0, "info": 0}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts
