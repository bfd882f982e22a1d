"""The wizard's keys where it runs: a terminal, or a browser page (`demo --web`).

A terminal hands every control key to the app. A browser does not: Chromium and Firefox keep ^t
(new tab), ^n (new window) and ^w (close tab) for themselves before the page sees them, and give
^r (reload, which ends the demo), ^o, ^s and ^q meanings of their own. So, served on the web, every
action bound to a control key is moved to a function key that no browser uses (Textual's keymap,
by each binding's id), and every hint names the key of where the wizard runs (`localize`). F1
(help), Esc and the plain keys (y, n, o, c, q, a, d, l, r, Enter) are left as they are: a
browser gives them to the page.
"""

from __future__ import annotations

import re

# binding id: (the terminal's key, the browser's key); shown as "^n" / "F2"
KEYS: dict[str, tuple[str, str]] = {
    "next": ("ctrl+n", "f2"),  # Next, Start on Review
    "test": ("ctrl+t", "f4"),  # Connect: test the connection
    "recommend": ("ctrl+r", "f8"),  # Sizing: apply the recommendation
    "override": ("ctrl+o", "f9"),  # Sizing: override a blocker on purpose
    "save": ("ctrl+s", "f6"),  # Review: save the answers (off in the web demo: nothing is written there)
    "quit": ("ctrl+q", "f10"),
}


def web_keymap() -> dict[str, str]:
    """Textual's keymap for the web: each binding id to its browser key."""
    return {binding_id: web for binding_id, (_, web) in KEYS.items()}


def shown(key: str) -> str:
    """How a key is written in hints: ctrl+n -> ^n, f2 -> F2."""
    return "^" + key.removeprefix("ctrl+") if key.startswith("ctrl+") else key.upper()


_WEB_NAMES = {shown(terminal): shown(web) for terminal, web in KEYS.values()}
_CONTROL = re.compile(r"\^[a-z]\b")


def localize(text: str, web: bool) -> str:
    """`text` with each terminal key written as the browser's key when `web` (^n -> F2)."""
    if not web:
        return text
    return _CONTROL.sub(lambda match: _WEB_NAMES.get(match.group(0), match.group(0)), text)
