"""An answer that is not what the AWS service answers is an error, never "nothing found".

A proxy or a wrong ``--endpoint-url`` can answer ``200`` with an HTML page or ``{}``: botocore parses
those into an empty result (a DynamoDB ``Query`` with no ``Items``, an IVS listing with no stages), and
``ban list`` would say "no bans in force". Every client the CLI makes checks each answer before and after
botocore parses it (``check_answers``):

- before: the body is in the service's protocol (a JSON object for DynamoDB and IVS, an XML document
  named after the operation, or an error document, for CloudFormation and STS);
- after: a successful answer holds every member the service's model marks as required, and the members
  DynamoDB always returns (``Count`` of a ``Query`` or ``Scan``).

A failed check raises ``NotTheServiceAnswer`` (a ``BotoCoreError``, so the adapters treat it like any other
transport failure) and the command ends with one line naming the endpoint (cli/errors.py).
"""

from __future__ import annotations

import json
from typing import Any, Final
from xml.etree import ElementTree

from botocore.exceptions import BotoCoreError

_JSON_PROTOCOLS: Final = frozenset({"json", "rest-json"})
_XML_PROTOCOLS: Final = frozenset({"query", "ec2"})
_XML_ERROR_ROOTS: Final = frozenset({"ErrorResponse", "Response", "Error"})
# Members DynamoDB returns in every successful answer of these operations, though its model does not
# mark them required.
_ALWAYS_RETURNED: Final = {("dynamodb", "Query"): ("Count",), ("dynamodb", "Scan"): ("Count",)}
_SAMPLE: Final = 60  # characters of a strange body shown in the error line


class NotTheServiceAnswer(BotoCoreError):
    fmt = (
        "the answer of {endpoint} to {service} {operation} is not {service}'s: {why} "
        "(hint: is the endpoint right? --endpoint-url, {variable}; a proxy in the way?)"
    )


def check_answers(client: Any) -> None:
    """Register the checks on ``client`` (each client once)."""
    service = client.meta.service_model
    service_id = service.service_id.hyphenize()
    sent: dict[str, str] = {"url": client.meta.endpoint_url}

    def remember(request: Any, **_: Any) -> None:
        sent["url"] = str(getattr(request, "url", "") or sent["url"]).split("?", 1)[0]

    def before_parse(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        why = _wrong_body(service.resolved_protocol, operation_model.name, response_dict)
        if why is not None:
            raise _refusal(service, operation_model.name, sent["url"], why)

    def after_call(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response is None or not 200 <= int(getattr(http_response, "status_code", 0) or 0) < 300:
            return
        shape = model.output_shape
        wanted = list(getattr(shape, "required_members", []) or []) if shape is not None else []
        wanted += _ALWAYS_RETURNED.get((service.service_name, model.name), ())
        missing = [name for name in wanted if name not in parsed]
        if missing:
            raise _refusal(service, model.name, sent["url"], f"no {', '.join(missing)} in a successful answer")

    client.meta.events.register(f"request-created.{service_id}", remember)
    client.meta.events.register(f"before-parse.{service_id}", before_parse)
    client.meta.events.register(f"after-call.{service_id}", after_call)


def _wrong_body(protocol: str, operation: str, response: dict[str, Any]) -> str | None:
    """Why this body is not an answer of the protocol (None: it is)."""
    body = response.get("body") or b""
    if not isinstance(body, bytes | bytearray):
        return None  # a streaming body: nothing the CLI reads
    status = int(response.get("status_code") or 0)
    text = bytes(body).strip()
    if protocol in _JSON_PROTOCOLS:
        if not text:
            return None if status < 300 or protocol == "rest-json" else "an empty error answer"
        try:
            value = json.loads(text)
        except ValueError:
            return f"not JSON ({_sample(text)})"
        return None if isinstance(value, dict) else f"JSON but not an object ({_sample(text)})"
    if protocol in _XML_PROTOCOLS:
        if status >= 500 and not text:
            return None
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            return f"not XML ({_sample(text)})"
        name = root.tag.rsplit("}", 1)[-1]
        expected = {f"{operation}Response"} if status < 300 else _XML_ERROR_ROOTS
        return None if name in expected else f"an XML <{name}> document"
    return None


def _refusal(service: Any, operation: str, url: str, why: str) -> NotTheServiceAnswer:
    from stagepilot.cli.resources import endpoint_variable

    return NotTheServiceAnswer(
        endpoint=url or "the endpoint",
        service=service.service_id,
        operation=operation,
        why=why,
        variable=endpoint_variable(service.service_name),
    )


def _sample(body: bytes) -> str:
    text = body[: _SAMPLE * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    return repr(text[:_SAMPLE] + ("..." if len(text) > _SAMPLE else ""))
