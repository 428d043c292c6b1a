"""The fast lane of POST /v1/decisions: the route's answer, and the route's errors when unusual."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from decisioning.decision import Decision
from decisioning.store import Store
from serving import decision_lane
from serving.schemas import decision_json
from tests.serving.conftest import Api, headers, iso

ORCH = headers("orchestrator")
#: a JSON type the lane leaves to the route (which reads any ``+json`` body)
ROUTE_ONLY = {**ORCH, "content-type": "application/vnd.decisioning+json"}


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[Decision | None]:
    """What the lane made of each request it saw: a decision, or None when it stepped aside."""
    seen: list[Decision | None] = []
    decide = decision_lane.DecisionLane._decide

    async def spy(*args: Any) -> Decision | None:
        seen.append(await decide(*args))
        return seen[-1]

    monkeypatch.setattr(decision_lane.DecisionLane, "_decide", spy)
    return seen


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("decision_id", "customer_id")}


def test_the_lane_answers_as_the_route_does(
    client: TestClient, api: Api, store: Store, answered: list[Decision | None]
) -> None:
    api.create("Upsell")
    # c000 and c002 are alike in every way the decision reads
    body = {"objective": "upsell", "as_of": iso(), "context": {"device": "ios"}}
    lane = client.post("/v1/decisions", json={"customer_id": "c000", **body}, headers=ORCH)
    route = client.post(
        "/v1/decisions", content=json.dumps({"customer_id": "c002", **body}), headers=ROUTE_ONLY
    )
    assert lane.status_code == route.status_code == 200
    assert answered[0] is not None and answered[1] is None  # the lane took the first only
    assert lane.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert _comparable(lane.json()) == _comparable(route.json())
    assert lane.json()["action"]["key"] != "none"
    # what the lane answered is the decision it logged (once), in the route's JSON
    store.flush_decisions()
    assert len(list(store.iter_decisions())) == 2
    logged = store.get_decision(lane.json()["decision_id"]).decision
    assert json.loads(decision_json(logged)) == lane.json()


def test_lane_decisions_are_counted_under_the_route(
    client: TestClient, api: Api, answered: list[Decision | None]
) -> None:
    api.create("Upsell")
    for customer in ("c001", "c003"):
        api.decide(customer)
    assert len(answered) == 2 and all(answered)
    text = client.get("/metrics").text
    assert (
        'decisioning_http_requests_total{method="POST",route="/v1/decisions",status="200"} 2.0'
        in text
    )
    assert 'decisioning_http_request_seconds_count{method="POST",route="/v1/decisions"} 2.0' in text
    assert 'decisioning_decisions_total{action="' in text


@pytest.mark.parametrize(
    ("body", "request_headers", "status", "detail"),
    [
        ({"customer_id": "c000"}, {}, 401, "valid API key"),
        ({"customer_id": "c000"}, headers("marketer"), 403, "may not call"),
        ({"customer_id": ""}, ORCH, 422, "customer_id"),
        ({"customer_id": "c000", "as_of": "yesterday"}, ORCH, 422, "as_of"),
        ({"customer_id": "c000", "objective": "no_such_goal"}, ORCH, 404, "no_such_goal"),
        ({"customer_id": "c000", "objective": "draft_goal"}, ORCH, 409, "draft"),
    ],
)
def test_anything_unusual_gets_the_routes_answer(
    client: TestClient,
    api: Api,
    store: Store,
    answered: list[Decision | None],
    body: dict[str, Any],
    request_headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    api.create("Draft goal", status="draft")
    response = client.post("/v1/decisions", json=body, headers=request_headers)
    assert response.status_code == status, response.text
    assert detail in json.dumps(response.json()["detail"])
    assert answered == [None]  # seen by the lane, answered by the route (the body replayed)
    store.flush_decisions()
    assert list(store.iter_decisions()) == []


def test_a_body_that_is_not_json_gets_the_routes_422(
    client: TestClient, answered: list[Decision | None]
) -> None:
    response = client.post(
        "/v1/decisions",
        content=b'{"customer_id": "c0',
        headers={**ORCH, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert answered == [None]


def test_other_paths_and_methods_pass_by(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    decision = api.decide("c004")
    got = client.get(f"/v1/decisions/{decision['decision_id']}", headers=ORCH)
    assert got.status_code == 200 and got.json()["decision_id"] == decision["decision_id"]
    assert client.get("/v1/decisions", headers=ORCH).status_code == 405
