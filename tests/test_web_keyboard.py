"""The web demo driven from the keyboard alone, in a real browser (issue 17, item 9).

`vast-loopback demo --web` is served as a user serves it; Chromium (Debian's package, launched
through Playwright with the system executable) opens the printed URL, and the wizard is walked from
Connect to the live dashboard with keys only: Tab puts the focus in the terminal (the page's one
field), then the keys the footer offers there (F4 test, y trust, F2 next, F9 override, Esc
cancel, F8 recommend, F2 start, a abort, y confirm). Each screen is checked by what it shows: the
terminal's text is read from xterm.js's buffer (the page's script is handed to the browser with one
line added that keeps a reference to its terminal: textual-serve keeps it private).

What this cannot show: a browser's reserved shortcuts (^t, ^n, ^w) never reach a page, but keys
sent through the DevTools protocol skip the browser's shortcut handling, so that half is argued in
tui/keys.py, not measured here. Skipped with the reason where Chromium, Playwright or the lab guest
is missing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.security_support import require_lab_guest
from tests.tui_lab_helpers import end_guests

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPEED = "240"
LAB = "built-in lab (seed host: the field report's Threadripper)"
OPENED = "this.terminal.open(e)"  # where textual-serve's script opens its terminal
READ_SCREEN = """() => {
  const terminal = window.__vlbTerminal;
  if (!terminal) return "";
  const buffer = terminal.buffer.active, rows = [];
  for (let i = 0; i < terminal.rows; i++) { const line = buffer.getLine(i); rows.push(line ? line.translateToString(true) : ""); }
  return rows.join("\\n");
}"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("needs Chromium from Debian's packages (apt-get install chromium; .ci/run installs it)")
    return path


def playwright_api():  # noqa: ANN201
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("needs Playwright from PyPI (pip install playwright: in the test extras)")
    return async_playwright


class Served:
    """`vast-loopback demo --web` in a child process, its sessions' runs kept under `data`."""

    def __init__(self, data: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "demo", "--web", "--port", str(_free_port()), "--speed", SPEED,
             "--scenario", "overcommit"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "XDG_DATA_HOME": str(data)})
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")),
                         daemon=True).start()

    async def url(self) -> str:
        for _ in range(300):
            found = next((m.group(0) for line in list(self.lines)
                          if (m := re.search(r"http://localhost:\d+/[\w-]+/", line))), None)
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"demo --web printed no URL: {self.lines}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Screen:
    """The page's terminal, read as text."""

    def __init__(self, page) -> None:  # noqa: ANN001 - a Playwright Page
        self.page = page
        self.text = ""

    async def read(self) -> str:
        self.text = await self.page.evaluate(READ_SCREEN)
        return self.text

    async def shows(self, *wanted: str, timeout: float = 60.0) -> str:
        """Wait until the screen shows every text of `wanted`; the screen's text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = await self.read()
            if all(w in text for w in wanted):
                return text
            await asyncio.sleep(0.1)
        missing = [w for w in wanted if w not in self.text]
        raise AssertionError(f"the page never showed {missing}; it shows:\n{self.text}")

    async def press(self, key: str) -> None:
        await self.page.keyboard.press(key)

    def footer(self) -> str:
        """The last row: Textual's footer, the keys offered here."""
        return self.text.splitlines()[-1]


async def test_the_web_demo_goes_from_connect_to_the_dashboard_by_keyboard_alone(tmp_path):
    browser_path, async_playwright = chromium(), playwright_api()
    require_lab_guest()
    served = Served(tmp_path / "data")
    try:
        url = await served.url()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=browser_path,
                                                       args=["--no-sandbox"] if os.geteuid() == 0 else [])
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})

                async def keep_the_terminal(route) -> None:  # noqa: ANN001
                    answer = await route.fetch()
                    script = await answer.text()
                    assert OPENED in script, "textual-serve's script changed: see OPENED in this test"
                    await route.fulfill(response=answer, body=script.replace(
                        OPENED, OPENED + ",window.__vlbTerminal=this.terminal", 1))

                await page.route("**/static/js/textual.js", keep_the_terminal)
                await page.goto(url)
                await walk(Screen(page))
            finally:
                await browser.close()
    finally:
        served.stop()
        end_guests(tmp_path / "data")


async def walk(screen: Screen) -> None:
    # Connect: the browser's keys in the hint, the button and the footer; none of the terminal's
    text = await screen.shows("Connect to Proxmox VE", "F4 connects", "Test connection F4", "Next F2",
                              "f4 Test connection", "f2 Next")
    assert "f4 Test connection" in screen.footer() and "f10 Quit" in screen.footer(), screen.footer()
    assert not re.search(r"\^[tnroqs]\b", text), text
    await screen.press("Tab")  # the focus into the terminal: the page's one field
    await screen.press("F4")
    await screen.shows("Trust this certificate?", "Trust (y)")
    await screen.press("y")
    text = await screen.shows("connected: Next (F2) to choose the host")
    assert text.splitlines()[0].strip().startswith(LAB), text.splitlines()[0]  # the header names the target

    await screen.press("F2")
    await screen.shows("Choose the Proxmox node", "pve")
    await screen.press("F2")
    # Sizing, the overcommit preset: 24 vCPUs on 12 cores is a blocker; F9 offers the override, Esc
    # declines it, F8 applies the recommendation
    await screen.shows("Size the VM", "BLOCKER", "F8 recommends, F9 overrides", "f8 Recommend", "f9 Override")
    assert "f8 Recommend" in screen.footer() and "f9 Override" in screen.footer(), screen.footer()
    await screen.press("F9")
    await screen.shows("Override")
    await screen.press("Escape")
    await screen.shows("not overridden")
    await screen.press("F8")
    text = await screen.shows("vCPUs 12 ", "VM RAM GiB 120 ", "2 warnings")
    assert "BLOCKER" not in text, text
    await screen.press("F2")
    await screen.shows("Storage & network", "vmbr0")
    await screen.press("F2")
    await screen.shows("Guest & VAST")
    await screen.press("F2")
    await screen.shows("Review and start", "Start F2", "f2 Start")
    assert "f2 Start" in screen.footer() and "Save answers" not in screen.footer(), screen.footer()
    await screen.press("F2")
    # the dashboard: the run on the lab, its header naming the VM and the target
    await screen.shows("VM vast-loopback", "Connect to Proxmox", "a Abort", timeout=120)
    await screen.press("a")
    await screen.shows("Abort the run?")
    await screen.press("y")
    await screen.shows("ABORTED", timeout=120)
