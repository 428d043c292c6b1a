"""Contact pressure: a fatigue score that rises with every contact and decays with time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from decisioning.channels import Channel

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class FatigueSettings:
    """How much each channel weighs on the customer, and how fast that wears off."""

    half_life_days: float = 3.0
    channel_weights: dict[Channel, float] = field(
        default_factory=lambda: {
            Channel.EMAIL: 1.0,
            Channel.PUSH: 0.8,
            Channel.SMS: 1.5,
            Channel.WHATSAPP: 1.5,
            Channel.PAID_SOCIAL: 0.5,
        }
    )

    @property
    def tau(self) -> float:
        return self.half_life_days * DAY / math.log(2)


class DecayedCount:
    """A count whose past increments fade exponentially; adding out of order gives the same value.

    >>> c = DecayedCount(tau=DAY)
    >>> c.add(0.0); c.add(DAY)
    >>> round(c.value_at(DAY), 4)
    1.3679
    """

    __slots__ = ("tau", "value", "ref")

    def __init__(self, tau: float, value: float = 0.0, ref: float = 0.0) -> None:
        self.tau, self.value, self.ref = tau, value, ref

    def add(self, ts: float, weight: float = 1.0) -> None:
        if ts >= self.ref:
            self.value = self.value * math.exp(-(ts - self.ref) / self.tau) + weight
            self.ref = ts
        else:
            self.value += weight * math.exp(-(self.ref - ts) / self.tau)

    def value_at(self, ts: float) -> float:
        if self.value == 0.0:
            return 0.0
        if ts >= self.ref:
            return self.value * math.exp(-(ts - self.ref) / self.tau)
        return self.value  # a view asked before its last update sees that update: never in replay

    def to_list(self) -> list[float]:
        return [self.value, self.ref]
