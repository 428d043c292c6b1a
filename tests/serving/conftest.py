"""Fixtures of the API tests: an app on a temporary SQLite store with seeded customers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from decisioning.records import Customer
from decisioning.settings import Settings
from decisioning.store import Store, open_store
from serving.app import create_app

#: a Monday morning, UTC: every scheduled slot of the day is still ahead
T0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
ROLES = ("marketer", "orchestrator", "data_scientist", "admin")
KEYS = {role: f"key-{role}-0123456789" for role in ROLES}


def at(hours: float) -> datetime:
    """A moment ``hours`` after ``T0``."""
    return T0 + timedelta(hours=hours)


def iso(hours: float = 0.0) -> str:
    return at(hours).isoformat()


def headers(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def customers(n: int) -> list[Customer]:
    """``n`` customers with e-mail and push consent; even ones on the basic plan."""
    return [
        Customer(
            customer_id=f"c{i:03d}",
            signup_at=T0 - timedelta(days=120),
            timezone="UTC",
            consents={"email": True, "push": True},
            attributes={"plan": "basic" if i % 2 == 0 else "premium"},
        )
        for i in range(n)
    ]


def objective_body(name: str, **extra: Any) -> dict[str, Any]:
    """A valid objective body: purchases worth 20, no holdout unless given, active."""
    body: dict[str, Any] = {
        "name": name,
        "outcome": {"event_type": "purchase"},
        "value_per_conversion": 20.0,
        "holdout_fraction": 0.0,
        "status": "active",
    }
    body.update(extra)
    return body


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    keys = ",".join(f"{role}:{key}" for role, key in KEYS.items())
    return Settings(data_dir=tmp_path, api_keys=SecretStr(keys), **extra)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'api.db'}", create=True)
    store.upsert_customers(customers(20))
    yield store
    store.close()


@pytest.fixture
def app_factory(tmp_path: Path, store: Store) -> Callable[..., FastAPI]:
    """Apps over the test store (settings overridable, e.g. ``batch_limit=5``)."""

    def build(**settings: Any) -> FastAPI:
        return create_app(make_settings(tmp_path, **settings), store=store)

    return build


@pytest.fixture
def client(app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(app_factory()) as client:
        yield client


class Api:
    """Shortcuts over the test client, with the right role for each call."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def create(self, name: str, **extra: Any) -> dict[str, Any]:
        response = self.client.post(
            "/v1/objectives", json=objective_body(name, **extra), headers=headers("marketer")
        )
        assert response.status_code == 201, response.text
        return response.json()

    def decide(self, customer_id: str, hours: float = 0.0, **extra: Any) -> dict[str, Any]:
        body = {"customer_id": customer_id, "as_of": iso(hours), **extra}
        response = self.client.post("/v1/decisions", json=body, headers=headers("orchestrator"))
        assert response.status_code == 200, response.text
        return response.json()

    def event(self, customer_id: str, type: str, hours: float, **extra: Any) -> dict[str, Any]:
        body = {
            "event_id": f"{customer_id}-{type}-{hours}",
            "customer_id": customer_id,
            "ts": iso(hours),
            "type": type,
            **extra,
        }
        response = self.client.post("/v1/events", json=body, headers=headers("orchestrator"))
        assert response.status_code == 200, response.text
        return response.json()

    def logged(self, decision_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/decisions/{decision_id}", headers=headers("admin"))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)
