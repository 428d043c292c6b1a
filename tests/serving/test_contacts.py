"""Contact reports: a sent decision counts on caps at once; suppressed or failed ones do not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from decisioning.actions import ActionSpace
from decisioning.guardrails import ContactPolicy
from decisioning.store import Store
from tests.serving.conftest import Api, at, headers, iso

ORCH = headers("orchestrator")


def report(client: TestClient, decision_id: str, status: str, hours: float) -> dict:
    response = client.post(
        "/v1/contacts",
        json={"decision_id": decision_id, "status": status, "at": iso(hours)},
        headers=ORCH,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_sent_contact_counts_on_caps_at_once(client: TestClient, api: Api, store: Store) -> None:
    api.create("Upsell", channel_costs={"email": 0.25})
    decision = api.decide("c000")
    assert decision["action"]["channel"] == "email"
    before = store.get_state("c000")
    assert before is not None and not before.channels["email"].recent

    sent = report(client, decision["decision_id"], "sent", 9.0)
    assert (sent["status"], sent["counted"]) == ("sent", True)
    after = store.get_state("c000")
    assert after is not None and len(after.channels["email"].recent) == 1

    # delivered after sent: the same contact, not counted twice
    delivered = report(client, decision["decision_id"], "delivered", 9.1)
    assert (delivered["status"], delivered["counted"]) == ("delivered", False)
    assert len(store.get_state("c000").channels["email"].recent) == 1  # type: ignore[union-attr]

    # the next decision sees the contact: one voice holds the customer for the arbitration
    # window, and under it the 24-hour cap blocks as well
    nxt = api.decide("c000", hours=10.0)
    assert nxt["action"]["key"] == "none"
    assert {b["rule"] for b in nxt["blocked"]} == {"consent", "one_voice"}
    seen = store.get_state("c000")
    assert seen is not None
    capped = ContactPolicy().evaluate(seen, ActionSpace.build(), at(10.0).timestamp())
    assert capped.reason("email@now").rule == "contact_cap"  # type: ignore[union-attr]

    spend = store.spend_by_channel("upsell")
    assert [(s.channel, s.contacts, s.cost) for s in spend] == [("email", 1, 0.25)]


def test_suppressed_and_failed_are_kept_and_not_counted(
    client: TestClient, api: Api, store: Store
) -> None:
    api.create("Upsell")
    first, second = api.decide("c002"), api.decide("c004")
    assert report(client, first["decision_id"], "suppressed", 1.0)["counted"] is False
    assert report(client, second["decision_id"], "failed", 1.0)["counted"] is False
    assert api.logged(first["decision_id"])["status"] == "suppressed"
    assert api.logged(second["decision_id"])["status"] == "failed"
    for cid in ("c002", "c004"):
        state = store.get_state(cid)
        assert state is not None and not any(s.recent for s in state.channels.values())


def test_impossible_reports(client: TestClient, api: Api) -> None:
    api.create("Upsell")
    nothing = api.decide("unknown-customer")  # do nothing: logged as suppressed
    response = client.post(
        "/v1/contacts", json={"decision_id": nothing["decision_id"], "status": "sent"}, headers=ORCH
    )
    assert response.status_code == 409 and "suppressed" in response.json()["detail"]
    missing = client.post("/v1/contacts", json={"decision_id": "x", "status": "sent"}, headers=ORCH)
    assert missing.status_code == 404
    wrong = client.post("/v1/contacts", json={"decision_id": "x", "status": "opened"}, headers=ORCH)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "status"]
