"""Event ingestion: counts, idempotency, anonymous visitors, and refused values."""

from __future__ import annotations

from fastapi.testclient import TestClient

from decisioning.store import Store
from tests.serving.conftest import headers, iso

ORCH = headers("orchestrator")


def test_batch_counts_and_idempotency(client: TestClient, store: Store) -> None:
    events = [
        {"event_id": "v1", "anonymous_id": "visitor-9", "ts": iso(-3), "type": "web_visit"},
        {"event_id": "p1", "customer_id": "c000", "ts": iso(-2), "type": "purchase", "value": 40},
        {
            "event_id": "i1",
            "customer_id": "c000",
            "anonymous_id": "visitor-9",
            "ts": iso(-1),
            "type": "identify",
        },
    ]
    first = client.post("/v1/events/batch", json=events, headers=ORCH)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": 3,
        "applied": 3,
        "duplicates": 0,
        "anonymous": 1,
        "merged": 1,
    }
    state = store.get_state("c000")
    assert state is not None and state.monetary == 40.0 and state.web_visits > 0
    again = client.post("/v1/events/batch", json=events, headers=ORCH)
    assert again.json()["applied"] == 0 and again.json()["duplicates"] == 3
    assert store.get_state("c000").monetary == 40.0  # type: ignore[union-attr]


def test_refused_events(client: TestClient, store: Store) -> None:
    base = {"event_id": "e1", "customer_id": "c001", "ts": iso(), "type": "purchase"}
    cases = [
        ({**base, "customer_id": None}, None),  # nobody: neither customer nor visitor
        ({**base, "ts": "2024-05-06T10:00:00"}, "ts"),  # no timezone
        ({**base, "type": "bought"}, "type"),
        ({**base, "value": 1e300}, "value"),  # would overflow the customer's sums
        ({**base, "channel": "fax"}, "channel"),
    ]
    for body, field in cases:
        response = client.post("/v1/events", json=body, headers=ORCH)
        assert response.status_code == 422, (body, response.text)
        if field is not None:
            assert field in response.json()["detail"][0]["loc"]
    assert client.post("/v1/events/batch", json={"events": []}, headers=ORCH).status_code == 422
    state = store.get_state("c001")
    assert state is not None and state.monetary == 0.0
