"""Objectives: validation naming the field, costs and conversions, versions, lifecycle, YAML."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from decisioning.actions import ALL_SLOTS, Action, Slot
from decisioning.channels import CONTACT_CHANNELS, DEFAULT_COSTS, Channel
from decisioning.errors import Conflict, InvalidInput
from decisioning.objectives import (
    Objective,
    ObjectiveSpec,
    Outcome,
    load_objectives_yaml,
    slugify,
)
from decisioning.records import Event, EventType
from decisioning.segment import field_catalogue

EXAMPLES = Path(__file__).resolve().parents[2] / "experiments" / "objectives"
FIELDS = field_catalogue({"plan": "text", "country": "text"})


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "premium_upsell",
        "name": "Premium upsell",
        "kind": "increase",
        "outcome": {"event_type": "purchase", "category": "premium"},
        "value_per_conversion": 40,
        "attribution_window_days": 7,
        "segment": 'plan == "basic"',
        "target_lift": 0.1,
        "budget_per_period": 5000,
        "budget_period": "month",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def event(type_: EventType, *, category: str | None = None, value: float | None = None) -> Event:
    return Event(
        "e1", "c1", datetime(2025, 1, 1, tzinfo=UTC), type_, value=value, category=category
    )


def test_defaults_and_action_space() -> None:
    objective = Objective.validate_against(base(), FIELDS)
    assert objective.status == "draft" and objective.version == 1
    assert objective.holdout_fraction == 0.1 and objective.created_at.tzinfo is not None
    space = objective.action_space()
    assert len(space) == 1 + len(CONTACT_CHANNELS) * len(ALL_SLOTS)
    small = objective.with_changes(channels=["email", "sms"], slots=["now", "today_evening"])
    assert small.action_space().keys == (
        "none",
        "email@now",
        "email@today_evening",
        "sms@now",
        "sms@today_evening",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"id": "Premium Upsell!"},
            r"objective 'Premium Upsell!': id: String should match pattern",
        ),
        ({"id": ...}, r"id: Field required"),
        ({"name": ""}, r"name: String should have at least 1 character"),
        ({"kind": "grow"}, r"kind: Input should be 'increase' or 'reduce'"),
        ({"outcome": {"event_type": "buy"}}, r"outcome.event_type: Input should be"),
        ({"outcome": {"event_type": "purchase", "min_value": -1}}, r"outcome.min_value"),
        ({"value_per_conversion": -1}, r"value_per_conversion: Input should be greater than or"),
        ({"value_per_conversion": ...}, r"value_per_conversion is required unless value_from_"),
        (
            {"attribution_window_days": 0},
            r"attribution_window_days: Input should be greater than 0",
        ),
        ({"segment": "tenure < 90"}, r"segment: unknown field 'tenure' \(did you mean 'tenure_d"),
        ({"segment": "plan == 3"}, r"segment: cannot compare text field 'plan'"),
        ({"segment": "open('x')"}, r"segment: function calls are not allowed"),
        ({"target_lift": 0}, r"target_lift: Input should be greater than 0"),
        ({"kind": "reduce", "target_lift": 1.5}, r"target_lift 1.5: a reduction is below 1"),
        (
            {"kind": "reduce", "value_from_event": True, "value_per_conversion": ...},
            r"value_from_event: a reduction's outcome is an event that does not happen",
        ),
        ({"kind": "reduce", "value_from_event": True}, r"value_from_event: a reduction's outc"),
        ({"horizon": "someday"}, r"horizon: Input should be a valid date"),
        ({"budget_per_period": 0}, r"budget_per_period: Input should be greater than 0"),
        ({"budget_period": "year"}, r"budget_period: Input should be 'day', 'week' or 'month'"),
        ({"holdout_fraction": 1.0}, r"holdout_fraction: Input should be less than 1"),
        ({"holdout_fraction": -0.1}, r"holdout_fraction: Input should be greater than or equal"),
        ({"holdout_fraction": float("nan")}, r"holdout_fraction: Input should be a finite number"),
        ({"priority": 1.5}, r"priority: Input should be a valid integer"),
        ({"channels": ["email", "fax"]}, r"channels.1: Input should be 'email'"),
        ({"channels": ["email", "none"]}, r"channels: list contact channels only"),
        ({"channels": []}, r"channels: at least one channel is needed"),
        ({"channels": ["sms", "sms"]}, r"channels: channel listed more than once: sms"),
        ({"slots": ["midnight"]}, r"slots.0: Input should be 'now'"),
        ({"channel_costs": {"sms": -1}}, r"channel_costs.sms: Input should be greater than or eq"),
        ({"channel_costs": {"none": 1}}, r"channel_costs: doing nothing costs nothing"),
        ({"fatigue_penalties": {"unsubscribe": -5}}, r"fatigue_penalties.unsubscribe"),
        ({"guardrails": {"cap": {"7d": 2}}}, r"guardrails: unknown contact policy setting 'cap'"),
        ({"status": "done"}, r"status: Input should be 'draft', 'active', 'paused' or 'archived'"),
        ({"version": 0}, r"version: Input should be greater than or equal to 1"),
        ({"created_at": datetime(2025, 1, 1)}, r"created_at: Input should have timezone info"),
        ({"colour": "blue"}, r"colour: Extra inputs are not permitted"),
    ],
)
def test_validation_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Objective.validate_against(base(**changes), FIELDS)


def test_segment_checked_against_the_catalogue_given() -> None:
    data = base(segment='plan == "basic" and country != "FR"')
    assert Objective.model_validate(data).segment == data["segment"]  # syntax only
    with pytest.raises(ValidationError, match="unknown field 'country'"):
        Objective.model_validate(data, context={"fields": field_catalogue({"plan": "text"})})
    objective = Objective.model_validate(data, context={"fields": FIELDS})
    segment = objective.segment_for(FIELDS)
    assert segment.matches({"plan": "basic", "country": "DE"})
    assert not segment.matches({"plan": "basic", "country": "FR"})


def test_costs_follow_overrides() -> None:
    objective = Objective.validate_against(base(channel_costs={"sms": 0.2}), FIELDS)
    space = objective.action_space()
    costs = objective.costs(space)
    assert costs.shape == (len(space),) and costs[0] == 0.0
    for action, cost in zip(space, costs, strict=True):
        expected = 0.2 if action.channel is Channel.SMS else DEFAULT_COSTS[action.channel]
        assert cost == pytest.approx(expected)
    keys = ["none", "paid_social@now", "sms@weekend_morning"]
    assert objective.costs(keys).tolist() == [0.0, DEFAULT_COSTS[Channel.PAID_SOCIAL], 0.2]
    assert objective.costs([Action(Channel.EMAIL, Slot.NOW)]) == np.array(
        [DEFAULT_COSTS[Channel.EMAIL]]
    )
    assert objective.cost_of("none") == 0.0


@pytest.mark.parametrize(
    ("outcome", "evt", "expected"),
    [
        ({"event_type": "purchase"}, event(EventType.PURCHASE), True),
        ({"event_type": "purchase"}, event(EventType.CLICK), False),
        ({"event_type": "purchase", "category": "premium"}, event(EventType.PURCHASE), False),
        (
            {"event_type": "purchase", "category": "premium"},
            event(EventType.PURCHASE, category="premium"),
            True,
        ),
        ({"event_type": "purchase", "min_value": 50}, event(EventType.PURCHASE, value=49), False),
        ({"event_type": "purchase", "min_value": 50}, event(EventType.PURCHASE, value=50), True),
        ({"event_type": "purchase", "min_value": 50}, event(EventType.PURCHASE), False),
        ({"event_type": "cancel"}, {"type": "cancel", "value": None}, True),
    ],
)
def test_is_conversion(outcome: dict, evt: Any, expected: bool) -> None:
    objective = Objective.validate_against(base(outcome=outcome), FIELDS)
    assert objective.is_conversion(evt) is expected
    assert Outcome.model_validate(outcome).matches(evt) is expected


def test_conversion_value() -> None:
    fixed = Objective.validate_against(base(), FIELDS)
    assert fixed.conversion_value(event(EventType.PURCHASE, value=99)) == 40.0
    from_event = fixed.with_changes(value_from_event=True, value_per_conversion=None)
    assert from_event.conversion_value(event(EventType.PURCHASE, value=99)) == 99.0
    assert from_event.conversion_value(event(EventType.PURCHASE)) == 0.0
    fallback = fixed.with_changes(value_from_event=True)
    assert fallback.conversion_value({"value": None}) == 40.0
    assert "the event's value (40 if none)" in fallback.describe()


def test_with_changes_makes_a_validated_new_version() -> None:
    first = Objective.validate_against(base(), FIELDS).activate()
    second = first.with_changes(target_lift=0.2, fields=FIELDS)
    assert (second.version, second.target_lift, second.status) == (2, 0.2, "active")
    assert second.id == first.id and second.created_at == first.created_at
    assert second.updated_at is not None and second.updated_at >= first.created_at
    assert (first.version, first.target_lift) == (1, 0.1)  # the old version is untouched
    assert second.with_changes(name="Upsell").version == 3
    with pytest.raises(InvalidInput, match="holdout_fraction: Input should be less than 1"):
        second.with_changes(holdout_fraction=1.5)
    with pytest.raises(InvalidInput, match="segment: unknown field 'plann'"):
        second.with_changes(segment='plann == "x"', fields=FIELDS)
    for key in ("id", "version", "status", "created_at"):
        with pytest.raises(InvalidInput, match=f"'{key}' cannot be changed"):
            second.with_changes(**{key: "x"})
    with pytest.raises(InvalidInput, match="unknown field 'budget'"):
        second.with_changes(budget=3)
    with pytest.raises(InvalidInput, match="no changes"):
        second.with_changes()
    with pytest.raises(ValidationError, match="frozen"):
        second.target_lift = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "move", "end"),
    [
        ("draft", "activate", "active"),
        ("draft", "archive", "archived"),
        ("draft", "pause", Conflict),
        ("active", "pause", "paused"),
        ("active", "activate", "active"),
        ("active", "archive", "archived"),
        ("paused", "activate", "active"),
        ("paused", "pause", "paused"),
        ("paused", "archive", "archived"),
        ("archived", "activate", Conflict),
        ("archived", "pause", Conflict),
        ("archived", "archive", "archived"),
    ],
)
def test_status_transitions(start: str, move: str, end: Any) -> None:
    objective = Objective.validate_against(base(status=start), FIELDS)
    if end is Conflict:
        with pytest.raises(Conflict, match="premium_upsell"):
            getattr(objective, move)()
        return
    moved = getattr(objective, move)()
    assert moved.status == end and moved.version == objective.version
    assert objective.status == start


def test_archived_objective_cannot_be_edited() -> None:
    archived = Objective.validate_against(base(), FIELDS).archive()
    with pytest.raises(Conflict, match="archived"):
        archived.with_changes(target_lift=0.3)


def test_example_files_load_and_describe_themselves() -> None:
    [upsell] = load_objectives_yaml(EXAMPLES / "premium_upsell.yaml", fields=FIELDS)
    [churn] = load_objectives_yaml(EXAMPLES / "churn.yaml", fields=FIELDS)
    assert (upsell.id, upsell.outcome.event_type, upsell.outcome.category) == (
        "premium_upsell",
        EventType.PURCHASE,
        "premium",
    )
    assert (upsell.value_per_conversion, upsell.attribution_window_days) == (40, 7)
    assert (upsell.budget_per_period, upsell.budget_period, upsell.holdout_fraction) == (
        5000,
        "month",
        0.1,
    )
    assert (churn.kind, churn.outcome.event_type, churn.value_per_conversion) == (
        "reduce",
        EventType.CANCEL,
        100,
    )
    assert churn.attribution_window_days == 14 and churn.segment == "tenure_days < 90"
    assert churn.priority > upsell.priority
    assert upsell.describe().startswith(
        'Increase premium purchases by 10% among plan == "basic" within 7 days of a contact, '
        "worth 40 each; budget 5000 per month, 10% holdout"
    )
    assert churn.describe().startswith("Reduce cancellations by 10% among tenure_days < 90")


def test_stored_document_round_trips() -> None:
    [upsell] = load_objectives_yaml(EXAMPLES / "premium_upsell.yaml")
    doc = json.loads(json.dumps(upsell.model_dump(mode="json")))
    assert Objective.validate_against(doc, FIELDS) == upsell


def test_yaml_list_with_ids_from_names(tmp_path: Path) -> None:
    path = tmp_path / "objectives.yaml"
    path.write_text(
        "- name: Réactivation été\n"
        "  outcome: {event_type: app_open}\n"
        "  value_per_conversion: 2\n"
        "- id: second\n"
        "  name: Second\n"
        "  kind: reduce\n"
        "  outcome: {event_type: unsubscribe}\n"
        "  value_per_conversion: 5\n",
        encoding="utf-8",
    )
    first, second = load_objectives_yaml(path)
    assert (first.id, second.id) == ("reactivation_ete", "second")
    assert first.describe().startswith("Increase app opens by 10% among all customers")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"expected an objective"),
        ("- 3\n", r"item 1 is a int, not an objective"),
        ("name: [unclosed\n", r"not valid YAML at line 2"),
        (
            "id: a\nname: A\noutcome: {event_type: buy}\nvalue_per_conversion: 1\n",
            r"item 1: objective 'a': outcome.event_type",
        ),
        (
            "- {id: a, name: A, outcome: {event_type: click}, value_per_conversion: 1}\n"
            "- {id: a, name: B, outcome: {event_type: click}, value_per_conversion: 1}\n",
            r"objective id listed more than once: a",
        ),
    ],
)
def test_yaml_errors_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message) as caught:
        load_objectives_yaml(path)
    assert str(path) in str(caught.value)


def test_spec_becomes_a_draft_objective() -> None:
    spec = ObjectiveSpec.model_validate({k: v for k, v in base().items() if k != "id"})
    objective = spec.to_objective(fields=FIELDS)
    assert (objective.id, objective.version, objective.status) == ("premium_upsell", 1, "draft")
    assert spec.describe() == objective.describe()
    assert slugify("  Winter -- Sale 2025 ") == "winter_sale_2025"
    with pytest.raises(InvalidInput, match="cannot make an id"):
        slugify("???")


def test_holdout_membership_is_per_objective() -> None:
    objective = Objective.validate_against(base(holdout_fraction=0.5), FIELDS)
    held = [objective.in_holdout(f"c{i}") for i in range(2000)]
    assert 0.45 < np.mean(held) < 0.55
    assert held == [objective.with_changes(name="x").in_holdout(f"c{i}") for i in range(2000)]
