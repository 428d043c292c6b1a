"""Contacts: the orchestrator reports what became of a decision (sent, delivered, or not)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from decisioning.channels import DEFAULT_COSTS
from decisioning.decision import Decision
from decisioning.errors import NotFound
from decisioning.objectives import Objective
from decisioning.records import Contact
from decisioning.store import Store
from serving.deps import OrchestratorDep, StoreDep
from serving.schemas import ContactPublic, ContactReport

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

#: statuses meaning the message went out: it counts on caps and fatigue
SENT = frozenset({"sent", "delivered"})


def contact_of(store: Store, decision: Decision, at: datetime) -> Contact:
    """The contact record of a decision sent at ``at``, costed as its objective version says."""
    cost, category = DEFAULT_COSTS[decision.action.channel], None
    if decision.objective_id is not None:
        try:
            objective = Objective.model_validate(
                store.get_objective(decision.objective_id, decision.objective_version)
            )
        except NotFound:  # a decision outlives no objective in practice; keep the defaults
            objective = None
        if objective is not None:
            cost = objective.cost_of(decision.action.channel)
            if objective.kind == "increase":
                category = objective.outcome.category
    return Contact(
        contact_id=decision.decision_id,
        customer_id=decision.customer_id,
        ts=decision.decided_at,
        channel=decision.action.channel,
        slot=decision.action.slot,
        send_at=at,
        objective=decision.objective_id,
        cost=cost,
        propensity=decision.propensity,
        decision_id=decision.decision_id,
        category=category,
    )


@router.post("")
def report_contact(body: ContactReport, _: OrchestratorDep, store: StoreDep) -> ContactPublic:
    """Report a decision sent, delivered, suppressed or failed; a sent one counts at once."""
    at = body.at or datetime.now(UTC)
    updated = store.update_decision_status(body.decision_id, body.status, at=at)
    decision = updated.decision
    counted = False
    if body.status in SENT and decision.is_contact:
        # the contact id is the decision id: "sent" then "delivered" count the contact once
        counted = store.ingest_contacts([contact_of(store, decision, at)]).applied == 1
    return ContactPublic(
        decision_id=decision.decision_id,
        customer_id=decision.customer_id,
        status=updated.status,
        status_at=updated.status_at,
        counted=counted,
    )
