"""API keys and roles: the whole role-by-endpoint matrix, 401 and 403, and the open mode."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisioning.errors import InvalidInput
from decisioning.settings import Settings
from decisioning.store import Store, open_store
from serving.app import create_app
from serving.security import ApiKeys, Role
from tests.serving.conftest import KEYS, ROLES, make_settings

EVERYONE = frozenset(ROLES)
MARKETING = frozenset({"marketer", "admin"})
ORCHESTRATION = frozenset({"orchestrator", "admin"})
OBJ = "/v1/objectives/{objective_id}"
DEC = "/v1/decisions/{decision_id}"

#: who may call what, written out independently of the code
MATRIX: list[tuple[str, str, frozenset[str]]] = [
    ("POST", "/v1/objectives", MARKETING),
    ("POST", "/v1/objectives/preview", MARKETING),
    ("GET", "/v1/objectives", EVERYONE),
    ("GET", OBJ, EVERYONE),
    ("GET", f"{OBJ}/versions", EVERYONE),
    ("PATCH", OBJ, MARKETING),
    ("POST", f"{OBJ}/activate", MARKETING),
    ("POST", f"{OBJ}/pause", MARKETING),
    ("POST", f"{OBJ}/archive", MARKETING),
    ("GET", f"{OBJ}/report", MARKETING),
    ("POST", "/v1/events", ORCHESTRATION),
    ("POST", "/v1/events/batch", ORCHESTRATION),
    ("POST", "/v1/contacts", ORCHESTRATION),
    ("POST", "/v1/decisions", ORCHESTRATION),
    ("POST", "/v1/decisions/batch", ORCHESTRATION),
    ("GET", DEC, ORCHESTRATION),
    ("POST", f"{DEC}/confirm", ORCHESTRATION),
    ("POST", f"{DEC}/outcome", ORCHESTRATION),
    ("GET", "/v1/models", frozenset({"data_scientist", "marketer", "admin"})),
    ("POST", "/v1/models/reload", frozenset({"data_scientist", "admin"})),
]
OPEN = [("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the matrix: its calls are refused or fail validation, changing nothing."""
    tmp = tmp_path_factory.mktemp("matrix")
    with (
        open_store(f"sqlite:///{tmp / 'api.db'}", create=True) as store,
        TestClient(create_app(make_settings(tmp), store=store)) as client,
    ):
        yield client


def call(client: TestClient, method: str, template: str, headers: dict[str, str]) -> int:
    path = template.replace("{objective_id}", "some_goal").replace("{decision_id}", "some-id")
    kwargs = {"json": {}} if method in ("POST", "PATCH") else {}
    return client.request(method, path, headers=headers, **kwargs).status_code


def test_the_matrix_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert routes == {(m, p) for m, p, _ in MATRIX} | set(OPEN)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "allowed"), MATRIX)
def test_role_matrix(
    shared: TestClient, method: str, template: str, allowed: frozenset[str], role: str
) -> None:
    status = call(shared, method, template, {"X-API-Key": KEYS[role]})
    if role in allowed:
        assert status not in (401, 403), (method, template, role, status)
    else:
        assert status == 403, (method, template, role, status)


@pytest.mark.parametrize(("method", "template", "allowed"), MATRIX)
def test_missing_or_wrong_key_is_401(
    shared: TestClient, method: str, template: str, allowed: frozenset[str]
) -> None:
    assert call(shared, method, template, {}) == 401
    assert call(shared, method, template, {"X-API-Key": "not-a-key"}) == 401
    assert call(shared, method, template, {"X-API-Key": KEYS["admin"] + "x"}) == 401


@pytest.mark.parametrize(("method", "path"), OPEN)
def test_health_ready_and_metrics_are_open(shared: TestClient, method: str, path: str) -> None:
    assert shared.request(method, path).status_code == 200


def test_forbidden_names_the_role(client: TestClient) -> None:
    response = client.post("/v1/decisions", json={}, headers={"X-API-Key": KEYS["marketer"]})
    assert response.status_code == 403 and "'marketer'" in response.json()["detail"]


def test_open_mode_without_keys_warns(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="decisioning.serving"):
        app: FastAPI = create_app(Settings(data_dir=tmp_path), store=store)
    assert "runs OPEN" in caplog.text
    with TestClient(app) as client:
        assert client.get("/v1/objectives").status_code == 200
        assert client.post("/v1/models/reload").status_code == 200


def test_keys_are_parsed_and_hashed() -> None:
    keys = ApiKeys.parse(" marketer:abc , admin:xyz,,")
    marketer = keys.authenticate("abc")
    assert marketer is not None and marketer.role is Role.MARKETER
    assert keys.authenticate("xyz").role is Role.ADMIN  # type: ignore[union-attr]
    assert keys.authenticate("ABC") is None and keys.authenticate(None) is None
    assert "abc" not in repr(vars(keys))  # only digests are kept
    for spec, message in [
        ("boss:k1", "unknown role 'boss'"),
        ("marketer", "expected 'role:key'"),
        ("marketer:k1,admin:k1", "two roles"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            ApiKeys.parse(spec)


def test_bad_key_settings_fail_at_start_up(tmp_path: Path, store: Store) -> None:
    with pytest.raises(InvalidInput, match="unknown role"):
        create_app(Settings(data_dir=tmp_path, api_keys="root:k"), store=store)  # type: ignore[arg-type]
