"""schemathesis against the served OpenAPI document: no 5xx, no schema violations.

The gateway is a real uvicorn process on each backend (PostgreSQL rejects NUL bytes
and out-of-range integers that SQLite takes, so both matter).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dispatcher import Dispatcher
from tests.conftest import Worker
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer, deliver, token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_openapi_conformance(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.subscribers.upsert("bob")
    deliver(dispatcher, "ana", 3)
    deliver(dispatcher, "bob", 1, start=4)
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {token('ana', ttl=3600)}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    seen: dict[str, set[int]] = {}
    for operation in operations:
        # Valid inputs and deliberately invalid ones (wrong types, NUL bytes, huge ids).
        strategy = operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=gateway.url, headers=headers, checks=CHECKS)
            seen.setdefault(case.operation.label, set()).add(response.status_code)

        run()
    # The token worked: every operation answered something other than 401 at least once.
    assert all(codes - {401} for codes in seen.values()), seen
    assert any(200 in codes for codes in seen.values())
