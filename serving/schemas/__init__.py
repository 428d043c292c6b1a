"""The API's request and response bodies, separate from the domain types they map to."""

from serving.schemas.common import Id, Moment, RequestContext, RequestModel, ResponseModel, Slug
from serving.schemas.decisions import (
    ActionPublic,
    AlternativePublic,
    BatchDecisionRequest,
    BlockedPublic,
    ConfirmIn,
    ConfirmPublic,
    DecisionPublic,
    DecisionRequest,
    LoggedDecisionPublic,
    OutcomeIn,
    OutcomePublic,
    decision_json,
)
from serving.schemas.events import ContactPublic, ContactReport, EventIn, IngestPublic
from serving.schemas.objectives import (
    ObjectiveCreate,
    ObjectivePublic,
    ObjectiveUpdate,
    OutcomeSchema,
)
from serving.schemas.ops import (
    HealthPublic,
    ModelPublic,
    ModelsPublic,
    ReadyPublic,
    ReportPublic,
)

__all__ = [
    "ActionPublic",
    "AlternativePublic",
    "BatchDecisionRequest",
    "BlockedPublic",
    "ConfirmIn",
    "ConfirmPublic",
    "ContactPublic",
    "ContactReport",
    "DecisionPublic",
    "DecisionRequest",
    "EventIn",
    "HealthPublic",
    "Id",
    "IngestPublic",
    "LoggedDecisionPublic",
    "decision_json",
    "ModelPublic",
    "ModelsPublic",
    "Moment",
    "ObjectiveCreate",
    "ObjectivePublic",
    "ObjectiveUpdate",
    "OutcomeIn",
    "OutcomePublic",
    "OutcomeSchema",
    "ReadyPublic",
    "ReportPublic",
    "RequestContext",
    "RequestModel",
    "ResponseModel",
    "Slug",
]
