"""Building blocks of the API schemas: checked ids, text, moments and the request context.

Every string the API stores is checked to be storable: no control characters (PostgreSQL
rejects NUL) and no lone surrogates (not encodable as UTF-8). Every moment must carry a
timezone, is converted to UTC and must lie between 1900 and 2200.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

_FIRST_YEAR, _LAST_YEAR = 1900, 2200
#: largest money amount the API takes (event values, rewards): sums over a customer's history
#: and a report's squares stay finite
MAX_AMOUNT = 1e12


def _storable(text: str, *, newlines: bool = False) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains characters that are not valid Unicode text") from None
    allowed = "\n\r\t" if newlines else ""
    if any(ord(c) < 32 and c not in allowed for c in text) or "\x7f" in text:
        raise ValueError("contains control characters")
    return text


def _storable_multiline(text: str) -> str:
    return _storable(text, newlines=True)


def _utc(moment: datetime) -> datetime:
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"must lie between {_FIRST_YEAR} and {_LAST_YEAR}") from None
    if not _FIRST_YEAR <= moment.year <= _LAST_YEAR:
        raise ValueError(f"must lie between {_FIRST_YEAR} and {_LAST_YEAR}")
    return moment


#: an identifier given by the caller (customer, event, decision)
Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_storable),
]
#: an objective id: lower-case words joined by ``_`` or ``-``
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$", max_length=64)]
#: one line of text
Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(_storable)]
#: free text, line breaks allowed
Paragraph = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_storable_multiline)]
#: a timezone-aware moment, converted to UTC
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]
ContextKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_storable)
]
ContextValue = StrictBool | float | Line
#: what the caller knows about the moment (device, page, weather...), passed to the policy
RequestContext = Annotated[
    dict[ContextKey, ContextValue],
    Field(max_length=50, description="key-value context of the request, at most 50 entries"),
]


class RequestModel(BaseModel):
    """A request body: unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ResponseModel(BaseModel):
    """A response body."""

    model_config = ConfigDict(from_attributes=True)
