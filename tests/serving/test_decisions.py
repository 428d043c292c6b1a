"""Decision endpoints: one customer, batches, arbitration, holdout, confirmation, outcomes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisioning.holdout import in_holdout
from decisioning.store import Store
from serving.schemas import DecisionPublic, decision_json
from tests.serving.conftest import Api, headers, iso

ORCH = headers("orchestrator")


def test_decision_for_an_objective_is_logged_and_explained(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    decision = api.decide("c000", objective="upsell", context={"device": "ios", "visits": 3})
    assert decision["objective"] == "upsell" and decision["objective_version"] == 1
    assert decision["action"]["channel"] == "email"  # consented, owned channel first
    assert decision["send_at"] is not None and decision["send_at"] >= decision["decided_at"]
    assert decision["fallback"] and decision["model_version"] == "fallback:waterfall"
    assert 0 < decision["propensity"] <= 1
    assert decision["explanation"].startswith("Send an e-mail")
    assert {b["rule"] for b in decision["blocked"]} >= {"consent", "waterfall"}
    logged = api.logged(decision["decision_id"])
    assert logged["status"] == "scheduled"
    assert logged["action"] == decision["action"]


def test_ticket_event_makes_the_next_decision_do_nothing(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    assert api.event("c002", "support_ticket_opened", -1.0)["applied"] == 1
    decision = api.decide("c002")
    assert decision["action"]["key"] == "none"
    reasons = {b["rule"] for b in decision["blocked"]}
    assert reasons == {"support_ticket"}
    assert "support ticket" in decision["blocked"][0]["reason"]
    # the same event again is a duplicate and changes nothing
    assert api.event("c002", "support_ticket_opened", -1.0)["duplicates"] == 1
    # a customer without a ticket is contacted
    assert api.decide("c004")["action"]["key"] != "none"


def test_unsubscribe_blocks_that_channel_at_once(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    api.event("c006", "unsubscribe", -0.5, channel="email")
    decision = api.decide("c006")
    email = [b for b in decision["blocked"] if b["action"]["channel"] == "email"]
    assert len(email) == 6 and {b["rule"] for b in email} == {"consent"}
    assert decision["action"]["channel"] == "push"  # the rule falls back to push


def test_cold_start_customer_gets_a_decision(client: TestClient, api: Api, store: Store) -> None:
    api.create("Upsell")
    decision = api.decide("never-seen-before")
    assert decision["customer_id"] == "never-seen-before"
    assert decision["objective"] == "upsell"
    assert decision["action"]["key"] == "none"  # no consent known yet
    assert "blocked by the contact policy" in decision["explanation"]
    assert api.logged(decision["decision_id"])["status"] == "suppressed"


def test_unknown_or_inactive_objective(client: TestClient, api: Api) -> None:
    missing = client.post(
        "/v1/decisions", json={"customer_id": "c000", "objective": "nope"}, headers=ORCH
    )
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    api.create("Later", status="draft")
    draft = client.post(
        "/v1/decisions", json={"customer_id": "c000", "objective": "later"}, headers=ORCH
    )
    assert draft.status_code == 409 and "draft" in draft.json()["detail"]
    assert client.get("/v1/decisions/nope", headers=ORCH).status_code == 404


def test_arbitration_across_active_objectives(client: TestClient, api: Api) -> None:
    api.create("Everyone", priority=0)
    api.create("Basic plan", priority=5, segment='plan == "basic"')
    # a basic customer is in both segments: the higher priority speaks
    assert api.decide("c000")["objective"] == "basic_plan"
    # a premium customer is only in the first
    assert api.decide("c001")["objective"] == "everyone"
    # one voice: the basic customer already has a contact scheduled
    again = api.decide("c000", hours=0.5)
    assert again["action"]["key"] == "none"
    assert any(b["rule"] == "one_voice" for b in again["blocked"])


def test_holdout_membership_is_deterministic(client: TestClient, api: Api) -> None:
    api.create("Half", holdout_fraction=0.5)
    ids = [f"c{i:03d}" for i in range(20)]
    first = {cid: api.decide(cid, objective="half")["holdout"] for cid in ids}
    assert first == {cid: in_holdout(cid, "half", 0.5) for cid in ids}
    assert 0 < sum(first.values()) < len(ids)
    second = {cid: api.decide(cid, hours=30.0, objective="half")["holdout"] for cid in ids}
    assert second == first
    held = next(cid for cid, h in first.items() if h)
    decision = api.decide(held, hours=60.0, objective="half")
    assert decision["action"]["key"] == "none" and decision["propensity"] == 1.0


def test_batch_streams_one_line_per_customer_and_logs_all(
    client: TestClient, api: Api, store: Store
) -> None:
    api.create("Upsell")
    ids = ["c000", "c001", "c002", "unknown-1", "c001"]  # a repeated id is decided once
    response = client.post(
        "/v1/decisions/batch", json={"customer_ids": ids, "as_of": iso()}, headers=ORCH
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [d["customer_id"] for d in lines] == ["c000", "c001", "c002", "unknown-1"]
    for decision in lines:
        assert api.logged(decision["decision_id"])["customer_id"] == decision["customer_id"]
    assert len(list(store.iter_decisions("upsell"))) == 4
    counted = re.findall(
        r'decisioning_decisions_total\{action="[^"]+",objective="upsell"\} (\d+)\.0',
        client.get("/metrics").text,
    )
    assert sum(map(int, counted)) == 4  # the batch's decisions, counted once each


def test_batch_over_a_segment(client: TestClient, api: Api) -> None:
    api.create("Basic plan", segment='plan == "basic"')
    response = client.post(
        "/v1/decisions/batch", json={"objective": "basic_plan", "as_of": iso()}, headers=ORCH
    )
    assert response.status_code == 200, response.text
    customers = [json.loads(line)["customer_id"] for line in response.text.splitlines()]
    assert customers == [f"c{i:03d}" for i in range(0, 20, 2)]
    missing = client.post("/v1/decisions/batch", json={"objective": "nope"}, headers=ORCH)
    assert missing.status_code == 404
    neither = client.post("/v1/decisions/batch", json={"context": {}}, headers=ORCH)
    assert neither.status_code == 422


def test_batches_over_the_limit_are_413(app_factory: Callable[..., FastAPI]) -> None:
    with TestClient(app_factory(batch_limit=3)) as client:
        ids = ["c000", "c001", "c002", "c003"]
        decisions = client.post("/v1/decisions/batch", json={"customer_ids": ids}, headers=ORCH)
        assert decisions.status_code == 413 and "at most 3" in decisions.json()["detail"]
        events = [
            {"event_id": f"e{i}", "customer_id": "c000", "ts": iso(), "type": "app_open"}
            for i in range(4)
        ]
        assert client.post("/v1/events/batch", json=events, headers=ORCH).status_code == 413
        assert client.post("/v1/events/batch", json=events[:3], headers=ORCH).status_code == 200


def test_confirm_cancels_after_a_purchase(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    bought = api.decide("c008")
    kept = api.decide("c010")
    assert bought["action"]["key"] != "none" and kept["action"]["key"] != "none"
    api.event("c008", "purchase", 1.0, value=30.0)
    cancelled = client.post(
        f"/v1/decisions/{bought['decision_id']}/confirm", json={"at": iso(2.0)}, headers=ORCH
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["go"] is False and cancelled.json()["status"] == "cancelled"
    assert "purchase" in cancelled.json()["reason"]
    assert api.logged(bought["decision_id"])["status"] == "cancelled"
    go = client.post(
        f"/v1/decisions/{kept['decision_id']}/confirm", json={"at": iso(2.0)}, headers=ORCH
    )
    assert go.json() == {
        "decision_id": kept["decision_id"],
        "go": True,
        "reason": None,
        "status": "scheduled",
    }
    # a cancelled decision cannot be confirmed again
    again = client.post(f"/v1/decisions/{bought['decision_id']}/confirm", headers=ORCH)
    assert again.status_code == 409


def test_explicit_outcome(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    decision = api.decide("c000")
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    response = client.post(url, json={"reward": 19.5}, headers=ORCH)
    assert response.status_code == 200
    assert response.json()["reward"] == 19.5 and response.json()["reward_source"] == "explicit"
    logged = api.logged(decision["decision_id"])
    assert (logged["reward"], logged["reward_source"]) == (19.5, "explicit")
    not_finite = client.post(
        url, content=b'{"reward": NaN}', headers={**ORCH, "content-type": "application/json"}
    )
    assert not_finite.status_code == 422
    assert (
        client.post("/v1/decisions/nope/outcome", json={"reward": 1}, headers=ORCH).status_code
        == 404
    )


def test_bad_decision_bodies_are_422_with_the_field(client: TestClient) -> None:
    cases = [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "c1", "as_of": "2024-05-06T10:00:00"}, "as_of"),  # no timezone
        ({"customer_id": "c1", "context": {"k": {"nested": 1}}}, "context"),
        ({"customer_id": "c1", "objective": "Not A Slug"}, "objective"),
        ({"customer_id": "c1\x00"}, "customer_id"),
        ({"customer_id": "c1", "as_of": "0001-01-01T00:00:00+05:00"}, "as_of"),
    ]
    for body, field in cases:
        response = client.post("/v1/decisions", json=body, headers=ORCH)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["detail"][0]["loc"], response.json()


def test_decision_json_equals_the_models_json(client: TestClient, api: Api, store: Store) -> None:
    api.create("Upsell")
    for cid in ("c000", "c001", "c002", "nobody"):
        decision = store.get_decision(api.decide(cid, objective="upsell")["decision_id"]).decision
        for variant in (
            decision,
            replace(decision, expected_value=None, send_at=None, holdout=True),
            replace(decision, expected_value=float("nan"), decided_at=decision.decided_at),
        ):
            model = json.loads(DecisionPublic.of(variant).model_dump_json())
            assert json.loads(decision_json(variant)) == model
