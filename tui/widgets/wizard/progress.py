"""The wizard's header: where it points (the target, once connected) and the step bar, where the
user is among Connect, Host, Sizing, Storage & network, Guest, Review."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

STEPS: tuple[tuple[str, str], ...] = (
    ("connect", "Connect"),
    ("host", "Host"),
    ("sizing", "Sizing"),
    ("storage_network", "Storage & network"),
    ("guest", "Guest"),
    ("review", "Review"),
)


def step_bar(current: str, compact: bool = False) -> Text:
    """Finished steps ticked, the current one highlighted, the rest dim; `compact`: only the
    current step keeps its title (the others their tick or number)."""
    ids = [step_id for step_id, _ in STEPS]
    here = ids.index(current) if current in ids else len(ids)
    text = Text(no_wrap=True, overflow="ellipsis")
    for index, (_, title) in enumerate(STEPS):
        if index:
            text.append(" " if compact else " › ", style="dim")
        if index < here:
            text.append("✓" if compact else f"✓ {title}", style="green")
        elif index == here:
            text.append(f"{index + 1} {title}", style="bold reverse")
        else:
            text.append(f"{index + 1}" if compact else f"{index + 1} {title}", style="dim")
    return text


class WizardProgress(Widget):
    """One line: the target the wizard points at (`where`, the Target's description) and the step
    bar, shortened to fit: the step titles first, then the target's description (ellipsis)."""

    DEFAULT_CSS = """
    WizardProgress { height: 1; width: 1fr; padding: 0 1; background: $panel; }
    """

    current: reactive[str] = reactive("connect")
    where: reactive[str] = reactive("")

    def __init__(self, current: str, where: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current
        self.where = where

    def render(self) -> Text:
        room = self.content_size.width or 78
        bar = step_bar(self.current)
        if not self.where:
            return bar
        if len(self.where) + 3 + bar.cell_len > room:
            bar = step_bar(self.current, compact=True)
        where = Text(self.where, style="bold", no_wrap=True, overflow="ellipsis")
        where.truncate(max(8, room - 3 - bar.cell_len), overflow="ellipsis")
        return Text.assemble(where, (" │ ", "dim"), bar, no_wrap=True, overflow="ellipsis")
