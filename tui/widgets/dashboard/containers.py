"""The containers' memory (docker stats' formula, from the samples): now, the peak, and the share
of the limit, biggest first, with the sum of all of them."""

from __future__ import annotations

from backend.analysis.charts import Line
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane


def short_name(name: str, width: int) -> str:
    """A name cut in the middle: containers differ by their ends (vast_platform_…4200)."""
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: keep - keep // 2] + "…" + name[len(name) - keep // 2:]


def share_style(share: float) -> str:
    if share >= 0.9:
        return "bold red"
    if share >= 0.75:
        return "yellow"
    return ""


class ContainersPane(Pane):
    PANE_TITLE = "Container memory"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        if not session.containers:
            return [(("no containers yet", "dim"),), (("(they start with the cluster)", "dim"),)]
        current = session.latest.get("containers") or {}
        rows = sorted(session.containers.items(), key=lambda item: -item[1].mem)
        name_width = max(8, min(max(len(name) for name, _ in rows), width - 26))
        out: list[Line] = [((f"{'container'.ljust(name_width)}   now  peak  limit", "dim"),)]
        body = height - 2
        for name, box in rows[: max(0, body)]:
            gone = name not in current
            share = box.mem / box.limit if box.limit else 0.0
            label = short_name(name, name_width)
            out.append(((label.ljust(name_width), "dim" if gone else ""),
                        (f" {box.mem / 2**30:5.1f}", "bold " + share_style(share) if not gone else "dim"),
                        (f" {box.peak / 2**30:5.1f}", "dim"),
                        (f" {share * 100:5.0f}%" if box.limit else "      -", share_style(share))))
        now = sum(box.mem for name, box in rows if name in current)
        out.append(((f"{'all'.ljust(name_width)}", "bold"), (f" {now / 2**30:5.1f} GiB", "bold")))
        return out
