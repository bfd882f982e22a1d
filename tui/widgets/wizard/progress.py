"""The wizard's step bar: where the user is among Connect, Host, Sizing, Storage & network, Guest,
Review."""

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


class WizardProgress(Widget):
    """One line: finished steps ticked, the current one highlighted, the rest dim."""

    DEFAULT_CSS = """
    WizardProgress { height: 1; width: 1fr; padding: 0 1; background: $panel; }
    """

    current: reactive[str] = reactive("connect")

    def __init__(self, current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current

    def render(self) -> Text:
        ids = [step_id for step_id, _ in STEPS]
        here = ids.index(self.current) if self.current in ids else len(ids)
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (_, title) in enumerate(STEPS):
            if index:
                text.append(" › ", style="dim")
            if index < here:
                text.append(f"✓ {title}", style="green")
            elif index == here:
                text.append(f"{index + 1} {title}", style="bold reverse")
            else:
                text.append(f"{index + 1} {title}", style="dim")
        return text
