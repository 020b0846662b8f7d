"""Schemathesis over the service's own OpenAPI document, against a real server on loopback:
a few hundred generated requests, no 5xx, every response as documented.

(schemathesis's lazy pytest loader does not work with pytest 9.2, so operations are looked up
and driven with Hypothesis directly.)
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.servers import Server, clean_env, running

pytestmark = pytest.mark.e2e

OPERATIONS = [("GET", "/v1/auth"), ("GET", "/auth"), ("POST", "/v2/token")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("schema")
    env = clean_env(UPLOAD_AUTH_STORAGE_DIR=str(root / "uploads"))
    with running(["dev"], env=env, log=root / "server.log") as running_server:
        yield running_server


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    """The list below is the whole API: a new operation cannot go unfuzzed."""
    found = sorted((op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_operation_conforms_to_its_schema(
    api_schema: Any, server: Server, method: str, path: str
) -> None:
    """Generated requests never get a 5xx or a response that breaks the schema."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        # Schema-valid is not policy-valid: a well-formed request for an unknown key or a
        # disallowed type is a documented 422 problem, so "valid data is accepted" is excluded.
        case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])

    check()
