"""moto looks up each response class's action methods once, not on every request.

moto (5.2) answers a request by checking that the action is a method of the service's response class:
``BaseResponse.call_action`` lists the class's methods with ``inspect.getmembers`` on every request (every
attribute of a class of some hundred members), about a tenth of a small DynamoDB call's CPU. A class's
methods do not change while the tests run, so the list is kept per class; the answer is the same list.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import moto.core.responses

MOTO_METHOD_NAMES = moto.core.responses.method_names_from_class  # moto's own, whatever is patched later


@contextmanager
def method_names_kept_per_class() -> Iterator[None]:
    with mock.patch.object(moto.core.responses, "method_names_from_class", functools.cache(MOTO_METHOD_NAMES)):
        yield
