"""The Host screen: nodes with their facts, the best one picked on 'a', any one chosen with Enter."""

from __future__ import annotations

from tests.tui_helpers import BIG_INVENTORY, Opener, connect, make_app, posted
from tui.messages import HostChosen
from tui.widgets.wizard.hosttable import HostTable


async def _to_host(pilot, app):
    await connect(pilot, app)
    await pilot.press("ctrl+n")
    await pilot.pause()
    assert type(app.screen).__name__ == "HostScreen"


async def test_every_node_is_listed_with_its_cores_threads_and_ram():
    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    async with app.run_test(size=(80, 24)) as pilot:
        await _to_host(pilot, app)
        table = app.screen.query_one(HostTable)
        assert table.row_count == 3
        assert [str(c) for c in table.get_row("pve1")[:4]] == ["pve1", "32", "64", "503.8"]
        details = str(app.screen.query_one("#details").render())
        assert "2 sockets, 32 physical cores" in details and "hyperthreads do not count" in details


async def test_auto_picks_the_node_with_most_free_ram_and_enter_picks_another():
    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await _to_host(pilot, app)
        screen = app.screen
        assert screen.choice == "auto" and "auto → pve2" in str(screen.query_one("#chosen").render())
        table = screen.query_one(HostTable)
        assert table.highlighted_node == "pve2"  # the best node is highlighted
        await pilot.press("down", "enter")
        assert screen.choice == "pve3"
        await pilot.press("a")
        assert screen.choice == "auto" and table.highlighted_node == "pve2"
        await pilot.press("up", "up", "enter", "ctrl+n")
        await pilot.pause()
        chosen = posted(seen, HostChosen)
        assert chosen[-1].node == "pve1" and chosen[-1].resolved == "pve1"
        assert app.state.answers.proxmox.node == "pve1" and app.state.node.node == "pve1"
        assert type(app.screen).__name__ == "SizingScreen"


async def test_auto_is_written_as_auto():
    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await _to_host(pilot, app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert posted(seen, HostChosen)[-1].node == "auto"
        assert app.state.answers.proxmox.node == "auto" and app.state.node.node == "pve2"


async def test_back_returns_to_connect_still_connected():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _to_host(pilot, app)
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConnectScreen" and app.screen.next_enabled
        await pilot.press("escape")  # the first step has nothing behind it
        assert type(app.screen).__name__ == "ConnectScreen"
