"""OpenAPI fuzzing with schemathesis against a real server process: no 5xx, ever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.demo_env import Demo, running_server


@pytest.fixture(scope="module")
def server_url(demo: Demo) -> Iterator[str]:
    with running_server(demo.project_dir) as url:
        yield url


def test_no_server_errors(server_url: str, demo: Demo) -> None:
    api = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    headers = {"Authorization": f"Bearer {demo.token('dave')}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def no_5xx(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.path, case.body, response.text[:300])
            assert "Traceback" not in response.text

        no_5xx()
