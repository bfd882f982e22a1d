"""The web demo's keys (issue 17, item 9), driven with Pilot: served to a browser, every action
bound to a control key a browser keeps (^t new tab, ^n new window, ^r reload, ^o, ^s, ^q) has a
function key instead, shown in the footer, the buttons, the status line, the demo's hints and the
help; in a terminal nothing changes. (The same walk in a real browser: tests/test_web_keyboard.py.)"""

from __future__ import annotations

from textual.widgets import Button, Footer, Static

from tests.tui_helpers import Opener, wait_for_screen
from tui.app import demo_app
from tui.keys import localize


def footer_keys(app) -> dict[str, str]:  # noqa: ANN001
    """The footer's offers: description -> key, as drawn."""
    footer = app.screen.query_one(Footer)
    return {item.description: item.key_display for item in footer.query("FooterKey")}


def shown(app, selector: str) -> str:  # noqa: ANN001
    return str(app.screen.query_one(selector).render())


async def test_served_on_the_web_every_control_key_is_a_function_key_shown_everywhere():
    app = demo_app("overcommit", 30.0, kiosk=True, probe_opener=Opener(), blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "F4 connects" in shown(app, ".demo-hint") and "^t" not in shown(app, ".demo-hint")
        assert "F4" in str(app.screen.query_one("#test", Button).label)
        assert footer_keys(app)["Test connection"] == "f4" and footer_keys(app)["Quit"] == "f10"
        await pilot.press("ctrl+t")  # the browser's: in a page it opened a tab, here it does nothing
        await pilot.pause()
        assert type(app.screen).__name__ == "ConnectScreen"
        await pilot.press("f4")
        await wait_for_screen(pilot, app, "FingerprintDialog")
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Next (F2)" in app.screen.status and "F2" in str(app.screen.query_one("#next", Button).label)
        await pilot.press("f2")
        await wait_for_screen(pilot, app, "HostScreen")
        await pilot.press("f2")
        await wait_for_screen(pilot, app, "SizingScreen")
        sizing = app.screen
        assert "F9 overrides" in shown(app, ".demo-hint")
        assert {"Recommend": "f8", "Override": "f9", "Next": "f2"}.items() <= footer_keys(app).items()
        assert "F8 recommends, F9 overrides" in sizing.status and "(F8 applies it)" in shown(app, "#recommendation")
        await pilot.press("f1")
        await wait_for_screen(pilot, app, "HelpScreen")
        general = str(app.screen.query_one("#general", Static).render())
        assert "F2 / Esc" in general and "^n" not in general and "^q" not in general
        await pilot.press("escape")
        await wait_for_screen(pilot, app, "SizingScreen")
        await pilot.press("f8")  # the recommendation: 12 vCPUs, 120 GiB
        await pilot.pause()
        assert sizing.values() == (12, 120, 1000) and sizing.next_enabled
        for name in ("StorageNetworkScreen", "GuestScreen", "ReviewScreen"):
            await pilot.press("f2")
            await wait_for_screen(pilot, app, name)
        offers = footer_keys(app)
        assert offers["Start"] == "f2" and "Save answers" not in offers  # nothing is saved on the server


async def test_in_a_terminal_the_keys_stay_the_control_keys():
    app = demo_app("success", 30.0, probe_opener=Opener(), blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "^t connects" in shown(app, ".demo-hint")
        assert footer_keys(app)["Test connection"] == "^t"
        await pilot.press("f4")  # not a key of the terminal wizard
        await pilot.pause()
        assert type(app.screen).__name__ == "ConnectScreen"


def test_localize_names_only_the_keys_that_moved():
    assert localize("^n goes on; ^r recommends; ^x stays; a^b is no key", web=True) == \
        "F2 goes on; F8 recommends; ^x stays; a^b is no key"
    assert localize("^n goes on", web=False) == "^n goes on"
