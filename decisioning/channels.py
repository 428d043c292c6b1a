"""Marketing channels, which of them the brand owns, and what a contact costs on each."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Where a message goes; ``none`` is the decision to do nothing."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WHATSAPP = "whatsapp"
    PAID_SOCIAL = "paid_social"
    NONE = "none"


#: Channels the brand owns: cheap, and tried before paid media (the cost waterfall).
OWNED_CHANNELS: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WHATSAPP)
#: Channels bought per contact.
PAID_CHANNELS: tuple[Channel, ...] = (Channel.PAID_SOCIAL,)
#: Every channel that actually contacts the customer.
CONTACT_CHANNELS: tuple[Channel, ...] = OWNED_CHANNELS + PAID_CHANNELS
#: Channels that need the customer's consent.
CONSENT_CHANNELS: tuple[Channel, ...] = OWNED_CHANNELS

#: Default cost of one contact, in the objective's currency; objectives may override them.
DEFAULT_COSTS: dict[Channel, float] = {
    Channel.EMAIL: 0.001,
    Channel.SMS: 0.05,
    Channel.PUSH: 0.0,
    Channel.WHATSAPP: 0.03,
    Channel.PAID_SOCIAL: 0.50,
    Channel.NONE: 0.0,
}


def parse_channel(value: str) -> Channel:
    """The channel named ``value``, or an error listing the valid names."""
    try:
        return Channel(value)
    except ValueError:
        valid = ", ".join(c.value for c in Channel)
        raise ValueError(f"unknown channel {value!r} (expected one of: {valid})") from None
