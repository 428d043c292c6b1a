"""The assembled service: engine on the settings' store, background reward job with the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from decisioning.records import Customer, Event, EventType
from decisioning.settings import Settings
from experiments.quality import example_objective
from serving.service import RewardJob, build_engine, create_service_app


def test_reward_job_runs_with_the_app_and_attributes(tmp_path):
    settings = Settings(data_dir=tmp_path, attribution_interval_seconds=3600)
    app = create_service_app(settings)
    job = app.state.reward_job
    store = job.engine.store
    now = datetime(2026, 3, 3, 10, tzinfo=UTC)
    store.upsert_customers(
        [
            Customer(
                "c1",
                signup_at=now - timedelta(days=30),
                timezone="UTC",
                consents={"email": True},
                attributes={"plan": "basic"},
            )
        ]  # fmt: skip
    )
    objective = example_objective("premium_upsell").activate()
    store.save_objective(objective.model_dump(mode="json"))
    decision = job.engine.decide("c1", objective_id="premium_upsell", as_of=now)
    if not decision.action.is_nothing:  # a contact earns a reward once it really went out
        store.update_decision_status(decision.decision_id, "sent", at=now)
    store.ingest_events(
        [
            Event(
                "p1",
                "c1",
                now + timedelta(days=1),
                EventType.PURCHASE,
                value=50,
                category="premium",
            )
        ]
    )
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert job._thread is not None and job._thread.is_alive()
        assert job.run_once(now + timedelta(days=8)) == 1
    assert not job._thread.is_alive()
    logged = store.get_decision(decision.decision_id)
    assert logged.reward_source == "attributed"
    cost = objective.cost_of(decision.action.channel)
    assert logged.reward == 40 - cost


def test_reward_job_says_once_which_decisions_it_cannot_reward(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path)
    job = RewardJob(build_engine(settings), interval=3600, online=False)
    store = job.engine.store
    now = datetime(2026, 3, 3, 10, tzinfo=UTC)
    store.upsert_customers([Customer("c1", signup_at=now - timedelta(days=30), timezone="UTC")])
    # a reduction stored before value_per_conversion was required: it cannot value its outcome
    churn = example_objective("churn").activate()
    legacy = churn.model_copy(update={"value_per_conversion": None, "value_from_event": True})
    store.save_objective(legacy.model_dump(mode="json"))
    job.engine.decide("c1", objective_id=churn.id, as_of=now)
    store.flush_decisions()
    with caplog.at_level("WARNING", logger="decisioning.service"):
        assert job.run_once(now + timedelta(days=60)) == 0
        assert job.run_once(now + timedelta(days=61)) == 0
    assert job.skipped == {"reduce objective version without value_per_conversion": 1}
    warned = [r for r in caplog.records if "without a reward" in r.getMessage()]
    assert len(warned) == 1


def test_the_service_decides_from_its_hot_view_and_a_fresh_event_changes_it(tmp_path):
    now = datetime(2026, 3, 3, 10, tzinfo=UTC)
    customer = Customer(
        "c1", signup_at=now - timedelta(days=30), timezone="UTC", consents={"email": True},
        attributes={"plan": "basic"},
    )  # fmt: skip
    cold = create_service_app(Settings(data_dir=tmp_path / "cold", hot_store_seconds=0))
    assert not cold.state.reward_job.engine.store.hot
    app = create_service_app(Settings(data_dir=tmp_path / "hot"))
    engine = app.state.reward_job.engine
    assert engine.store.hot
    engine.store.upsert_customers([customer])
    engine.store.save_objective(
        example_objective("premium_upsell").activate().model_dump(mode="json")
    )
    engine.refresh()
    first = engine.decide("c1", objective_id="premium_upsell", as_of=now)
    assert first.objective_id == "premium_upsell"
    engine.store.ingest_events(
        [Event("t1", "c1", now + timedelta(minutes=1), EventType.SUPPORT_TICKET_OPENED)]
    )
    later = engine.decide("c1", objective_id="premium_upsell", as_of=now + timedelta(minutes=2))
    assert later.action.is_nothing
    assert {b.rule for b in later.blocked} == {"support_ticket"}
    engine.store.close()
    cold.state.reward_job.engine.store.close()
