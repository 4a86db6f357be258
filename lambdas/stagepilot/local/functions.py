"""Lambda's Invoke API on loopback, for the stack's convergence function: what ``stagepilot reconcile``,
``policy put|rollback`` and ``resume`` invoke (convergence_request.py), answered in this process by the
function's own code, so the CLI in another shell (the sandbox, the CLI tests) takes the deployed path
through ``AWS_ENDPOINT_URL_LAMBDA``.

As deployed: ``POST /2015-03-31/functions/<name>/invocations`` with the payload as the body; the function
has reserved concurrency 1, so an invoke while one runs is refused ``429 TooManyRequestsException``
(as Lambda throttles); an unknown function is ``404 ResourceNotFoundException``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from stagepilot.local.ivs_server import LoopbackEndpoint
from stagepilot.pipeline import Services

Function = Callable[[Any], Any]
_PREFIX = "/2015-03-31/functions/"


def convergence_function(services: Services | Callable[[], Services]) -> Function:
    """The convergence function's handler logic on ``services`` (or a factory of them): an operator's
    request answered with its pass's report; anything else runs a scheduled pass."""
    from stagepilot.automations import convergence_order
    from stagepilot.convergence import run_pass
    from stagepilot.convergence_request import answer, report_json

    automations = convergence_order()

    def invoke(payload: Any) -> Any:
        held = services() if callable(services) else services
        answered = answer(payload, held, automations)
        return answered if answered is not None else report_json(run_pass(held, automations))

    return invoke


class FunctionEndpoint(LoopbackEndpoint):
    """``with FunctionEndpoint({"name": function}) as url:`` serves Lambda's Invoke for those functions."""

    def __init__(self, functions: Mapping[str, Function], *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_handler_for(dict(functions)), name="lambda-invoke", host=host, port=port)


def _handler_for(functions: dict[str, Function]) -> type[BaseHTTPRequestHandler]:
    running = {name: threading.Lock() for name in functions}  # reserved concurrency 1 each

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            name = unquote(path.removeprefix(_PREFIX).removesuffix("/invocations")).rsplit(":function:", 1)[-1]
            if not path.startswith(_PREFIX) or name not in functions:
                self._error(404, "ResourceNotFoundException", f"Function not found: {name}")
                return
            if not running[name].acquire(blocking=False):
                self._error(429, "TooManyRequestsException", "Rate Exceeded.")
                return
            try:
                try:
                    result = functions[name](json.loads(body or b"{}"))
                    self._answer(200, json.dumps(result).encode(), {})
                except Exception as exc:  # as Lambda: an unhandled error is a 200 with X-Amz-Function-Error
                    error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                    self._answer(200, json.dumps(error).encode(), {"X-Amz-Function-Error": "Unhandled"})
            finally:
                running[name].release()

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"Type": "User", "message": message}).encode()
            self._answer(status, body, {"x-amzn-ErrorType": code})

        def _answer(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Amz-Executed-Version", "$LATEST")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
