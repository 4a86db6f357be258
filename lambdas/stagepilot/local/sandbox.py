"""A whole StagePilot on loopback, to try the operator commands without AWS (``stagepilot sandbox``).

moto server stands in for DynamoDB, SQS, CloudFormation, CloudWatch and STS; the IVS stand-in is served
over HTTP; a StagePilot "stack" exists in moto's CloudFormation with the outputs the CLI reads (table,
queues, dead-letter queues). Events played into the sandbox are routed by the stack's own rules onto the
SQS queues, and one worker per automation consumes its queue with the functions' code
(``pipeline.handle_record``): a record that fails is received again and, after the stack's
``maxReceiveCount``, moved to the dead-letter queue by SQS, as deployed. IVS's own events (composition
lifecycle) are routed the same way, and the convergence pass runs every minute, as deployed.

The door (docs/door.md) is served on loopback as the token function's Function URL (output ``TokenUrl``):
the token function's own request handling, on a signing key made at start, as ``keys rotate`` makes one.

The CLI in another shell reaches it through the environment ``Sandbox.environment`` lists; ``stagepilot
sandbox play FILE`` sends a scenario (``simulate``'s JSON Lines: events and every directive, local/directives.py,
the same code ``simulate`` runs) to the sandbox's control endpoint. With a fixed ``port`` the endpoints are
``port`` (moto), ``port + 1`` (IVS), ``port + 2`` (control), ``port + 3`` (the door) and ``port + 4``
(Lambda's Invoke), so a shell's exports stay valid across restarts. Needs moto (a development
dependency), no AWS account, no Docker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import boto3

from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, IvsStage
from stagepilot.adapters.table import Table
from stagepilot.config import Settings
from stagepilot.decisions.composition_hours import CompositionHoursPerDay
from stagepilot.local.ivs_server import POLL_SECONDS, LoopbackEndpoint, shut_down_together
from stagepilot.outputs import (
    OUTPUT_ALARM_TOPIC_ARN,
    OUTPUT_CONVERGENCE_FUNCTION_NAME,
    OUTPUT_FLAG_BUS_NAME,
    OUTPUT_REDRIVE_ROLE_ARN,
    OUTPUT_TABLE_NAME,
    OUTPUT_TOKEN_URL,
    output_dlq_url,
    output_queue_url,
)
from stagepilot.pipeline import Automation, Services, handle_record
from stagepilot.policy import StagePolicy
from stagepilot.routing import AUTOMATIONS, DEFAULT_MODERATION_SOURCES, build_routes

ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
STACK: Final = "StagePilot"
TABLE: Final = "StagePilot-Table"
CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
VISIBILITY_SECONDS: Final = 2  # a failed record comes back quickly (the stack: 360 s)
ERROR_ATTRIBUTE: Final = "stagepilot-error"  # handlers/wiring.py
SETTLE_POLL_SECONDS: Final = 0.02  # how often `play` looks whether the automations are done
DEFAULT_PORT: Final = 4510  # `stagepilot sandbox --port`: moto here, IVS, control, the door and Lambda next
logger = logging.getLogger(__name__)


class Sandbox:
    """``with Sandbox() as sandbox:`` runs everything until the block ends; ``sandbox.environment``."""

    services: Services  # the functions' (a local/directives.py World, as LocalDeployment is)

    def __init__(
        self,
        *,
        stack: str = STACK,
        host: str = "127.0.0.1",
        port: int = 0,
        reconcile_seconds: float = 60,
        visibility_seconds: int = VISIBILITY_SECONDS,
        composition_hours: CompositionHoursPerDay | None = None,
    ) -> None:
        """``port``: moto's, and IVS, control, the door and Lambda on the next four (0: any free ports).
        ``visibility_seconds``: how long a failed record stays hidden before its next receive (0: at once; a
        record that fails every time reaches its dead-letter queue after its five receives).
        ``composition_hours``: the stack context ``compositionHoursPerDay`` (docs/policy.md), as every
        function takes it when deployed, with its ``CompositionBudgetAlarm``; None: no budget."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

        from stagepilot.local.ivs import IvsStandIn
        from stagepilot.local.ivs_server import IvsEndpoint

        self.stack = stack
        self.reconcile_seconds = reconcile_seconds
        self.visibility_seconds = visibility_seconds
        self.composition_hours = composition_hours
        self._host = host
        ports = [port + offset if port else 0 for offset in range(5)]
        self._ports = ports
        self._moto = MotoEndpoint(host=host, port=ports[0])
        self.ivs = IvsStandIn(account=ACCOUNT, region=REGION, on_event=self._ivs_emitted)
        self._ivs_endpoint = IvsEndpoint(self.ivs, host=host, port=ports[1])
        self._control = ThreadingHTTPServer((host, ports[2]), _control_handler(self))
        self._door_server = ThreadingHTTPServer((host, ports[3]), _door_handler(self))
        self.clock = _wall_clock
        self._emitted_losses: list[Any] = []  # deployment._EmittedLoss: lose-emitted
        self._play_lock = threading.Lock()  # one scenario at a time
        self._routed = 0  # deliveries to automations of the scenario being played
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.queues: dict[str, tuple[str, str]] = {}
        self.moto_url = ""
        self.ivs_url = ""
        self._session: Any = None
        self._sqs: Any = None
        self._routes: list[tuple[str, Any]] = []
        self._flag_inbox = ""
        self._functions: Any = None  # Lambda's Invoke for the convergence function (local/functions.py)
        self.functions_url = ""

    # lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.moto_url = self._moto.__enter__()
        self.ivs_url = self._ivs_endpoint.__enter__()
        self._session = boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._deploy()
        self.functions_url = self._functions.__enter__()
        self._start(lambda: self._control.serve_forever(POLL_SECONDS), "sandbox-control")
        self._start(lambda: self._door_server.serve_forever(POLL_SECONDS), "sandbox-door")
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._wake_pollers()
        shut_down_together(self._control, self._door_server)
        for thread in self._threads:
            thread.join(timeout=5)
        # what the workers called, once they are done: the functions' Invoke, IVS and moto
        functions = [self._functions] if self.functions_url else []
        LoopbackEndpoint.stop_together(*functions, self._ivs_endpoint, self._moto)

    def _wake_pollers(self) -> None:
        """Each worker's and the flag forwarder's long poll returns now, not at its end (a second): a message
        on each queue, which they leave alone once the sandbox stops."""
        if not self.queues:
            return  # stopped before its stack was made
        for queue_url in [*(queue for queue, _ in self.queues.values()), self._flag_inbox]:
            try:
                self._sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
            except Exception:  # moto gone: a poller not woken ends its poll within a second
                continue

    @property
    def control_url(self) -> str:
        host, port = self._control.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def door_url(self) -> str:
        host, port = self._door_server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def environment(self) -> dict[str, str]:
        """What a shell needs to point the CLI (and the AWS CLI) at the sandbox."""
        return {
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_IVS_REALTIME": self.ivs_url,
            "AWS_ENDPOINT_URL_LAMBDA": self.functions_url,  # reconcile, policy put, resume invoke the function
            "STAGEPILOT_STACK": self.stack,
            "STAGEPILOT_SANDBOX_URL": self.control_url,
        }

    def store(self, policies: list[StagePolicy], bans: list[dict[str, str]]) -> None:
        """Policies and bans to start with (``--policies``/``--bans``), as the CLI would put them."""
        from stagepilot.adapters.table import BanStore, PolicyStore

        table = Table(self.client("dynamodb"), TABLE)
        for policy in policies:
            PolicyStore(table).put(policy)
        for ban in bans:
            BanStore(table).add(
                ban["userId"],
                reason=ban.get("reason", ""),
                stage_arn=ban.get("stageArn"),
                scope=ban.get("scope", "join"),
            )
        self._create_policy_stages()

    def client(self, service: str, **kwargs: Any) -> Any:
        url = self.ivs_url if service == "ivs-realtime" else self.moto_url
        return self._session.client(service, endpoint_url=url, **kwargs)

    # the stack ---------------------------------------------------------------------------------------
    def _deploy(self) -> None:
        from urllib import request

        from stagepilot.local.deployment import MAX_RECEIVES, create_table

        # moto keeps its state per process: start from nothing, whatever ran here before.
        request.urlopen(request.Request(f"{self.moto_url}/moto-api/reset", method="POST"), timeout=10).close()

        create_table(self.client("dynamodb"), TABLE)
        sqs = self._sqs = self.client("sqs")  # routes every event (a client a call costs more than the call)
        outputs: dict[str, Any] = {OUTPUT_TABLE_NAME: {"Value": TABLE}}
        for automation in AUTOMATIONS:
            name = f"{self.stack}-{automation}"
            dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            queue_url = sqs.create_queue(
                QueueName=name,
                Attributes={
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}),
                    "VisibilityTimeout": str(self.visibility_seconds),
                },
            )["QueueUrl"]
            self.queues[automation] = (queue_url, dlq_url)
            outputs[output_queue_url(automation)] = {"Value": queue_url}
            outputs[output_dlq_url(automation)] = {"Value": dlq_url}
        outputs[OUTPUT_FLAG_BUS_NAME] = {"Value": self._flag_bus(sqs)}
        # `status` shows the alarms that notify the stack's own topic (AlarmTopicArn), as deployed.
        topic = self.client("sns").create_topic(Name=f"{self.stack}-AlarmTopic")["TopicArn"]
        outputs[OUTPUT_ALARM_TOPIC_ARN] = {"Value": topic}
        outputs[OUTPUT_TOKEN_URL] = {"Value": self.door_url}
        outputs[OUTPUT_CONVERGENCE_FUNCTION_NAME] = {"Value": f"{self.stack}-ConvergenceFunction"}
        # `dlq redrive` assumes the redrive role (the stack's redrivePrincipals), as deployed
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
        role = self.client("iam").create_role(
            RoleName=f"{self.stack}-Redrive", AssumeRolePolicyDocument=json.dumps(trust)
        )
        outputs[OUTPUT_REDRIVE_ROLE_ARN] = {"Value": role["Role"]["Arn"]}
        template = {"Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
        self.client("cloudformation").create_stack(StackName=self.stack, TemplateBody=json.dumps(template))

        from moto.events.models import EventPattern

        routes = build_routes(account=ACCOUNT, region=REGION, moderation_sources=list(DEFAULT_MODERATION_SOURCES))
        self._routes = [(route.automation, EventPattern.load(json.dumps(route.pattern))) for route in routes]
        from stagepilot.local.alarms import AlarmEvaluator, MetricStore, WindowedMetrics, stack_alarms
        from stagepilot.local.deployment import default_automations

        table = Table(self.client("dynamodb"), TABLE)
        self.metric_store = MetricStore()  # every function's counts, with their times, for the alarms
        self.metrics = WindowedMetrics("door", self.metric_store)
        services = Services(
            settings=Settings(table_name=TABLE, composition_hours=self.composition_hours),
            table=table,
            # the functions' client: no retry left to botocore (adapters/ivs.py), as deployed
            ivs=IvsStage(self.client("ivs-realtime", config=FUNCTION_CLIENT_CONFIG)),
            metrics=self.metrics,
        )
        self.services = services
        self.door = self._open_door(table)
        for handler in default_automations():
            own = dataclasses.replace(services, metrics=WindowedMetrics(handler.name, self.metric_store))
            worker = threading.Thread(
                target=self._work, args=(handler, own), name=f"sandbox-{handler.name}", daemon=True
            )
            worker.start()
            self._threads.append(worker)
        converging = dataclasses.replace(services, metrics=WindowedMetrics("convergence", self.metric_store))
        self.converge_once(converging)  # before anyone looks, as a deployed stack's schedule has run
        self._start(lambda: self._loop_passes(converging), "sandbox-convergence")
        from stagepilot.local.functions import FunctionEndpoint, convergence_function

        # What `reconcile`, `policy put|rollback` and `resume` invoke, as deployed: the function's own code.
        self._functions = FunctionEndpoint(
            {f"{self.stack}-ConvergenceFunction": convergence_function(converging)},
            host=self._host,
            port=self._ports[4],
        )
        self.alarms = AlarmEvaluator(
            stack_alarms(self.stack, composition_budget=self.composition_hours is not None),
            self.metric_store,
            self._moto_queues,
            self.client("cloudwatch"),
            topic,
        )
        self._start(self._evaluate_alarms, "sandbox-alarms")
        self._start(self._forward_flags, "sandbox-flags")

    def _open_door(self, table: Table) -> Any:
        """The token function's container (door/wiring.py) on the sandbox's clients, with a signing key made
        and imported now, as ``stagepilot keys rotate`` makes one."""
        from stagepilot.door.keys import SigningKeys
        from stagepilot.door.wiring import build_door
        from stagepilot.policy import TOKEN_DURATION_RANGE

        SigningKeys(table, ivs=IvsStage(self.client("ivs-realtime")), kms=self.client("kms"), name=self.stack).rotate(
            longest_token_minutes=TOKEN_DURATION_RANGE[1]
        )
        return build_door(self.metrics, environ={"STAGEPILOT_TABLE": TABLE}, client=self.client)

    def _moto_queues(self, automation: str) -> tuple[Any, Any]:
        """moto's own queue and dead-letter queue of an automation, read in-process (local/alarms.py)."""
        from moto.sqs.models import sqs_backends

        queues = sqs_backends[ACCOUNT][REGION].queues
        name = f"{self.stack}-{automation}"
        return queues[name], queues[f"{name}-dlq"]

    def _evaluate_alarms(self) -> None:
        from stagepilot.local.alarms import EVALUATION_SECONDS

        while not self._stop.wait(EVALUATION_SECONDS):
            try:
                self.alarms.evaluate()
            except Exception:  # moto stopping, or a transient error: the next evaluation tries again
                if self._stop.is_set():
                    return
                logger.exception("alarm evaluation failed")

    def _flag_bus(self, sqs: Any) -> str:
        """The stack's flag bus: what `stagepilot flag` puts there reaches the automations like any event
        (moto's rule delivers it to an inbox queue; a worker routes it by the stack's rules)."""
        events = self.client("events")
        bus = f"{self.stack}-flags"
        events.create_event_bus(Name=bus)
        inbox = sqs.create_queue(QueueName=f"{self.stack}-flag-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"{bus}-all", EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": ""}]}))
        events.put_targets(Rule=f"{bus}-all", EventBusName=bus, Targets=[{"Id": "inbox", "Arn": inbox_arn}])
        self._flag_inbox = inbox
        return bus

    def _forward_flags(self) -> None:
        sqs = self.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=self._flag_inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception:  # moto stopping
                if self._stop.is_set():
                    return
                raise
            if self._stop.is_set():
                return  # woken to stop (_wake_pollers)
            for message in messages.get("Messages", []):
                event = json.loads(message["Body"])
                event.setdefault("account", ACCOUNT)  # moto leaves it out of what it delivers
                self.route(event)
                sqs.delete_message(QueueUrl=self._flag_inbox, ReceiptHandle=message["ReceiptHandle"])

    def _start(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # events ------------------------------------------------------------------------------------------
    def play(self, text: str, *, settle_seconds: float = 30) -> dict[str, Any]:
        """A scenario's lines, in order, as if they happened now (times are shifted so the last line is now):
        events and every directive, as ``simulate`` runs them (local/directives.py). Each line waits until
        the automations have handled what the previous ones caused (at most ``settle_seconds`` in all)."""
        from stagepilot.local.directives import act
        from stagepilot.local.door import LocalDoor
        from stagepilot.local.simulate import read_scenario

        scenario = read_scenario(text)
        deadline = time.monotonic() + settle_seconds
        times = [t for t in (_time(_line_time(line.data)) for line in scenario.lines) if t is not None]
        shift = datetime.now(UTC) - max(times) if times else None  # the last line happened just now
        played: dict[str, Any] = {"events": 0, "directives": 0, "routed": 0, "skipped": list(scenario.errors)}
        notices: list[list[Any]] = []
        decisions: list[dict[str, Any]] = []

        def notify(kind: str, payload: Any) -> None:
            if kind == "door":
                notices.append([kind, payload])
            elif kind == "join":
                data, joined = payload
                notices.append([kind, [data, dataclasses.asdict(joined)]])
            elif kind == "lost":
                notices.append([kind, [payload[0], payload[1]]])

        with self._play_lock:
            self._create_policy_stages()
            door = LocalDoor(self, issuer=self.door.issuer)
            self._routed = 0
            for line in scenario.lines:
                data = _shifted_line(line.data, shift) if shift is not None else line.data
                act(self, door, dataclasses.replace(line, data=data), notify, decisions)
                played["events" if line.kind == "event" else "directives"] += 1
                self.wait_until_handled(max(deadline - time.monotonic(), 0))
            played["routed"] = self._routed
        played["notices"] = notices
        played["settled"] = self.wait_until_handled(max(deadline - time.monotonic(), 0))
        self.alarms.evaluate()  # what the scenario caused shows in the alarms' states at once
        return played

    def put_event(
        self, event: Mapping[str, Any], *, observe: bool = True, deliver: bool = True, delay_seconds: float = 0
    ) -> list[str]:
        """An event happens now (local/directives.py): IVS follows it, and EventBridge delivers it to the
        automations' queues (never, with ``deliver=False``; ``delay_seconds`` late)."""
        if observe and event.get("source") == "aws.ivs":
            self.ivs.observe(dict(event))
        if not deliver:
            return []
        targets = [automation for automation, pattern in self._routes if pattern.matches_event(dict(event))]
        self._routed += len(targets)
        if delay_seconds > 0:
            timer = threading.Timer(delay_seconds, self.route, args=(dict(event),))
            timer.daemon = True
            timer.start()
            return targets
        return self.route(event)

    def lose_emitted(self, event_name: str, count: int = 1, *, stage_arn: str | None = None) -> None:
        """The next ``count`` events IVS itself emits named ``event_name`` (on ``stage_arn``) are never delivered."""
        from stagepilot.local.deployment import _EmittedLoss

        self._emitted_losses.append(_EmittedLoss(event_name, count, stage_arn))

    def _create_policy_stages(self) -> None:
        """The stages the stored policies name exist in the sandbox's IVS (replication needs its
        destinations to exist, as IVS does)."""
        from stagepilot.adapters.table import PolicyStore
        from stagepilot.policy import DEFAULT_STAGE

        for stored in PolicyStore(Table(self.client("dynamodb"), TABLE)).list():
            document = stored.document
            rules: list[Any] = document["replication"] if isinstance(document.get("replication"), list) else []
            named = [document.get("stageArn"), *(r.get("destinationStageArn") for r in rules if isinstance(r, dict))]
            for arn in named:
                if isinstance(arn, str) and arn != DEFAULT_STAGE:
                    self.ivs.create_stage(arn)

    def wait_until_handled(self, seconds: float) -> bool:
        """Until every queue is empty (handled, or moved to its dead-letter queue); False on timeout. moto's
        queues are read in-process, as the alarms read them (a read costs microseconds, not six requests)."""
        deadline = time.monotonic() + seconds
        while any(self._waiting(automation) for automation in self.queues):
            if time.monotonic() >= deadline:
                return False
            time.sleep(SETTLE_POLL_SECONDS)
        return True

    def _waiting(self, automation: str) -> int:
        """What SQS counts as the queue's messages, visible (ApproximateNumberOfMessages) or in flight
        (ApproximateNumberOfMessagesNotVisible)."""
        queue, _ = self._moto_queues(automation)
        return sum(1 for message in list(queue._messages) if not message.visible or not message.delayed)

    def route(self, event: Mapping[str, Any]) -> list[str]:
        """Put the event on the queue of every automation whose rule matches it."""
        targets = [automation for automation, pattern in self._routes if pattern.matches_event(dict(event))]
        for automation in targets:
            self._sqs.send_message(QueueUrl=self.queues[automation][0], MessageBody=json.dumps(event))
        return targets

    def _ivs_emitted(self, event: dict[str, Any]) -> None:
        if any(loss.takes(event) for loss in self._emitted_losses):
            return
        if self._routes:
            self.route(event)

    def _work(self, automation: Automation, services: Services) -> None:
        """The function: receive a batch, handle each record, delete what succeeded."""
        sqs = self.client("sqs")
        queue_url, dlq_url = self.queues[automation.name]
        redelivery = _Redelivery(sqs, queue_url, dlq_url)
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                ).get("Messages", [])
            except Exception:  # moto stopping
                if self._stop.is_set():
                    return
                raise
            if self._stop.is_set():
                return  # woken to stop (_wake_pollers)
            for message in messages:
                record = {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                }
                try:
                    handle_record(record, automation, services, redelivery)
                except Exception:  # handle_record logged it; SQS redelivers, then moves it to the DLQ
                    continue
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _loop_passes(self, services: Services) -> None:
        """The scheduled convergence pass, every ``reconcile_seconds`` (the stack's default period)."""
        while not self._stop.wait(self.reconcile_seconds):
            self.converge_once(services)

    def converge_once(self, services: Services | None = None) -> None:
        """One scheduled convergence pass now."""
        from stagepilot.automations import convergence_order
        from stagepilot.convergence import run_pass

        try:
            run_pass(services or self.services, convergence_order())
        except Exception:  # as the scheduled function: this pass failed (a function error), the next one runs
            logger.exception("convergence pass failed")
            self.metric_store.add("convergence", "Errors", 1)


class MotoEndpoint(LoopbackEndpoint):
    """``with MotoEndpoint() as url:`` serves moto's server (its whole app, as ``moto.server.ThreadedMotoServer``
    serves it) at ``url``. Its port is taken here, an OSError if in use (``ThreadedMotoServer`` binds in its
    thread, where werkzeug's ``sys.exit`` ends the thread and ``start`` waits for ever); it stops in
    ``POLL_SECONDS`` (``ThreadedMotoServer`` in werkzeug's 0.5 s)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        with socket.socket() as listening:  # bound as the other endpoints' (HTTPServer); werkzeug serves a copy
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind((host, port))
            listening.listen()
            server = make_server(
                host, port, app, threaded=True, request_handler=MotoRequestHandler, fd=listening.fileno()
            )
        self._serve(server, "moto")


class _Redelivery:
    def __init__(self, sqs: Any, queue_url: str, dlq_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._dlq_url = dlq_url

    def park(self, record: Mapping[str, Any], reason: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=str(record.get("body") or "(empty)"),
            MessageAttributes={ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1000]}},
        )

    def retry_after(self, record: Mapping[str, Any], seconds: float) -> None:
        return None  # the sandbox's short visibility timeout brings it back


def _control_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode("utf-8", "replace")
            url = urlsplit(self.path)
            if url.path != "/play":
                self._answer(404, {"error": f"unknown path {url.path}"})
                return
            try:
                settle = float(parse_qs(url.query).get("settle", ["30"])[0])
                self._answer(200, sandbox.play(text, settle_seconds=min(max(settle, 0.0), 600.0)))
            except Exception as exc:  # the operator sees it on the play side, as one line
                logger.exception("play failed")
                self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            _send_json(self, status, json.dumps(body))

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _door_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    """The token function's Function URL (``AWS_IAM`` auth): a request without a SigV4 signature is refused
    as Lambda refuses it (403 ``Forbidden``); the signature itself is not verified (moto's credentials are
    anyone's)."""
    from stagepilot.door.function_url import answer_request

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
            if not (self.headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256 "):
                answer = {"statusCode": 403, "body": json.dumps({"Message": "Forbidden"})}
            else:
                event = {"requestContext": {"http": {"method": method}}, "body": body, "isBase64Encoded": False}
                answer = answer_request(sandbox.door, event, logger)
            _send_json(self, int(str(answer["statusCode"])), str(answer["body"]))

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _send_json(handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _line_time(data: Mapping[str, Any]) -> object:
    """When a line happens: its ``time`` (a lost or late event's own)."""
    event = data.get("event")
    return event.get("time") if isinstance(event, dict) else data.get("time")


def _shifted_line(data: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    moved = _shifted(data, shift)
    if isinstance(moved.get("event"), dict):
        moved["event"] = _shifted(moved["event"], shift)
    return moved


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shifted(event: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    """The event moved in time: its envelope ``time`` and ``detail.event_time``."""
    moved = dict(event)
    when = _time(moved.get("time"))
    if when is not None:
        moved["time"] = _iso(when + shift)
    detail = moved.get("detail")
    happened = _time(detail.get("event_time")) if isinstance(detail, dict) else None
    if isinstance(detail, dict) and happened is not None:
        moved["detail"] = {**detail, "event_time": _iso(happened + shift)}
    return moved


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
