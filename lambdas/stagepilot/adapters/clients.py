"""The functions' boto3 clients, made without botocore's scan of every service it knows.

Before it loads a service's model, botocore's ``Loader.load_service_model`` lists every service in its data
folders (``list_available_services``: 440 folders, each listed and its model file looked for) only to
check that the one asked for is among them, once for the model and once for its endpoint rules. That is
about 23 ms of each cold start on the reference machine (docs/performance.md §1), paid before the first
client exists, for an answer the function already knows. botocore's maintainers measured the same scan
(boto/botocore#3687, "Remove list_available_services from client creation happy path", open in 2026).

``ServiceLoader`` checks only the service asked for: a service is known when some data folder holds a
version of it with that model file, which is what the full scan decides for each service too. Anything
that lists the services (an unknown service's error message, ``Session.get_available_services``) still
gets botocore's full, sorted list. Every model comes from the same files by the same code. The functions
run on the Lambda runtime's boto3, which AWS updates: a loader that is not botocore's own is left alone,
and a lookup that fails in a way other than "not found" falls back to botocore's list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, overload

import boto3
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader


class KnownServices(Sequence[str]):
    """``list_available_services``' answer, a sorted list of names as botocore's, whose ``in`` looks at the
    one service asked for; the full scan runs only when the list itself is read."""

    def __init__(self, loader: Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, service_name: object) -> bool:
        if not isinstance(service_name, str) or not service_name:
            return False
        try:
            return bool(self._loader.list_api_versions(service_name, self._type_name))
        except DataNotFoundError:  # no folder holds this service with that model file
            return False
        except Exception:  # a botocore (the runtime's, which AWS updates) whose loader differs: botocore's answer
            return service_name in self._names

    @cached_property
    def _names(self) -> list[str]:
        return list(Loader.list_available_services(self._loader, self._type_name))

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._names[index]

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:  # reads as the list botocore returns
        return self._names == (list(other) if isinstance(other, KnownServices) else other)

    __hash__ = None  # type: ignore[assignment]  # a list is not hashable either

    def __repr__(self) -> str:
        return repr(self._names)


class ServiceLoader(Loader):
    """botocore's loader, with ``list_available_services`` answering "is this one known?" without the scan."""

    def list_available_services(self, type_name: str) -> Any:
        return KnownServices(self, type_name)


_loaders: dict[tuple[tuple[str, ...], tuple[str, ...]], ServiceLoader] = {}


def use_service_loader(session: boto3.Session) -> None:
    """Give ``session``'s botocore session a ``ServiceLoader`` with the same search paths (boto3 adds its
    own), unless it has one already. Sessions with the same paths share one, and its cache of the models
    it loaded, as the sessions of one process would share the files."""
    core = session._session  # boto3 keeps its botocore session here; it is how boto3 reaches the loader too
    current = core.get_component("data_loader")
    if isinstance(current, ServiceLoader) or type(current) is not Loader:
        return  # ours already, or one someone else chose (a test's, another library's): left as it is
    key = (tuple(current.search_paths), tuple(current.extras_types))
    loader = _loaders.get(key)
    if loader is None:
        loader = ServiceLoader(
            extra_search_paths=list(current.search_paths),
            file_loader=current.file_loader,
            include_default_search_paths=False,
            include_default_extras=False,
        )
        loader.extras_types.extend(current.extras_types)
        loader = _loaders.setdefault(key, loader)
    core.register_component("data_loader", loader)
    session._loader = loader  # boto3's own reference, for resources


def client(service_name: str, **kwargs: Any) -> Any:
    """``boto3.client(service_name, **kwargs)`` on boto3's default session, with a ``ServiceLoader``."""
    session = boto3._get_default_session()
    use_service_loader(session)
    return session.client(service_name, **kwargs)
