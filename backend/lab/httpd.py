"""The lab's HTTPS servers (its Proxmox API and each guest's VMS) share one server class: threads per
connection, TLS wrapped per accepted socket (a failed handshake only drops that connection), no
Nagle delay between an answer's header and body, and no tracebacks on stderr."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from http.server import ThreadingHTTPServer

log = logging.getLogger(__name__)


class TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    label = "HTTPS"  # named in the debug log of connection errors

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext, *,
                 bind_and_activate: bool = True) -> None:
        self.tls_context = context
        super().__init__(address, handler, bind_and_activate=bind_and_activate)

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        request.settimeout(30)
        with contextlib.suppress(OSError):  # answers are small: no Nagle delay between header and body
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        self.RequestHandlerClass(tls, client_address, self)

    def handle_error(self, request: object, client_address: tuple) -> None:
        log.debug("%s connection error from %s", self.label, client_address, exc_info=True)
