"""The functions' clients (adapters/clients.py): botocore's models, without its scan of every service."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from stagepilot.adapters import clients
from stagepilot.adapters.clients import KnownServices, ServiceLoader, use_service_loader

SERVICES = ("dynamodb", "ivs-realtime", "sqs", "kms")


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full scan of botocore's data folders, by model type."""
    seen: list[str] = []
    full_scan = Loader.list_available_services

    def counted(self: Loader, type_name: str) -> Any:
        seen.append(type_name)
        return full_scan(self, type_name)

    monkeypatch.setattr(Loader, "list_available_services", counted)
    return seen


def session() -> boto3.Session:
    """A session as a fresh process has it: its own loader, nothing loaded yet (tests/conftest.py gives every
    session of the test run one loader). ``no_shared_service_loader`` empties the loaders other tests made."""
    core = botocore.session.Session()
    core.register_component("data_loader", Loader())
    return boto3.Session(
        botocore_session=core, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )


@pytest.fixture(autouse=True)
def no_shared_service_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "_loaders", {})


def test_a_client_is_made_without_listing_every_service(scans: list[str]) -> None:
    stock = session()
    stock.client("dynamodb")
    assert scans, "botocore no longer scans before it loads a model: adapters/clients.py has nothing to save"
    scans.clear()

    ours = session()
    use_service_loader(ours)
    for name in SERVICES:
        ours.client(name)
    assert scans == []


@pytest.mark.parametrize("name", SERVICES)
def test_the_client_has_botocores_model_and_endpoint(name: str) -> None:
    ours = session()
    use_service_loader(ours)
    made, stock = ours.client(name), session().client(name)
    assert made.meta.service_model.api_version == stock.meta.service_model.api_version
    assert made.meta.service_model.operation_names == stock.meta.service_model.operation_names
    for operation in made.meta.service_model.operation_names:
        ours_input = made.meta.service_model.operation_model(operation).input_shape
        stock_input = stock.meta.service_model.operation_model(operation).input_shape
        assert (ours_input and ours_input.members.keys()) == (stock_input and stock_input.members.keys())
    assert made.meta.endpoint_url == stock.meta.endpoint_url


def test_an_unknown_service_is_refused_with_botocores_list() -> None:
    ours = session()
    use_service_loader(ours)
    with pytest.raises(UnknownServiceError) as refused:
        ours.client("ivs-realtme")
    with pytest.raises(UnknownServiceError) as stock:
        session().client("ivs-realtme")
    assert str(refused.value) == str(stock.value)
    assert "ivs-realtime" in str(refused.value)


def test_the_service_list_reads_as_botocores_when_listed() -> None:
    ours = session()
    use_service_loader(ours)
    assert ours.get_available_services() == session().get_available_services()
    known = ours._session.get_component("data_loader").list_available_services("service-2")
    assert isinstance(known, KnownServices)
    assert "ivs-realtime" in known and "dynamodb" in known
    assert "nothing-like-it" not in known and "" not in known and None not in known
    assert known[0] == sorted(known)[0] and len(known) == len(list(known)) > 400


def test_the_loader_keeps_the_sessions_search_paths_and_is_installed_once() -> None:
    ours = session()
    before = ours._session.get_component("data_loader")
    use_service_loader(ours)
    loader = ours._session.get_component("data_loader")
    assert isinstance(loader, ServiceLoader)
    assert loader.search_paths == before.search_paths  # botocore's, the customer's ~/.aws/models, boto3's
    assert loader.extras_types == before.extras_types
    use_service_loader(ours)
    assert ours._session.get_component("data_loader") is loader
    another = session()
    use_service_loader(another)  # the same paths: the same loader, and the models it has loaded
    assert another._session.get_component("data_loader") is loader


def test_client_uses_boto3s_default_session(monkeypatch: pytest.MonkeyPatch, scans: list[str]) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session())
    made = clients.client("sqs")
    assert isinstance(boto3.DEFAULT_SESSION._session.get_component("data_loader"), ServiceLoader)
    assert made.meta.service_model.service_name == "sqs" and scans == []


def test_a_lookup_this_botocore_cannot_make_falls_back_to_the_full_list(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(self: Loader, service_name: str, type_name: str) -> Any:
        raise AttributeError("a future botocore's loader")

    monkeypatch.setattr(Loader, "list_api_versions", changed)
    known = KnownServices(Loader(), "service-2")
    assert "ivs-realtime" in known and "nothing-like-it" not in known


def test_a_loader_someone_else_chose_is_left_alone() -> None:
    class Theirs(Loader):
        pass

    core = botocore.session.Session()
    core.register_component("data_loader", Theirs())
    theirs = boto3.Session(botocore_session=core, region_name="us-east-1")
    use_service_loader(theirs)
    assert type(theirs._session.get_component("data_loader")) is Theirs
