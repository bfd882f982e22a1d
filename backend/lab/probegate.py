"""The lab's network runs on real time while something probes it.

The product's network probes (backend/jumpnet.py: ARP and the neighbour table) run in the lab's jump
host network (backend/lab/segment.py), where the timing is the real kernel's (facts.ARP_IS_THE_KERNELS):
a probe waits its real second or two for replies. Counted on the lab's compressed clock, that wait
would be many lab minutes (25 min a round at 600x) that no real network takes. So a probe enters the
jump host's network through this gate: the lab's clock is held at a real-time pace (one lab second
per wall second, backend/lab/worldclock.py) for as long as the probe runs.

`ProbeGate(clock).start()` listens on a Unix socket in a private directory; `prefix(inner)` is the
command prefix that runs a program through the gate: a small Python program (`GATE`, standard library
only) connects, waits for the lab's "held", then executes `inner` + the program with the connection
inherited. When the program ends (however: exit, kill, timeout) its end of the connection closes and
the lab releases the hold. A gate the lab cannot answer runs the program anyway, unheld.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import tempfile
import threading
from pathlib import Path

from backend.clock import Clock
from backend.lab.worldclock import hold, release

log = logging.getLogger("vlb.lab.probegate")

# The gate: argv[1] the socket, argv[2:] the command. Connects, waits for one byte, then becomes the
# command with the connection open (inheritable), so the lab sees its end.
GATE = """
import os, socket, sys
path, argv = sys.argv[1], sys.argv[2:]
try:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(path)
    conn.recv(1)
    os.set_inheritable(conn.fileno(), True)
except OSError:
    pass
os.execvp(argv[0], argv)
"""


class ProbeGate:
    """A Unix socket whose connections each hold `clock` at a real-time pace until they close."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._dir: Path | None = None
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        assert self._dir is not None, "the gate is not started"
        return self._dir / "probe.sock"

    def start(self) -> ProbeGate:
        self._dir = Path(tempfile.mkdtemp(prefix="vlb-gate-"))  # short (a socket path has 108 bytes), 0700
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(16)
        self._server = server
        self._thread = threading.Thread(target=self._serve, name="vlb-lab-probegate", daemon=True)
        self._thread.start()
        return self

    def prefix(self, inner: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The command prefix running a program through the gate, then `inner` (e.g. nsenter ...)."""
        return (sys.executable, "-I", "-S", "-c", GATE, str(self.path), *inner)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self._dir.rmdir()
            self._dir = None

    def _serve(self) -> None:
        while True:
            server = self._server
            if server is None:
                return
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._held, args=(conn,), name="vlb-lab-probe", daemon=True).start()

    def _held(self, conn: socket.socket) -> None:
        token = hold(self.clock, self.clock.now(), "a network probe (real time)", pace=1.0)
        try:
            conn.sendall(b"1")
            while conn.recv(4096):
                pass
        except OSError as exc:
            log.debug("probe gate: %s", exc)
        finally:
            release(self.clock, token)
            conn.close()

