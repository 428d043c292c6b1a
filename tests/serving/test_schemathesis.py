"""Property test over the OpenAPI spec: no generated request, valid or not, yields a 5xx.

Schemathesis generates requests for every operation from the spec (bodies that fit it and
bodies that do not), sent with an admin key so that they reach the handlers, against an app
on a temporary SQLite store holding customers and an active objective.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from decisioning.objectives import ObjectiveSpec
from decisioning.store import open_store
from serving.app import create_app
from tests.serving.conftest import KEYS, customers, make_settings

# The schema is loaded when the module is collected (schemathesis parametrizes from it).
_TMP = Path(tempfile.mkdtemp(prefix="decisioning-schemathesis-"))
_STORE = open_store(f"sqlite:///{_TMP / 'api.db'}", create=True)
_STORE.upsert_customers(customers(6))
# an active objective, so that generated decisions go the engine's whole way
_STORE.save_objective(
    ObjectiveSpec.model_validate(
        {"name": "Goal", "outcome": {"event_type": "purchase"}, "value_per_conversion": 5.0}
    )
    .to_objective()
    .activate()
    .model_dump(mode="json")
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(make_settings(_TMP, batch_limit=50), store=_STORE)
)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _STORE.close()
    shutil.rmtree(_TMP, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"X-API-Key": KEYS["admin"]})
    case.validate_response(response, checks=[not_a_server_error])
