"""The IVS stand-in behind a real HTTP endpoint on loopback, so a separate process (the ``stagepilot``
CLI in an operator-like shell) reaches it through ``AWS_ENDPOINT_URL_IVS_REALTIME``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

from stagepilot.local.ivs import IvsStandIn

POLL_SECONDS = 0.05  # how soon a shutdown is seen (the default 0.5 s is paid at every stop)


class LoopbackEndpoint:
    """``with Endpoint(...) as url:`` serves ``handler`` at ``url`` (a thread) until the block ends."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str, host: str, port: int) -> None:
        self._serve(ThreadingHTTPServer((host, port), handler), name)

    def _serve(self, server: HTTPServer, name: str) -> None:
        """``server`` (bound: a port in use is an OSError now, not a thread that never serves) is served from
        ``__enter__`` to ``__exit__``."""
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *_: Any) -> None:
        shut_down_together(self._server)

    @staticmethod
    def stop_together(*endpoints: LoopbackEndpoint) -> None:
        """``__exit__`` of every endpoint, at once (``shut_down_together``)."""
        shut_down_together(*(endpoint._server for endpoint in endpoints))


def shut_down_together(*servers: HTTPServer) -> None:
    """Stops and closes every server at once: one poll interval in all (``shutdown`` waits for its server's
    next poll), not one each."""
    stopping = [threading.Thread(target=server.shutdown, name="shutdown") for server in servers]
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()
    for server in servers:
        server.server_close()


class IvsEndpoint(LoopbackEndpoint):
    """``with IvsEndpoint(stand_in) as url:`` serves the stand-in at ``url`` until the block ends."""

    def __init__(self, stand_in: IvsStandIn, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_handler_for(stand_in), name="ivs-stand-in", host=host, port=port)


def _handler_for(stand_in: IvsStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if stand_in.call_delay is not None:
                stand_in.call_delay()  # the request's way there, as through the boto3 hook (local/ivs.py)
            status, headers, body = stand_in.handle_http(self.path, self.rfile.read(length))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
