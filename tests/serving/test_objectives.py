"""Objective endpoints: lifecycle, versions, validation against the customers' fields."""

from __future__ import annotations

from fastapi.testclient import TestClient

from decisioning.objectives import ObjectiveSpec
from serving.schemas import ObjectiveCreate, ObjectiveUpdate
from tests.serving.conftest import Api, headers, objective_body

M = headers("marketer")


def test_lifecycle_create_edit_pause_activate_archive(client: TestClient, api: Api) -> None:
    created = client.post(
        "/v1/objectives",
        json=objective_body("Upsell basic", status="draft", segment='plan == "basic"'),
        headers=M,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["id"], body["version"], body["status"]) == ("upsell_basic", 1, "draft")
    assert "purchases" in body["summary"]

    edited = client.patch(
        "/v1/objectives/upsell_basic", json={"target_lift": 0.25, "priority": 3}, headers=M
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["target_lift"]) == (2, 0.25)
    assert edited.json()["status"] == "draft"  # an edit keeps the status

    first = client.get("/v1/objectives/upsell_basic", params={"version": 1}, headers=M).json()
    assert (first["version"], first["target_lift"]) == (1, 0.1)
    history = client.get("/v1/objectives/upsell_basic/versions", headers=M).json()
    assert [v["version"] for v in history] == [1, 2]

    assert client.post("/v1/objectives/upsell_basic/pause", headers=M).status_code == 409
    active = client.post("/v1/objectives/upsell_basic/activate", headers=M)
    assert active.json()["status"] == "active"
    listed = client.get("/v1/objectives", params={"status": "active"}, headers=M).json()
    assert [o["id"] for o in listed] == ["upsell_basic"]

    paused = client.post("/v1/objectives/upsell_basic/pause", headers=M)
    assert paused.json()["status"] == "paused"
    # a paused objective no longer decides
    decision = api.decide("c000")
    assert decision["objective"] is None and decision["action"]["key"] == "none"

    assert client.post("/v1/objectives/upsell_basic/archive", headers=M).status_code == 200
    again = client.post("/v1/objectives/upsell_basic/activate", headers=M)
    assert again.status_code == 409 and "archived" in again.json()["detail"]
    assert (
        client.patch("/v1/objectives/upsell_basic", json={"priority": 1}, headers=M).status_code
        == 409
    )


def test_activation_takes_effect_on_the_next_decision(client: TestClient, api: Api) -> None:
    api.create("Reactivate", status="draft")
    assert api.decide("c000")["objective"] is None
    client.post("/v1/objectives/reactivate/activate", headers=M)
    assert api.decide("c001")["objective"] == "reactivate"


def test_segment_is_checked_against_the_customers_fields(client: TestClient) -> None:
    bad = client.post(
        "/v1/objectives", json=objective_body("Bad", segment='plna == "basic"'), headers=M
    )
    assert bad.status_code == 422
    assert "segment" in bad.json()["detail"] and "plna" in bad.json()["detail"]
    unsafe = client.post(
        "/v1/objectives", json=objective_body("Bad", segment="__import__('os')"), headers=M
    )
    assert unsafe.status_code == 422


def test_domain_rules_are_422_naming_the_field(client: TestClient) -> None:
    no_value = objective_body("No value")
    del no_value["value_per_conversion"]
    response = client.post("/v1/objectives", json=no_value, headers=M)
    assert response.status_code == 422
    assert "value_per_conversion" in response.json()["detail"]
    too_big = client.post("/v1/objectives", json=objective_body("Big", target_lift=50), headers=M)
    assert too_big.status_code == 422 and "target_lift" in too_big.json()["detail"]
    typo = client.post("/v1/objectives", json=objective_body("Typo", priorty=3), headers=M)
    assert typo.status_code == 422
    assert typo.json()["detail"][0]["loc"] == ["body", "priorty"]
    client.post("/v1/objectives", json=objective_body("Fine"), headers=M)
    fixed = client.patch("/v1/objectives/fine", json={"version": 7}, headers=M)
    assert fixed.status_code == 422
    empty = client.patch("/v1/objectives/fine", json={}, headers=M)
    assert empty.status_code == 422 and "no changes" in empty.json()["detail"]


def test_duplicate_id_conflicts_and_unknown_id_is_404(client: TestClient, api: Api) -> None:
    api.create("Winback")
    again = client.post("/v1/objectives", json=objective_body("Winback"), headers=M)
    assert again.status_code == 409
    assert client.get("/v1/objectives/nope", headers=M).status_code == 404
    assert client.get("/v1/objectives/winback", params={"version": 9}, headers=M).status_code == 404
    assert client.patch("/v1/objectives/nope", json={"priority": 1}, headers=M).status_code == 404
    assert client.post("/v1/objectives/nope/activate", headers=M).status_code == 404


def test_api_bodies_cover_every_objective_field() -> None:
    # the API schemas are separate from the domain model: they must not drift apart
    spec = set(ObjectiveSpec.model_fields)
    assert spec <= set(ObjectiveCreate.model_fields)
    assert spec <= set(ObjectiveUpdate.model_fields)
    assert set(ObjectiveCreate.model_fields) - spec == {"id", "status"}
