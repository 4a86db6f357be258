"""tests/moto_methods.py: the kept list of a response class's methods is moto's own."""

from __future__ import annotations

import moto.core.responses
from moto.dynamodb.responses import DynamoHandler
from moto.kms.responses import KmsResponse

from tests.moto_methods import MOTO_METHOD_NAMES, method_names_kept_per_class


def test_the_kept_list_is_motos_list_for_each_class() -> None:
    with method_names_kept_per_class():
        kept = moto.core.responses.method_names_from_class
        for cls in (DynamoHandler, KmsResponse):
            assert kept(cls) == MOTO_METHOD_NAMES(cls) and kept(cls) is kept(cls)
        assert "put_item" in kept(DynamoHandler) and "put_item" not in kept(KmsResponse)
