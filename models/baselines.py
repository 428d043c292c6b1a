"""Policies to beat, and the rule-based fallback: random, do nothing, one channel, the waterfall.

Every policy here and in :mod:`models.greedy` and :mod:`models.vw_bandit` derives from
:class:`BasePolicy`: a ``name``, a ``seed``, ``action_distribution(context)``,
``action_distributions(batch)`` (the same distributions for many contexts at once, for
off-policy evaluation and batch decisions), ``expected_values(context)`` (None without a value
model) and ``choose(context)``, a seeded draw that returns the action with its propensity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from decisioning.channels import Channel
from decisioning.errors import InvalidInput
from decisioning.policy import DecisionContext, draw, uniform
from models.encoding import BanditBatch


class BasePolicy(ABC):
    """What every policy shares: a name, a seed, a seeded choice and a batch of distributions."""

    name: str
    seed: int

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        """Probabilities over ``context.actions``: sum to 1, zero where not eligible."""
        return self.action_distributions(BanditBatch.from_contexts([context]))[0]

    @abstractmethod
    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        """The distribution of every context of ``batch``, shape (n, n_actions)."""

    def expected_values(self, context: DecisionContext) -> np.ndarray | None:
        """Expected net value of each action; None for a policy without a value model."""
        return None

    def choose(
        self, context: DecisionContext, rng: np.random.Generator | None = None
    ) -> tuple[int, float]:
        """Draw an action index from the distribution; returns it with its propensity.

        Without ``rng``, draws from the policy's own generator seeded with ``seed``, so two
        policies built with the same seed make the same choices.
        """
        if rng is None:
            rng = self.__dict__.get("_rng")
            if rng is None:
                rng = self.__dict__["_rng"] = np.random.default_rng(self.seed)
        return draw(self.action_distribution(context), rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seed={self.seed})"


def _one_hot(index: np.ndarray, n_actions: int) -> np.ndarray:
    out = np.zeros((len(index), n_actions), dtype=float)
    out[np.arange(len(index)), index] = 1.0
    return out


class RandomPolicy(BasePolicy):
    """Uniform over the eligible actions: the exploration floor every learner must beat."""

    def __init__(self, *, seed: int = 0, name: str = "random") -> None:
        self.seed, self.name = seed, name

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        return uniform(np.asarray(context.eligible, dtype=bool))

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        e = batch.eligible.astype(float)
        return e / e.sum(axis=1, keepdims=True)


class DoNothingPolicy(BasePolicy):
    """Never contacts: the organic baseline that lift is measured against."""

    def __init__(self, *, seed: int = 0, name: str = "do_nothing") -> None:
        self.seed, self.name = seed, name

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        out = np.zeros(len(context.actions), dtype=float)
        out[0] = 1.0
        return out

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        return _one_hot(np.zeros(len(batch), dtype=np.int64), batch.n_actions)


class BestSingleChannelPolicy(BasePolicy):
    """Always the one channel@slot action with the best logged value; nothing where it is masked.

    ``fit`` estimates, by inverse propensity scoring, the value of each policy "take action a
    when eligible, otherwise do nothing" (reward net of the logged action's cost when
    ``subtract_costs``) and keeps the best contact action.
    """

    def __init__(
        self, *, subtract_costs: bool = True, seed: int = 0, name: str = "best_single_channel"
    ) -> None:
        self.subtract_costs = subtract_costs
        self.seed, self.name = seed, name

    def fit(self, batch: BanditBatch) -> BestSingleChannelPolicy:
        action, reward, pscore = batch.feedback()
        if batch.n_actions < 2:
            raise InvalidInput("the action space has no contact action to choose from")
        n, rows = len(batch), np.arange(len(batch))
        net = reward - batch.costs[rows, action] if self.subtract_costs else reward
        taken = np.zeros((n, batch.n_actions), dtype=bool)
        taken[rows, action] = True
        # The candidate policy for action a agrees with the log where it took a (a eligible)
        # or did nothing (a masked).
        agrees = (taken & batch.eligible) | (taken[:, [0]] & ~batch.eligible)
        values = (agrees * (net / pscore)[:, None]).mean(axis=0)
        best = 1 + int(np.argmax(values[1:]))
        self.values_ = pd.Series(values[1:], index=list(batch.actions.keys[1:]), name="ips_value")
        self.action_key_ = batch.actions.keys[best]
        return self

    def _index(self, keys: tuple[str, ...]) -> int:
        if not hasattr(self, "action_key_"):
            raise NotFittedError(f"{type(self).__name__} must be fitted before it decides")
        return keys.index(self.action_key_) if self.action_key_ in keys else 0

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        best = self._index(context.actions.keys)
        out = np.zeros(len(context.actions), dtype=float)
        out[best if context.eligible[best] else 0] = 1.0
        return out

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        best = self._index(batch.actions.keys)
        index = np.where(batch.eligible[:, best], best, 0)
        return _one_hot(index, batch.n_actions)


def _column(batch: BanditBatch, name: str, default: float) -> np.ndarray:
    if name in batch.customer_names:
        return batch.customer[:, batch.customer_names.index(name)].astype(float)
    return np.full(len(batch), default)


class WaterfallPolicy(BasePolicy):
    """The marketer's rule tree, and the safe fallback when no model is trained.

    1. Contacted on an owned channel less than ``recency_days`` ago: do nothing, except
       retarget once on paid social when that contact went unopened (``owned_unopened``), at
       least ``retarget_after_days`` have passed and paid social is eligible.
    2. Otherwise e-mail, or push when there is no e-mail consent (or no eligible e-mail), at
       the eligible slot whose send hour is nearest the customer's preferred hour
       (``default_hour`` when unknown); else do nothing.
    """

    def __init__(
        self,
        *,
        recency_days: float = 7.0,
        retarget_after_days: float = 1.0,
        default_hour: int = 19,
        seed: int = 0,
        name: str = "waterfall",
    ) -> None:
        self.recency_days = recency_days
        self.retarget_after_days = retarget_after_days
        self.default_hour = default_hour
        self.seed, self.name = seed, name

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        n, n_actions = len(batch), batch.n_actions
        channel = np.array([a.channel.value for a in batch.actions])
        since_owned = _column(batch, "days_since_owned_contact", 365.0)
        recent = since_owned < self.recency_days
        retarget = (
            recent
            & (_column(batch, "owned_unopened", 0.0) == 1.0)
            & (since_owned >= self.retarget_after_days)
            & (_column(batch, "paid_social_days_since_contact", 365.0) > since_owned)
        )
        email = batch.eligible & (channel == Channel.EMAIL.value)
        email &= (_column(batch, "consent_email", 1.0) > 0)[:, None]
        push = batch.eligible & (channel == Channel.PUSH.value)
        push &= (_column(batch, "consent_push", 1.0) > 0)[:, None]
        owned = np.where(email.any(axis=1)[:, None], email, push)
        paid = batch.eligible & (channel == Channel.PAID_SOCIAL.value)
        candidates = np.where(recent[:, None], paid & retarget[:, None], owned)
        penalty = self._timing_penalty(batch)
        best = np.argmin(np.where(candidates, penalty, np.inf), axis=1)
        index = np.where(candidates.any(axis=1), best, 0)
        return _one_hot(index, n_actions) if n else np.zeros((0, n_actions))

    def _timing_penalty(self, batch: BanditBatch) -> np.ndarray:
        """Hours between each action's send hour and the preferred hour; sooner breaks ties."""
        names = batch.action_feature_names
        feats = batch.action_features.astype(float)
        preferred = _column(batch, "preferred_hour", -1.0)
        target = np.where(preferred >= 0, preferred, float(self.default_hour))[:, None]
        hour = feats[:, :, names.index("send_hour")] if "send_hour" in names else target
        gap = np.abs(hour - target) % 24
        gap = np.minimum(gap, 24 - gap)
        delay = feats[:, :, names.index("send_delay_hours")] if "send_delay_hours" in names else 0.0
        return gap + np.clip(delay, 0, None) / 1000.0
