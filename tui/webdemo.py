"""`demo --web`: the demo served to a browser (textual-serve), for whoever holds the printed URL.

Every page and the websocket that drives the wizard live under a random token
(`http://localhost:PORT/<token>/`, printed at start): any other path is 404, compared in constant
time before routing. The Host header must name this server on the loopback (`localhost`,
`127.0.0.1` or `[::1]` with its port), so a page on another site cannot reach it through DNS
rebinding; an Origin header, when sent, must be this server's own origin, and the websocket requires
one (browsers always send it there), so a page on another site cannot open the session in a
visitor's browser. Each visitor's session is the demo in kiosk mode (`tui/kiosk.py`): the lab
only, no secret read, whatever the server's flags.
"""

from __future__ import annotations

import hmac
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable

from backend.errors import VlbError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
TITLE = "vast-loopback demo"


def demo_command(scenario: str, speed: float) -> str:
    """The command each browser session runs: the demo, always in kiosk mode."""
    return shlex.join([sys.executable, "-m", "tui.cli", "demo", "--scenario", scenario, "--speed", f"{speed:g}",
                       "--kiosk"])


def make_server(command: str, port: int, token: str | None = None):  # noqa: ANN201 - a textual_serve Server
    """A textual-serve server for `command`, guarded by a token, Host and Origin checks."""
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:
        raise VlbError("--web needs textual-serve", hint="pip install 'vast-loopback[web]'") from None

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

    class GuardedServer(Server):
        """textual-serve with every route under the token, behind the Host and Origin checks."""

        def __init__(self) -> None:
            super().__init__(command, host="localhost", port=port, title=TITLE)
            self.token = token or secrets.token_urlsafe(24)

        @property
        def url(self) -> str:
            return f"{self.public_url}/{self.token}/"

        def allowed_hosts(self) -> set[str]:
            return {f"{name}:{self.port}" for name in LOOPBACK_NAMES}

        def allowed_origins(self) -> set[str]:
            return {f"http://{host}" for host in self.allowed_hosts()}

        async def _make_app(self) -> web.Application:
            app = web.Application(middlewares=[self._guard])
            import aiohttp_jinja2
            import jinja2

            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
            prefix = f"/{self.token}"
            app.add_routes([
                web.get(f"{prefix}/", self.handle_index, name="index"),
                web.get(f"{prefix}/ws", self.handle_websocket, name="websocket"),
                web.get(prefix + "/download/{key}", self.handle_download, name="download"),
                web.static(f"{prefix}/static", self.statics_path, name="static"),
            ])
            app.on_startup.append(self.on_startup)
            app.on_shutdown.append(self.on_shutdown)
            return app

        @web.middleware
        async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.headers.get("Host", "") not in self.allowed_hosts():
                raise web.HTTPMisdirectedRequest(text="this server answers on the loopback only\n")
            first = request.path.lstrip("/").split("/", 1)[0]
            if not hmac.compare_digest(first.encode(), self.token.encode()):
                raise web.HTTPNotFound()
            origin = request.headers.get("Origin")
            websocket = request.headers.get("Upgrade", "").lower() == "websocket"
            if (origin is None and websocket) or (origin is not None and origin not in self.allowed_origins()):
                raise web.HTTPForbidden(text="cross-origin requests are refused\n")
            return await handler(request)

        async def on_startup(self, app: web.Application) -> None:
            return None  # `serve` prints the URL (with its token) once, itself

    return GuardedServer()


def serve(scenario: str, speed: float, port: int) -> int:
    """Serve the demo until Ctrl+C; the URL with its token is printed first."""
    server = make_server(demo_command(scenario, speed), port)
    print(f"serving the demo on {server.url} (Ctrl+C to stop); only this URL opens it", flush=True)
    server.serve()
    return 0
