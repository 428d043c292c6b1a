"""Models, health, readiness and metrics endpoints; the fallback policy source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy
from decisioning.store import Store
from models.baselines import WaterfallPolicy
from serving.app import create_app
from serving.policies import FALLBACK_VERSION, FallbackPolicies
from tests.serving.conftest import Api, headers, make_settings


class CountingPolicies:
    """A policy source with a champion per objective, counting its reloads."""

    def __init__(self) -> None:
        self.reloads = 0

    def policy_for(self, objective: Objective) -> ServedPolicy:
        return ServedPolicy(WaterfallPolicy(), f"{objective.id}/{self.reloads + 1}")

    def reload(self) -> dict[str, Any]:
        self.reloads += 1
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {"reloads": self.reloads}


def test_models_report_the_fallback(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    response = client.get("/v1/models", headers=headers("marketer"))
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "FallbackPolicies"
    assert body["models"] == [
        {
            "objective_id": "upsell",
            "objective_status": "active",
            "model_version": FALLBACK_VERSION,
            "fallback": True,
        }
    ]
    assert body["loaded"] == {"upsell": FALLBACK_VERSION}


def test_reload_calls_the_policy_source(tmp_path: Path, store: Store) -> None:
    policies = CountingPolicies()
    app = create_app(make_settings(tmp_path), store=store, policies=policies)
    with TestClient(app) as client:
        Api(client).create("Upsell")
        decision = Api(client).decide("c000")
        assert (decision["model_version"], decision["fallback"]) == ("upsell/1", False)
        response = client.post("/v1/models/reload", headers=headers("data_scientist"))
        assert response.status_code == 200 and policies.reloads == 1
        assert response.json()["loaded"] == {"reloads": 1}
        assert response.json()["models"][0]["model_version"] == "upsell/2"
        assert Api(client).decide("c002")["model_version"] == "upsell/2"


def test_fallback_policies_serve_the_waterfall() -> None:
    policies = FallbackPolicies()
    objective = Objective(
        id="goal", name="Goal", outcome={"event_type": "purchase"}, value_per_conversion=1.0
    )  # type: ignore[arg-type]
    served = policies.policy_for(objective)
    assert isinstance(served.policy, WaterfallPolicy)
    assert (served.model_version, served.fallback) == (FALLBACK_VERSION, True)
    assert policies.reload() == {"goal": FALLBACK_VERSION}


def test_health_and_readiness(client: TestClient, api: Api, store: Store) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    api.create("Upsell")
    api.create("Later", status="draft")
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert (ready.json()["objectives"], ready.json()["active_objectives"]) == (2, 1)
    store.drop_all()  # the tables are gone: the store cannot answer
    down = client.get("/ready")
    assert down.status_code == 503 and down.json()["ready"] is False


def test_metrics_count_requests_and_decisions(app_factory: Callable[..., FastAPI]) -> None:
    first, second = app_factory(), app_factory()  # one registry per app: no clash
    with TestClient(first) as client, TestClient(second) as other:
        api = Api(client)
        api.create("Upsell")
        decision = api.decide("c000")
        client.get("/v1/objectives/upsell", headers=headers("admin"))
        client.get("/v1/objectives/nope", headers=headers("admin"))
        text = client.get("/metrics").text
        action = decision["action"]["key"]
        assert f'decisioning_decisions_total{{action="{action}",objective="upsell"}} 1.0' in text
        assert 'decisioning_fallback_decisions_total{objective="upsell"} 1.0' in text
        route = 'route="/v1/objectives/{objective_id}"'
        assert f'decisioning_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
        assert f'decisioning_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
        assert 'decisioning_http_request_seconds_bucket{le="0.005",method="POST"' in text
        assert "decisioning_decisions_total{" not in other.get("/metrics").text
