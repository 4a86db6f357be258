"""``stagepilot whoami``: the caller, account, region, stack, table and endpoints the CLI will act on."""

from __future__ import annotations

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run


def test_whoami_prints_what_the_cli_acts_on(ivs: IvsStandIn, aws: str, monkeypatch):
    import os

    ivs_url = os.environ["AWS_ENDPOINT_URL_IVS_REALTIME"]

    result = run("whoami")
    document = run("whoami", "--json").json()

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:7] == [
        "caller     arn:aws:sts::123456789012:user/moto",
        "account    123456789012",
        "region     us-east-1",
        "profile    default",
        "credentials env",
        "stack      StagePilot",
        f"table      {TABLE}",
    ]
    assert f"endpoint   ivs-realtime    {ivs_url}" in lines
    assert f"endpoint   dynamodb        {aws}" in lines
    assert document["endpoints"]["ivs-realtime"] == ivs_url and document["table"] == TABLE


def test_whoami_says_what_it_could_not_find(aws: str):
    result = run("whoami", "--stack", "Nope")

    assert result.status == 1
    assert "caller     arn:aws:sts::123456789012:user/moto" in result.stdout
    assert "table      ?" in result.stdout
    assert result.stderr.strip() == (
        "error: stack Nope: stack Nope not found in us-east-1: deploy it (make deploy), pass --stack NAME, "
        "or name the table with --table"
    )
