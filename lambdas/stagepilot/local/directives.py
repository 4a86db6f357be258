"""What a scenario's lines do to a running world (docs/simulate.md): one implementation, used by ``stagepilot
simulate`` (``LocalDeployment``, a virtual clock) and by ``stagepilot sandbox play`` (``Sandbox``, the wall
clock, over HTTP). A line is an event or a directive (``simulate.read_scenario`` checked its shape); the
world is anything with the IVS stand-in, the stack's services, a clock and a way to put an event on the bus.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stagepilot.local.door import LocalDoor
    from stagepilot.local.ivs import IvsStandIn
    from stagepilot.local.simulate import Line
    from stagepilot.pipeline import Services

# ("event" | "directive" | "door" | "join" | ..., payload): what happened, for a timeline
Listener = Callable[[str, Any], None]


class World(Protocol):
    """What a directive acts on: ``LocalDeployment`` and ``Sandbox`` both are one."""

    ivs: IvsStandIn
    services: Services

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def put_event(
        self, event: Mapping[str, Any], *, observe: bool = True, deliver: bool = True, delay_seconds: float = 0
    ) -> list[str]: ...

    def lose_emitted(self, event_name: str, count: int = 1, *, stage_arn: str | None = None) -> None: ...


def act(world: World, door: LocalDoor, line: Line, notify: Listener, decisions: list[dict[str, Any]]) -> None:
    """The line happens now in ``world``: an event is put on the bus, a directive changes the world."""
    if line.kind in ("issue", "join"):
        _door(door, line, notify, decisions)
    elif line.kind == "ban":
        _ban(world, line, notify)
    else:
        _play(world, line, notify)


def _ban(world: World, line: Line, notify: Listener) -> None:
    """An operator adds (or removes) a ban mid-run, as ``ban add`` / ``ban remove`` would: added, the user's
    participants the door let in are disconnected at once (token records); the pass finds the others."""
    from stagepilot.door.revoke import disconnect_issued
    from stagepilot.errors import NotFound

    data = line.data
    notify("directive", data)
    bans = world.services.bans
    if data.get("remove"):
        with contextlib.suppress(NotFound):
            bans.remove(data["userId"], stage_arn=data.get("stageArn"))
        return
    ban, _ = bans.add(
        data["userId"], reason=data.get("reason", ""), stage_arn=data.get("stageArn"), scope=data.get("scope", "join")
    )
    world.ivs.trigger = "event"
    try:
        disconnect_issued(world.services, ban)
    finally:
        world.ivs.trigger = None


def _door(door: LocalDoor, line: Line, notify: Listener, decisions: list[dict[str, Any]]) -> None:
    """``issue``: the application asks the door; ``join``: a client joins with a token it got."""
    notify("directive", line.data)
    if line.kind == "issue":
        decision = door.issue(line.data)
        decisions.append(decision)
        notify("door", decision)
    else:
        notify("join", (line.data, door.join(line.data)))


def _play(world: World, line: Line, notify: Listener) -> None:
    data = line.data
    if line.kind == "event":
        notify("event", data)
        world.put_event(data)
        return
    if line.kind == "encoder":  # said with its outcome: a channel a composition streams into refuses it
        taken = world.ivs.encoder_on_air(data["channelArn"], on_air=data.get("onAir", True))
        notify("directive", {**data, "refused": not taken})
        return
    notify("directive", data)
    ivs = world.ivs
    if line.kind == "participant":
        ivs.declare_participant(
            data["stageArn"], data["participantId"], user_id=data.get("userId", ""), attributes=data.get("attributes")
        )
    elif line.kind == "composition-failure":
        ivs.fail_compositions(data["stageArn"])
    elif line.kind == "destination-failure":
        ivs.fail_destinations(data["stageArn"], kind=data["destination"], reason=data.get("reason"))
    elif line.kind == "lost":
        world.put_event(data["event"], deliver=False)
    elif line.kind == "late":
        world.put_event(data["event"], delay_seconds=float(data["seconds"]))
    elif line.kind == "lose-emitted":
        world.lose_emitted(data["eventName"], data.get("count", 1), stage_arn=data.get("stageArn"))
    elif line.kind == "fault":
        ivs.fail_next(data["operation"], data.get("count", 1), error=data["error"])
    elif line.kind == "outage":
        ivs.outage(world.clock(), float(data["seconds"]))
    elif line.kind == "leave":
        ivs.leave(data["stageArn"], data["participantId"])
    elif line.kind == "recording":
        ivs.set_participant_recording(data["stageArn"], data["participantId"], active=data["state"] == "active")
