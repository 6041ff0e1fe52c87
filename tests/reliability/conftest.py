"""The reliability suite: every attack of the campaign against 0.1.0, kept as a test.

Each test is an attack that once broke hypoprobe (or one it must keep surviving): the test
states what must hold, and runs against the public API, in fresh interpreters where the
attack could kill or wedge the process running it.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)
