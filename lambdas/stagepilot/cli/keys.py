"""``stagepilot keys list|rotate|lockout``: the door's signing keys (door/keys.py says how they work)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.errors import CliError
from stagepilot.cli.resources import client, resources
from stagepilot.errors import ConflictError

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.door.keys import SigningKeys


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    keys = commands.add_parser(
        "keys",
        parents=[common],
        help="the door's signing keys",
        description="The door's signing keys: a KMS key pair each, its public key imported into IVS (at most 3 "
        "per account and region; stagepilot keeps at most 2). rotate and lockout act with your own credentials "
        "(KMS key creation and deletion, IVS ImportPublicKey and DeletePublicKey): an account administrator's, "
        "which no managed policy of the stack grants (docs/door.md).",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    listing = sub.add_parser(
        "list",
        parents=[common, aws],
        help="the public keys imported in IVS",
        description="Every public key "
        "imported in IVS in this account and region; stagepilot's are marked active or previous.",
    )
    listing.set_defaults(handler=cmd_list)
    rotate = sub.add_parser(
        "rotate",
        parents=[common, aws],
        help="sign with a new key; no join is refused",
        description="Make a new KMS key the door's signing key and import its public key. The previous key "
        "stays imported, so every token it signed still joins until it expires; the key before it is deleted, "
        "which is refused until every token it signed has expired (the longest durationMinutes of the stored "
        "policies after the last rotate). The first rotate creates the door's first key.",
    )
    rotate.set_defaults(handler=cmd_rotate)
    lockout = sub.add_parser(
        "lockout",
        parents=[common, aws, yes_option()],
        help="invalidate every token not yet used",
        description="Delete every public key stagepilot imported into IVS: every token not yet used is refused "
        "at join (participants already connected stay: disconnect them with ban add). Their KMS keys are "
        "scheduled for deletion, and a fresh key is made active so the door keeps issuing.",
    )
    lockout.set_defaults(handler=cmd_lockout)


def _keys(args: argparse.Namespace) -> SigningKeys:
    from stagepilot.door.keys import SigningKeys

    res = resources(args)
    return SigningKeys(res.table, ivs=res.ivs, kms=client("kms"), name=res.stack)


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    listed = _keys(args).imported()
    if out.as_json:
        out.json([{k: v for k, v in key.items() if k != "publicKeyMaterial"} for key in listed])
        return 0
    if not listed:
        out.line("no public keys imported (the door has no key yet: run stagepilot keys rotate)")
    for key in listed:
        mark = key["role"] or ("stagepilot" if key["managed"] else "not stagepilot's")
        out.line(f"{key['arn']}  {key.get('name', '')}  {mark}")
    return 0


def cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import PolicyStore
    from stagepilot.policy import PolicyInvalid

    keys = _keys(args)
    res = resources(args)
    longest = 1
    for stored in PolicyStore(res.table).list():
        try:
            tokens = stored.parse().tokens
        except PolicyInvalid:
            continue
        if tokens is not None:
            longest = max([longest, *(role.duration_minutes for role in tokens.roles.values())])
    try:
        state = keys.rotate(longest_token_minutes=longest)
    except ConflictError as exc:
        raise CliError(str(exc)) from exc
    assert state.active is not None
    if out.as_json:
        out.json(
            {
                "active": state.active.public_key_arn,
                "previous": state.previous.public_key_arn if state.previous else None,
            }
        )
    else:
        out.line(f"signing with {state.active.public_key_arn}")
        if state.previous:
            out.line(f"  {state.previous.public_key_arn} stays imported until its tokens expire ({longest} min)")
    return 0


def cmd_lockout(args: argparse.Namespace, out: Output) -> int:
    confirm(args, "delete every public key stagepilot imported: every token not yet used will be refused")
    state = _keys(args).lockout()
    assert state.active is not None
    if out.as_json:
        out.json({"active": state.active.public_key_arn, "previous": None})
    else:
        out.line(f"every token not yet used is refused; signing with {state.active.public_key_arn}")
    return 0
