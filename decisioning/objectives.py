"""Objectives: what the marketer wants to move, for whom, worth what, under which budget and rules.

An objective is a typed, validated record. Its segment is checked when the objective is built:
fully against a field catalogue passed as validation context (``{"fields": catalogue}``) or
:meth:`ObjectiveSpec.validate_against`, and for syntax and forbidden constructs otherwise. An
edit makes a new version (:meth:`Objective.with_changes`); the lifecycle (draft, active,
paused, archived) moves with :meth:`Objective.activate`, :meth:`~Objective.pause` and
:meth:`~Objective.archive`, and an archived objective stays archived.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import numpy as np
import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from decisioning.actions import ALL_SLOTS, Action, ActionSpace, Slot
from decisioning.channels import CONTACT_CHANNELS, DEFAULT_COSTS, Channel
from decisioning.errors import Conflict, InvalidInput
from decisioning.holdout import in_holdout
from decisioning.records import EventType
from decisioning.segment import Segment, check_segment_syntax

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$", max_length=64)]
_T = TypeVar("_T")
Status = Literal["draft", "active", "paused", "archived"]
#: fields a new version cannot set: they are the record's identity and history
_FIXED = ("id", "version", "created_at", "updated_at", "status")
_OUTCOME_WORDS: dict[EventType, str] = {
    EventType.DELIVERED: "deliveries",
    EventType.PURCHASE: "purchases",
    EventType.CANCEL: "cancellations",
    EventType.SUPPORT_TICKET_OPENED: "support tickets",
    EventType.SUPPORT_TICKET_CLOSED: "closed support tickets",
    EventType.IDENTIFY: "sign-ins",
    EventType.SUBSCRIBE: "subscriptions",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _num(x: float) -> str:
    return f"{round(x, 4):g}"


class Outcome(BaseModel):
    """The event that counts as a conversion: its type, and optionally category and value."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_type: EventType
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None
    min_value: float | None = Field(default=None, ge=0)

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (an :class:`~decisioning.records.Event` or a mapping) is this outcome."""
        get = event.get if isinstance(event, Mapping) else lambda k: getattr(event, k, None)
        if get("type") != self.event_type:
            return False
        if self.category is not None and get("category") != self.category:
            return False
        value = get("value")
        return self.min_value is None or (value is not None and value >= self.min_value)

    def describe(self) -> str:
        words = _OUTCOME_WORDS.get(self.event_type, f"{self.event_type.value.replace('_', ' ')}s")
        category = f"{self.category} " if self.category else ""
        least = f" of at least {_num(self.min_value)}" if self.min_value is not None else ""
        return f"{category}{words}{least}"


class FatiguePenalties(BaseModel):
    """What an unsubscribe or a complaint caused by a contact costs, in the objective's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    unsubscribe: float = Field(default=5.0, ge=0)
    complaint: float = Field(default=10.0, ge=0)


@lru_cache(maxsize=256)
def _action_space(channels: tuple[Channel, ...], slots: tuple[Slot, ...]) -> ActionSpace:
    return ActionSpace.build(channels, slots)


class ObjectiveSpec(BaseModel):
    """The content of an objective, as the marketer writes it (no id, version or status)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=True
    )

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    kind: Literal["increase", "reduce"] = "increase"
    outcome: Outcome
    value_per_conversion: float | None = Field(default=None, ge=0)
    value_from_event: bool = False
    attribution_window_days: float = Field(default=7.0, gt=0, le=365)
    segment: str = Field(default="", max_length=2000)
    target_lift: float = Field(default=0.10, gt=0, le=10)
    horizon: date | None = None
    budget_per_period: float | None = Field(default=None, gt=0)
    budget_period: Literal["day", "week", "month"] = "month"
    holdout_fraction: float = Field(default=0.1, ge=0, lt=1)
    priority: int = Field(default=0, ge=-1000, le=1000)
    channels: tuple[Channel, ...] = CONTACT_CHANNELS
    slots: tuple[Slot, ...] = ALL_SLOTS
    channel_costs: dict[Channel, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    fatigue_penalties: FatiguePenalties = Field(default_factory=FatiguePenalties)
    #: overrides of the contact policy settings (see decisioning.guardrails)
    guardrails: dict[str, Any] = Field(default_factory=dict)

    @field_validator("segment")
    @classmethod
    def _check_segment(cls, text: str, info: ValidationInfo) -> str:
        fields = (info.context or {}).get("fields")
        if fields is None:
            check_segment_syntax(text)
        else:
            Segment.parse(text, fields)
        return text

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if Channel.NONE in channels:
            raise ValueError("list contact channels only; doing nothing is always allowed")
        return _unique(channels, "channel")

    @field_validator("slots")
    @classmethod
    def _check_slots(cls, slots: tuple[Slot, ...]) -> tuple[Slot, ...]:
        return _unique(slots, "slot")

    @field_validator("channel_costs")
    @classmethod
    def _check_costs(cls, costs: dict[Channel, float]) -> dict[Channel, float]:
        if Channel.NONE in costs:
            raise ValueError("doing nothing costs nothing; set costs of contact channels only")
        return costs

    @field_validator("guardrails")
    @classmethod
    def _check_guardrails(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        # Imported here: the contact policy is a sibling module that may come to use objectives.
        from decisioning.guardrails import ContactPolicySettings

        ContactPolicySettings().merged(overrides)
        return overrides

    @model_validator(mode="after")
    def _check_together(self, info: ValidationInfo) -> Self:
        if self.value_per_conversion is None and not self.value_from_event:
            raise ValueError("value_per_conversion is required unless value_from_event is true")
        # checked on what is registered or edited (validated with a context), not on the
        # documents stored before the rule, which still load
        if self.kind == "reduce" and self.value_from_event and info.context is not None:
            raise ValueError(
                "value_from_event: a reduction's outcome is an event that does not happen, "
                "so it has no value to read; give value_per_conversion instead"
            )
        if self.kind == "reduce" and self.target_lift >= 1:
            raise ValueError(
                f"target_lift {self.target_lift:g}: a reduction is below 1 (0.1 = 10% fewer)"
            )
        return self

    # -- validation with a field catalogue ---------------------------------------------------

    @classmethod
    def validate_against(
        cls, data: Mapping[str, Any] | BaseModel, fields: Mapping[str, str] | None = None
    ) -> Self:
        """``data`` validated as this model, its segment checked against ``fields``.

        Raises ``InvalidInput`` naming each wrong field (``outcome.event_type: ...``).
        """
        if isinstance(data, BaseModel):
            data = data.model_dump()
        try:
            return cls.model_validate(data, context={"fields": fields})
        except ValidationError as exc:
            name = data.get("id") or data.get("name") if isinstance(data, Mapping) else None
            what = f"objective {name!r}" if name else "objective"
            raise InvalidInput(explain(exc, what)) from None

    def segment_for(self, fields: Mapping[str, str] | None = None) -> Segment:
        """The parsed segment, checked against ``fields`` (default: behavioural features only)."""
        return Segment.parse(self.segment, fields)

    # -- actions, costs and conversions ------------------------------------------------------

    def action_space(self) -> ActionSpace:
        """Do nothing, then every allowed channel at every allowed slot."""
        return _action_space(self.channels, self.slots)

    def cost_of(self, channel: Channel | str) -> float:
        """What one contact on ``channel`` costs for this objective (doing nothing: 0)."""
        channel = Channel(channel)
        if channel is Channel.NONE:
            return 0.0
        return float(self.channel_costs.get(channel, DEFAULT_COSTS[channel]))

    def costs(self, actions: ActionSpace | Iterable[Action | str]) -> np.ndarray:
        """The cost of each action, in order, shape ``(n_actions,)``."""
        return np.array(
            [
                self.cost_of((Action.from_key(a) if isinstance(a, str) else a).channel)
                for a in actions
            ],
            dtype=float,
        )

    def is_conversion(self, event: Any) -> bool:
        """Whether ``event`` is this objective's outcome."""
        return self.outcome.matches(event)

    def conversion_value(self, event: Any = None) -> float:
        """What one conversion is worth: the event's value if asked for and given, else the fixed one."""
        if self.value_from_event and event is not None:
            value = (
                event.get("value") if isinstance(event, Mapping) else getattr(event, "value", None)
            )
            if value is not None and math.isfinite(value):
                return float(value)
        return float(self.value_per_conversion or 0.0)

    @property
    def values_its_outcome(self) -> bool:
        """Whether a conversion can be valued: a reduction reads no event's value, so it needs
        ``value_per_conversion`` (a version stored before that was required may lack it)."""
        return self.kind != "reduce" or self.value_per_conversion is not None

    @property
    def attribution_window(self) -> timedelta:
        return timedelta(days=self.attribution_window_days)

    def describe(self) -> str:
        """One line in the marketer's words: what, by how much, for whom, worth what, at what cost."""
        verb = "Increase" if self.kind == "increase" else "Reduce"
        until = f", until {self.horizon.isoformat()}" if self.horizon else ""
        who = "all customers" if self.segment.lower() in ("", "all") else self.segment
        if self.value_from_event:
            fixed = self.value_per_conversion
            worth = "the event's value" + (f" ({_num(fixed)} if none)" if fixed else "")
        else:
            worth = f"{_num(self.value_per_conversion or 0.0)} each"
        budget = (
            f"budget {_num(self.budget_per_period)} per {self.budget_period}"
            if self.budget_per_period is not None
            else "no budget limit"
        )
        return (
            f"{verb} {self.outcome.describe()} by {_num(self.target_lift * 100)}% among {who}"
            f" within {_num(self.attribution_window_days)} days of a contact, worth {worth};"
            f" {budget}, {_num(self.holdout_fraction * 100)}% holdout{until}."
        )

    def to_objective(
        self, objective_id: str | None = None, *, fields: Mapping[str, str] | None = None
    ) -> Objective:
        """A new draft objective (version 1) with this content; the id defaults to the name's slug."""
        data = {**self.model_dump(), "id": objective_id or slugify(self.name)}
        return Objective.validate_against(data, fields)


class Objective(ObjectiveSpec):
    """A registered objective: its content plus id, version and lifecycle status."""

    id: Slug
    status: Status = "draft"
    version: int = Field(default=1, ge=1)
    created_at: AwareDatetime = Field(default_factory=_now)
    updated_at: AwareDatetime | None = None

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.astimezone(UTC)

    def with_changes(self, *, fields: Mapping[str, str] | None = None, **changes: Any) -> Objective:
        """A new version with ``changes`` applied and validated again (status kept).

        Raises ``Conflict`` on an archived objective and ``InvalidInput`` on an unknown or
        fixed field or an invalid value.
        """
        if self.status == "archived":
            raise Conflict(f"objective {self.id!r} is archived; create a new objective instead")
        if not changes:
            raise InvalidInput(f"objective {self.id!r}: no changes given")
        for key in changes:
            if key in _FIXED:
                raise InvalidInput(f"objective {self.id!r}: {key!r} cannot be changed in an edit")
            if key not in ObjectiveSpec.model_fields:
                known = ", ".join(ObjectiveSpec.model_fields)
                raise InvalidInput(
                    f"objective {self.id!r}: unknown field {key!r} (fields: {known})"
                )
        data = {**self.model_dump(), **changes}
        data.update(version=self.version + 1, updated_at=_now())
        return Objective.validate_against(data, fields)

    def _moved(self, status: Status) -> Objective:
        if status == self.status:
            return self
        return self.model_copy(update={"status": status, "updated_at": _now()})

    def activate(self) -> Objective:
        """This objective, active (from draft or paused)."""
        if self.status == "archived":
            raise Conflict(f"objective {self.id!r} is archived and cannot be activated again")
        return self._moved("active")

    def pause(self) -> Objective:
        """This objective, paused (from active)."""
        if self.status in ("draft", "archived"):
            raise Conflict(f"objective {self.id!r} is {self.status}; only an active one can pause")
        return self._moved("paused")

    def archive(self) -> Objective:
        """This objective, archived for good."""
        return self._moved("archived")

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def is_live(self, on: date) -> bool:
        """Whether the objective decides on ``on``: active and its horizon not passed."""
        return self.is_active and (self.horizon is None or on <= self.horizon)

    def in_holdout(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is in this objective's holdout (never contacted for it)."""
        return in_holdout(customer_id, self.id, self.holdout_fraction)


def _unique(items: tuple[_T, ...], what: str) -> tuple[_T, ...]:
    if not items:
        raise ValueError(f"at least one {what} is needed")
    repeated = sorted({str(i) for i in items if items.count(i) > 1})
    if repeated:
        raise ValueError(f"{what} listed more than once: {', '.join(repeated)}")
    return items


def slugify(name: str) -> str:
    """An id made of the name: lower case ASCII words joined by ``_`` (``Premium upsell``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:64].strip("_")
    if not slug:
        raise InvalidInput(f"cannot make an id from the name {name!r}; give an id")
    return slug


def explain(exc: ValidationError, what: str) -> str:
    """A validation error as one line per wrong field: ``what: field: problem``."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{what}: {where}: {message}" if where else f"{what}: {message}")
    return "\n".join(lines)


def load_objectives_yaml(
    path: str | Path, *, fields: Mapping[str, str] | None = None
) -> list[Objective]:
    """The objectives in a YAML file holding one objective or a list of them.

    An objective without ``id`` gets the slug of its name. With ``fields``, segments are checked
    against that catalogue. Raises ``InvalidInput`` naming the file, the objective and the field.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{path}: not valid YAML{where}: {exc}") from None
    items = [doc] if isinstance(doc, Mapping) else doc
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"{path}: expected an objective (a mapping) or a list of them")
    loaded: list[Objective] = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{path}: item {i} is a {type(item).__name__}, not an objective")
        data = dict(item)
        if "id" not in data and isinstance(data.get("name"), str):
            data["id"] = slugify(data["name"])
        try:
            loaded.append(Objective.validate_against(data, fields))
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: item {i}: {exc}") from None
    ids = [o.id for o in loaded]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInput(f"{path}: objective id listed more than once: {', '.join(repeated)}")
    return loaded
