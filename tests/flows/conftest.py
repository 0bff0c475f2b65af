"""One Prefect test server for the flow tests (it takes seconds to start: once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    with prefect_test_harness(server_startup_timeout=90):
        yield str(PREFECT_API_URL.value())
