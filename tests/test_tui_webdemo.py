"""`demo --web` (issue 12, item 10): the demo served to a browser answers only at the URL it prints
(a random token in the path), only to requests naming this server on the loopback (Host) and only
to pages of its own origin (Origin; required on the websocket). Checked over real sockets, HTTP and
the websocket. Each browser session is the kiosk: the lab only, no secret reference read or even
looked for on the server, no answers file written, whatever the server's flags."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from textual.widgets import Input, RadioButton, Static

from backend.errors import BadInput
from backend.model.answers import Answers
from backend.secrets import SecretRef
from tests.tui_helpers import Opener, to_step
from tui import kiosk
from tui.app import demo_app
from tui.webdemo import demo_command, make_server

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-" + "x" * 26
QUICK_APP = shlex.join([sys.executable, "-c", "print('__GANGLION__')"])  # a session that ends at once


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def served():
    port = _free_port()
    server = make_server(QUICK_APP, port, token=TOKEN)
    runner = web.AppRunner(await server._make_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


async def _status(url: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, allow_redirects=False) as answer:
        return answer.status


async def _websocket(url: str, origin: str | None, **headers: str) -> int:
    """The handshake's status: 101 when the websocket opened."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, origin=origin, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status


async def test_the_page_opens_only_at_the_token_url_on_the_loopback(served):
    port = served.port
    base = f"http://127.0.0.1:{port}"
    host = {"Host": f"localhost:{port}"}
    async with aiohttp.ClientSession() as session, session.get(f"{base}/{TOKEN}/", headers=host) as answer:
        assert answer.status == 200
        page = await answer.text()
    assert f'data-session-websocket-url="ws://localhost:{port}/{TOKEN}/ws"' in page
    assert f"http://localhost:{port}/{TOKEN}/static/js/textual.js" in page
    assert await _status(f"{base}/{TOKEN}/static/js/textual.js", **host) == 200
    # no token, a wrong one, or the static files outside it: nothing is there
    for path in ("/", "/ws", "/static/js/textual.js", f"/{TOKEN[:-1]}/", f"/{TOKEN}x/", "/x" + TOKEN + "/"):
        assert await _status(base + path, **host) == 404, path
    # a page of another site reaching it through DNS rebinding names another host
    assert await _status(f"{base}/{TOKEN}/", Host=f"attacker.example:{port}") == 421
    assert await _status(f"{base}/{TOKEN}/", Host="localhost:1") == 421
    # a request sent by a page of another origin
    assert await _status(f"{base}/{TOKEN}/", Origin="http://attacker.example", **host) == 403
    assert await _status(f"{base}/{TOKEN}/", Origin=f"http://localhost:{port}", **host) == 200


async def test_the_websocket_opens_only_for_the_servers_own_origin_host_and_token(served):
    port = served.port
    ws = f"http://127.0.0.1:{port}/{TOKEN}/ws"
    own, host = f"http://localhost:{port}", {"Host": f"localhost:{port}"}
    assert await _websocket(ws, own, **host) == 101
    assert await _websocket(ws, f"http://127.0.0.1:{port}", Host=f"127.0.0.1:{port}") == 101
    assert await _websocket(ws, "http://attacker.example", **host) == 403  # another site's page
    assert await _websocket(ws, "null", **host) == 403  # a sandboxed or file: page
    assert await _websocket(ws, None, **host) == 403  # browsers always send one here
    assert await _websocket(ws, own, Host=f"attacker.example:{port}") == 421
    assert await _websocket(f"http://127.0.0.1:{port}/{TOKEN[:-1]}/ws", own, **host) == 404
    assert await _websocket(f"http://127.0.0.1:{port}/ws", own, **host) == 404


def test_each_browser_session_is_the_kiosk_whatever_the_servers_flags():
    command = shlex.split(demo_command("oom", 1.0))
    assert command[-1] == "--kiosk" and command[command.index("--speed") + 1] == "1"


def test_tokens_are_random_and_long():
    tokens = {make_server(QUICK_APP, 8000).token for _ in range(3)}
    assert len(tokens) == 3 and all(len(t) >= 32 for t in tokens)


async def test_demo_web_prints_its_token_url_and_answers_nowhere_else():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tui.cli", "demo", "--web", "--port", str(port), "--speed", "1"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(server.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        url = ""
        for _ in range(300):
            match = next((m for line in list(lines) if (m := re.search(r"http://localhost:\d+/[\w-]+/", line))), None)
            if match:
                url = match.group(0)
                break
            await asyncio.sleep(0.1)
        assert url.startswith(f"http://localhost:{port}/"), lines
        token = url.rstrip("/").rsplit("/", 1)[1]
        assert len(token) >= 32
        page = ""
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with aiohttp.ClientSession() as session, session.get(url) as answer:
                    assert answer.status == 200
                    page = await answer.text()
                    break
            await asyncio.sleep(0.1)
        assert "vast-loopback demo" in page
        assert await _status(f"http://localhost:{port}/") == 404
        assert await _status(url, Origin="http://attacker.example") == 403
        assert await _websocket(url + "ws", "http://attacker.example") == 403
        assert server.poll() is None
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        reader.join(timeout=5)


# --- the kiosk ------------------------------------------------------------------------------------


def test_the_kiosk_refuses_a_real_host_and_any_secret_reference():
    kiosk.check_answers(Answers.model_validate({"proxmox": {"url": "lab"}}))  # the lab with the OVA's defaults
    real = Answers.model_validate({"proxmox": {"url": "https://pve.example:8006", "token_id": "root@pam!vlb",
                                               "token_secret": "env:PVE_TOKEN"}})
    with pytest.raises(BadInput, match="built-in lab only"):
        kiosk.check_answers(real)
    with pytest.raises(BadInput, match="the guest is the lab's own"):
        kiosk.check_answers(Answers.model_validate({"proxmox": {"url": "lab"}, "guest": {"address": "192.168.1.10"}}))
    with pytest.raises(BadInput, match=r"not read here \(vast.ca_file\)"):
        kiosk.check_answers(Answers.model_validate({"proxmox": {"url": "lab"}, "vast": {"ca_file": "/etc/ssl/certs/ca-bundle.crt"}}))
    for section, field in (("guest", "password"), ("guest", "key"), ("vast", "admin_password"),
                           ("proxmox", "token_secret")):
        answers = Answers.model_validate({"proxmox": {"url": "lab"}})
        setattr(getattr(answers, section), field, SecretRef.parse("file:/etc/shadow"))
        with pytest.raises(BadInput, match=rf"secret references and files are not read here \({section}.{field}\)"):
            kiosk.check_answers(answers)


async def test_the_kiosk_openers_refuse_before_anything_is_opened():
    opener, opened = Opener(), []

    async def run_target(answers, options):  # noqa: ANN001, ANN202
        opened.append(answers)

    app = demo_app("success", 1.0, kiosk=True, probe_opener=opener, run_target_opener=run_target, blink=False)
    real = Answers.model_validate({"proxmox": {"url": "https://pve.example:8006", "token_id": "root@pam!vlb",
                                               "token_secret": "env:PVE_TOKEN"}})
    with pytest.raises(BadInput):
        await app.probe_opener(real)
    with pytest.raises(BadInput):
        await app.run_target_opener(real, None)
    referenced = Answers.model_validate({"proxmox": {"url": "lab"}, "vast": {"admin_password": "env:HOME"}})
    with pytest.raises(BadInput):
        await app.run_target_opener(referenced, None)
    assert opener.asked == [] and opened == []
    await app.probe_opener(Answers.model_validate({"proxmox": {"url": "lab"}}))  # the lab itself goes through
    assert len(opener.asked) == 1


async def test_in_the_kiosk_the_wizard_offers_the_lab_only_reads_no_reference_and_saves_nothing(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = demo_app("success", 1.0, kiosk=True, probe_opener=Opener(), blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.screen.query_one("#scheme-https", RadioButton).disabled
        await to_step(pilot, app, "storage_network")
        assert app.screen.query_one("#address", Input).disabled
        await pilot.press("f2")  # ^n is the browser's (tui/keys.py)
        await pilot.pause()
        for field_id in ("password", "key", "vms-password"):
            assert app.screen.query_one(f"#{field_id}", Input).disabled
        app.screen.query_one("#password", Input).value = "file:/etc/hostname"  # as if typed anyway
        await pilot.pause()
        assert str(app.screen.query_one("#refs-note", Static).render()) == ""  # not even looked for
        await pilot.press("f2")
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen" and app.state.answers.guest.password is None
        app.screen.query_one("#password", Input).value = ""
        await pilot.press("f2")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"
        assert app.screen.query_one("#save-path", Input).disabled
        await pilot.press("f6", "ctrl+s")  # neither writes a file here
        await pilot.pause()
    assert not list(tmp_path.iterdir())  # no answers file written on the server
