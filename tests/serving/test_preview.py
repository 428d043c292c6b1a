"""The objective preview through the API: estimates from the service's own history."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from decisioning.history import load_history
from decisioning.store import open_store
from experiments.quality import OBJECTIVES_DIR
from experiments.simulator import SimulationConfig, simulate
from serving.app import create_app
from tests.serving.conftest import headers, make_settings


def upsell_body() -> dict:
    body = yaml.safe_load((OBJECTIVES_DIR / "premium_upsell.yaml").read_text())
    body["horizon"] = str(body["horizon"])
    return body


def test_preview_from_the_loaded_history(tmp_path: Path) -> None:
    simulate(SimulationConfig(customers=800, days=14, seed=2)).write(tmp_path / "history")
    with open_store(f"sqlite:///{tmp_path / 'api.db'}", create=True) as store:
        store.ingest_history(load_history(tmp_path / "history"))
        with TestClient(create_app(make_settings(tmp_path), store=store)) as client:
            response = client.post(
                "/v1/objectives/preview", json=upsell_body(), headers=headers("marketer")
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["objective_id"] == "premium_upsell"
            assert body["description"][0].startswith("Preview of premium_upsell")
            assert any(line.startswith("Verdict: target") for line in body["description"])
            figures = body["figures"]
            assert figures["moments"] > 0 and 0.0 <= figures["reachable_moments"] <= 1.0
            assert {p["policy"] for p in figures["policies"]} >= {"lightgbm_greedy"}
            # Nothing was registered: the objective does not exist afterwards.
            missing = client.get("/v1/objectives/premium_upsell", headers=headers("marketer"))
            assert missing.status_code == 404


def test_preview_without_history_says_so(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'api.db'}", create=True) as store,
        TestClient(create_app(make_settings(tmp_path), store=store)) as client,
    ):
        body = {k: v for k, v in upsell_body().items() if k != "segment"}
        response = client.post("/v1/objectives/preview", json=body, headers=headers("marketer"))
        assert response.status_code == 422
        assert "decision" in response.json()["detail"]


def test_preview_checks_the_segment(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'api.db'}", create=True) as store,
        TestClient(create_app(make_settings(tmp_path), store=store)) as client,
    ):
        body = {**upsell_body(), "segment": "no_such_field > 3"}
        response = client.post("/v1/objectives/preview", json=body, headers=headers("admin"))
        assert response.status_code == 422
        assert "no_such_field" in str(response.json()["detail"])
