"""Contact policy settings: the hard rules an objective sets, checked and merged with overrides.

Cap windows are written like ``24h`` or ``7d`` (:func:`parse_window`); an objective's overrides
lay over the defaults key by key (:meth:`ContactPolicySettings.merged`). Applying the settings
to a customer is :class:`decisioning.guardrails.ContactPolicy`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from decisioning.channels import Channel
from decisioning.customer_view import WINDOW_30D
from decisioning.errors import InvalidInput
from decisioning.fatigue import DAY

HOUR = 3600.0
_WINDOW = re.compile(r"^(\d+)([hd])$")


def parse_window(name: str) -> tuple[float, str]:
    """Seconds and plain words of a cap window written like ``24h`` or ``7d``."""
    match = _WINDOW.match(name.strip().lower())
    if match is None:
        raise ValueError(
            f"cap window {name!r} is not a number of hours or days, like '24h' or '7d'"
        )
    count, unit = int(match[1]), match[2]
    seconds = count * (HOUR if unit == "h" else DAY)
    if not 0 < seconds <= WINDOW_30D:
        raise ValueError(
            f"cap window {name!r} must be between 1h and 30d (30 days of contacts kept)"
        )
    words = f"{count} {'hour' if unit == 'h' else 'day'}{'' if count == 1 else 's'}"
    return seconds, words


def _check_caps(table: Mapping[str, int]) -> Mapping[str, int]:
    for window, cap in table.items():
        parse_window(window)
        if cap < 0:
            raise ValueError(f"cap for window {window!r} is {cap}; caps are 0 or more")
    return table


class ContactPolicySettings(BaseModel):
    """The hard rules every decision obeys, whatever the model prefers.

    ``caps`` limit messages across all channels per window (``{"24h": 1, "7d": 3}``),
    ``channel_caps`` per channel; a cap of 0 switches a channel off. Quiet hours are local to
    the customer; in ``defer`` mode a send time inside them moves to their end, unless that is
    more than ``max_defer_hours`` away. ``waterfall_hours=None`` lets paid media go without an
    owned-channel contact first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    caps: dict[str, int] = Field(default_factory=lambda: {"24h": 1, "7d": 3, "30d": 8})
    channel_caps: dict[Channel, dict[str, int]] = Field(
        default_factory=lambda: {
            Channel.EMAIL: {"7d": 2},
            Channel.SMS: {"7d": 1},
            Channel.WHATSAPP: {"7d": 1},
            Channel.PUSH: {"7d": 3},
            Channel.PAID_SOCIAL: {"7d": 2},
        }
    )
    quiet_hours: tuple[time, time] | None = (time(21), time(8))
    quiet_hours_mode: Literal["defer", "block"] = "defer"
    max_defer_hours: float = Field(default=14.0, gt=0)
    purchase_cooldown_hours: float = Field(default=24.0, ge=0)
    category_cooldown_days: float = Field(default=7.0, ge=0, le=30)
    waterfall_hours: float | None = Field(default=48.0, ge=0)
    complaint_days: float = Field(default=30.0, ge=0, le=30)

    @field_validator("caps")
    @classmethod
    def _valid_caps(cls, value: dict[str, int]) -> dict[str, int]:
        _check_caps(value)
        return value

    @field_validator("channel_caps")
    @classmethod
    def _valid_channel_caps(
        cls, value: dict[Channel, dict[str, int]]
    ) -> dict[Channel, dict[str, int]]:
        for channel, table in value.items():
            if channel is Channel.NONE:
                raise ValueError("doing nothing has no cap")
            _check_caps(table)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: tuple[time, time] | None) -> tuple[time, time] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("quiet hours start and end at the same time; use null for none")
        return value

    def merged(self, overrides: Mapping[str, Any]) -> ContactPolicySettings:
        """These settings with an objective's ``overrides`` laid over them.

        Mappings merge key by key (``{"channel_caps": {"sms": {"7d": 2}}}`` changes only the sms
        weekly cap, and an empty mapping changes nothing); ``None`` inside a mapping removes that
        entry, ``None`` for a whole setting turns it off where it allows that (quiet hours,
        waterfall).
        """
        fields = type(self).model_fields
        data = self.model_dump()
        for key, value in overrides.items():
            if key not in fields:
                valid = ", ".join(fields)
                raise InvalidInput(
                    f"unknown contact policy setting {key!r} (expected one of: {valid})"
                )
            data[key] = _overlay(data[key], value)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise InvalidInput(f"contact policy setting {where!r}: {error['msg']}") from None


def _overlay(base: Any, value: Any) -> Any:
    if isinstance(base, dict) and isinstance(value, Mapping):
        out = dict(base)
        for key, item in value.items():
            if item is None:
                out.pop(key, None)
            else:
                out[key] = _overlay(out.get(key), item)
        return out
    return value
