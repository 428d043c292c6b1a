"""Store fixtures: every store test runs on SQLite (WAL file) and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from decisioning.channels import Channel
from decisioning.records import Customer
from decisioning.store import Store, open_store
from tests.decisioning.store.support import T0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of an empty store with its tables created, on each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'decisioning.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    with open_store(url) as store:
        store.drop_all()  # the PostgreSQL database is shared by the module's tests
        store.create_all()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def customers() -> list[Customer]:
    """Three known customers with some consents and attributes."""
    return [
        Customer(
            f"c{i}",
            signup_at=T0 - timedelta(days=30 * (i + 1)),
            timezone="Europe/Paris",
            consents={Channel.EMAIL: True, Channel.SMS: i % 2 == 0},
            attributes={"plan": "gold" if i else "free", "age": 30 + i},
        )
        for i in range(3)
    ]
