"""Decision calls of one event-loop turn, decided together: each as it would be alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from decisioning.decision import Decision
from decisioning.store import Store
from serving.engine import DecisionEngine
from serving.micro_batch import MicroBatcher, _groups
from serving.schemas import DecisionRequest
from tests.serving.conftest import KEYS, Api, iso

MOMENTS = [None, datetime(2024, 5, 6, 10, tzinfo=UTC), datetime(2024, 5, 6, 11, tzinfo=UTC)]


def _call(customer: str, objective: str | None = None, as_of: datetime | None = None) -> Any:
    return DecisionRequest(customer_id=customer, objective=objective, as_of=as_of)


calls_st = st.lists(
    st.builds(
        _call,
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([None, "upsell", "churn"]),
        st.sampled_from(MOMENTS),
    ),
    max_size=30,
)


@given(calls_st)
def test_groups_take_every_call_once_in_order_and_repeat_customers_later(
    calls: list[DecisionRequest],
) -> None:
    groups = _groups(calls)
    flat = [i for group in groups for i in group]
    assert sorted(flat) == list(range(len(calls)))
    for group in groups:
        assert group == sorted(group)  # in the order they came
        assert len({calls[i].customer_id for i in group}) == len(group)
        assert len({(calls[i].objective, calls[i].as_of) for i in group}) == 1
    # a customer's calls are decided in the order they came, each after the one before
    position = {i: k for k, group in enumerate(groups) for i in group}
    for a in range(len(calls)):
        for b in range(a + 1, len(calls)):
            if calls[a].customer_id == calls[b].customer_id:
                assert position[a] < position[b]


class Recorder:
    """Decides with a label per call, and remembers the groups it was asked for."""

    def __init__(self, failing: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.alone: list[str] = []
        self.failing = failing

    def group(self, calls: Sequence[DecisionRequest]) -> list[Any]:
        self.groups.append([c.customer_id for c in calls])
        if any(c.customer_id == self.failing for c in calls):
            raise ValueError("one of the calls cannot be decided")
        return [f"decided {c.customer_id}" for c in calls]

    def one(self, call: DecisionRequest) -> Any:
        self.alone.append(call.customer_id)
        if call.customer_id == self.failing:
            raise ValueError("this call cannot be decided")
        return f"alone {call.customer_id}"


def _together(batcher: MicroBatcher, calls: list[DecisionRequest]) -> list[Any]:
    async def main() -> list[Any]:
        return list(await asyncio.gather(*(batcher.decide(c) for c in calls)))

    return asyncio.run(main())


def test_calls_of_one_turn_are_decided_in_one_group() -> None:
    rec = Recorder()
    answers = _together(MicroBatcher(rec.group, rec.one), [_call(c) for c in "abcd"])
    assert answers == ["decided a", "decided b", "decided c", "decided d"]
    assert rec.groups == [["a", "b", "c", "d"]] and rec.alone == []


def test_a_call_alone_is_decided_alone_in_its_turn() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.group, rec.one)

    async def one_after_another() -> list[Any]:
        return [await batcher.decide(_call("a")), await batcher.decide(_call("b"))]

    assert asyncio.run(one_after_another()) == ["decided a", "decided b"]
    assert rec.groups == [["a"], ["b"]]


def test_the_limit_splits_a_turn_in_order() -> None:
    rec, sizes = Recorder(), []
    calls = [_call(f"c{i}") for i in range(7)]
    answers = _together(MicroBatcher(rec.group, rec.one, limit=3, observe=sizes.append), calls)
    assert answers == [f"decided c{i}" for i in range(7)]
    assert rec.groups == [["c0", "c1", "c2"], ["c3", "c4", "c5"], ["c6"]]
    assert sizes == [3, 3, 1]


def test_a_group_that_fails_is_decided_call_by_call() -> None:
    rec = Recorder(failing="b")
    calls = [_call("a"), _call("b"), _call("c"), _call("d", objective="churn")]
    answers = _together(MicroBatcher(rec.group, rec.one), calls)
    # the failing call gets None (the full stack answers it); the others their decision
    assert answers == ["alone a", None, "alone c", "decided d"]
    assert rec.groups == [["a", "b", "c"], ["d"]] and rec.alone == ["a", "b", "c"]


def test_a_limit_below_one_is_refused() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="limit must be at least 1"):
        MicroBatcher(rec.group, rec.one, limit=0)


# -- through the app --------------------------------------------------------------------------


async def _post(app: FastAPI, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /v1/decisions`` straight through the ASGI app: status and JSON answer."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/decisions",
        "raw_path": b"/v1/decisions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-api-key", KEYS["orchestrator"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(content)


def _concurrently(app: FastAPI, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    async def main() -> list[tuple[int, Any]]:
        return list(await asyncio.gather(*(_post(app, body) for body in bodies)))

    return asyncio.run(main())


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The customers of each chunk the engine decided for the lane."""
    seen: list[list[str]] = []
    decide_each = DecisionEngine.decide_each

    def spy(self: DecisionEngine, asks: Any, **kw: Any) -> list[Decision]:
        seen.append([cid for cid, _ in asks])
        return decide_each(self, asks, **kw)

    monkeypatch.setattr(DecisionEngine, "decide_each", spy)
    return seen


def test_concurrent_calls_are_decided_together_as_each_alone(
    client: TestClient, api: Api, store: Store, groups: list[list[str]]
) -> None:
    api.create("Upsell")
    app: FastAPI = client.app  # type: ignore[assignment]
    ids = [f"c{i:03d}" for i in range(8)]
    bodies = [
        {"customer_id": c, "objective": "upsell", "as_of": iso(), "context": {"device": d}}
        for c, d in zip(ids, ["ios", "android"] * 4, strict=True)
    ]
    # what each call gets alone, first (not logged: the state stays as it is)
    engine: DecisionEngine = app.state.service.engine
    single = [
        engine.decide(
            body["customer_id"],
            objective_id="upsell",
            request=body["context"],
            as_of=datetime.fromisoformat(body["as_of"]),
            log=False,
        )
        for body in bodies
    ]
    answers = _concurrently(app, bodies)
    assert [status for status, _ in answers] == [200] * 8
    assert groups == [ids]
    assert any(got["action"]["key"] != "none" for _, got in answers)
    for body, alone, (_, got) in zip(bodies, single, answers, strict=True):
        assert got["customer_id"] == body["customer_id"]
        assert got["action"]["key"] == alone.action.key
        assert got["propensity"] == alone.propensity
        assert got["explanation"] == alone.explanation
        assert got["expected_value"] == alone.expected_value
        # logged once, with its own call's request context
        logged = store.get_decision(got["decision_id"]).decision
        assert logged.context["request"] == body["context"]
    assert len(list(store.iter_decisions())) == 8
    text = client.get("/metrics").text
    assert "decisioning_decisions_per_turn_count 1.0" in text
    assert 'decisioning_decisions_per_turn_bucket{le="4.0"} 0.0' in text
    assert 'decisioning_decisions_per_turn_bucket{le="8.0"} 1.0' in text


def test_a_customer_asked_twice_in_one_turn_is_decided_in_turn(
    client: TestClient, api: Api, store: Store, groups: list[list[str]]
) -> None:
    api.create("Upsell")
    body = {"customer_id": "c000", "objective": "upsell", "as_of": iso()}
    (s1, first), (s2, second) = _concurrently(client.app, [body, body])  # type: ignore[arg-type]
    assert s1 == s2 == 200
    assert groups == [["c000"], ["c000"]]
    assert first["action"]["key"] != "none"
    # the second call sees the first's contact, as two calls in a row do
    assert second["action"]["key"] == "none"
    assert any(b["rule"] == "one_voice" for b in second["blocked"])


def test_a_call_the_engine_refuses_gets_the_routes_error_and_the_others_their_decision(
    client: TestClient, api: Api, store: Store
) -> None:
    api.create("Upsell")
    bodies = [
        {"customer_id": "c001", "objective": "upsell", "as_of": iso()},
        {"customer_id": "c003", "objective": "no_such_goal", "as_of": iso()},
        {"customer_id": "c005", "objective": "upsell", "as_of": iso()},
    ]
    answers = _concurrently(client.app, bodies)  # type: ignore[arg-type]
    assert [status for status, _ in answers] == [200, 404, 200]
    assert "no_such_goal" in json.dumps(answers[1][1]["detail"])
    store.flush_decisions()
    assert sorted(d.decision.customer_id for d in store.iter_decisions()) == ["c001", "c005"]
