"""Logged bandit examples as typed columns, and the spec of the features a model was fitted on.

A :class:`BanditBatch` holds many :class:`~decisioning.policy.DecisionContext` side by side
(customer features, attributes, per-action features, eligibility, costs) with, when they were
logged, the action taken, its reward and its propensity. ``reward`` is the gross value of the
outcome (conversion or revenue) before the contact's cost; ``costs`` are known per action, so a
learner nets them out itself. A :class:`FeatureSpec` records what a model was fitted on
(feature names, attribute categories, action keys) and is saved with it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from numbers import Real
from operator import itemgetter
from typing import Any

import numpy as np

from decisioning.actions import Action, ActionSpace
from decisioning.channels import DEFAULT_COSTS
from decisioning.errors import InvalidInput
from decisioning.features import ACTION_FEATURES
from decisioning.identity_cache import IdentityCache
from decisioning.policy import DecisionContext


def default_costs(actions: ActionSpace) -> np.ndarray:
    """The default cost of each action (its channel's ``DEFAULT_COSTS``), shape ``(n_actions,)``."""
    return np.array([DEFAULT_COSTS[a.channel] for a in actions], dtype=float)


def context_costs(context: DecisionContext) -> np.ndarray:
    """The context's own costs, or the channel defaults when the caller gave none."""
    if context.costs is None:
        return default_costs(context.actions)
    return np.asarray(context.costs, dtype=float)


def _optional(values: Any, n: int, name: str, dtype: type) -> np.ndarray | None:
    if values is None:
        return None
    arr: np.ndarray = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise InvalidInput(f"{name} has shape {arr.shape}, expected ({n},)")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class BanditBatch:
    """Many decision contexts, and optionally their logged action, reward and propensity.

    Shapes: ``customer`` (n, n_customer_features) float32, ``attributes`` name -> (n,) object
    array of raw values (None where missing), ``action_features`` (n, n_actions,
    n_action_features) float32, ``eligible`` (n, n_actions) bool, ``costs`` (n, n_actions);
    ``action`` (n,) int, ``reward`` and ``pscore`` (n,) float, or None when not logged.
    """

    actions: ActionSpace
    customer_names: tuple[str, ...]
    action_feature_names: tuple[str, ...]
    customer: np.ndarray
    attributes: dict[str, np.ndarray]
    action_features: np.ndarray
    eligible: np.ndarray
    costs: np.ndarray
    customer_ids: np.ndarray
    now: np.ndarray
    action: np.ndarray | None = None
    reward: np.ndarray | None = None
    pscore: np.ndarray | None = None
    requests: tuple[dict[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        n, n_actions = len(self.customer), len(self.actions)
        expected = {
            "customer": (n, len(self.customer_names)),
            "action_features": (n, n_actions, len(self.action_feature_names)),
            "eligible": (n, n_actions),
            "costs": (n, n_actions),
            "customer_ids": (n,),
            "now": (n,),
        }
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise InvalidInput(f"BanditBatch.{name} has shape {got}, expected {shape}")
        for name, column in self.attributes.items():
            if column.shape != (n,):
                raise InvalidInput(f"attribute {name!r} has shape {column.shape}, expected ({n},)")
        if n and not self.eligible[:, 0].all():
            raise InvalidInput("doing nothing (action 0) must be eligible in every row")
        if (
            self.action is not None
            and n
            and (self.action.min() < 0 or self.action.max() >= n_actions)
        ):
            raise InvalidInput(f"action indices must lie in [0, {n_actions})")
        if self.reward is not None and not np.all(np.isfinite(self.reward)):
            raise InvalidInput("reward has non-finite values")
        if self.pscore is not None and np.any(~(self.pscore > 0) | (self.pscore > 1)):
            raise InvalidInput("pscore must lie in (0, 1]")

    @classmethod
    def from_contexts(
        cls,
        contexts: Sequence[DecisionContext],
        action: Sequence[int | str | Action] | np.ndarray | None = None,
        reward: Sequence[float] | np.ndarray | None = None,
        pscore: Sequence[float] | np.ndarray | None = None,
    ) -> BanditBatch:
        """Stack decision contexts (one action space) into columns; ``action`` may be keys."""
        if not contexts:
            raise InvalidInput("cannot build a batch from no contexts")
        first = contexts[0]
        space = first.actions
        c_names = tuple(first.customer)
        row_of = itemgetter(*c_names) if len(c_names) > 1 else (lambda d: [d[k] for k in c_names])
        f_names = ACTION_FEATURES
        n, n_actions = len(contexts), len(space)
        for i, ctx in enumerate(contexts):
            if ctx.actions is not space and ctx.actions != space:
                raise InvalidInput(f"context {i} uses another action space than context 0")
        # each column stacked in one call; a context that does not fit is then looked for
        try:
            customer = np.array([row_of(c.customer) for c in contexts], dtype=np.float32)
        except KeyError:
            i, missing = next(
                (i, k) for i, c in enumerate(contexts) for k in c_names if k not in c.customer
            )
            raise InvalidInput(f"context {i} lacks feature {missing!r}") from None
        customer = customer.reshape(n, len(c_names))
        shape = (n_actions, len(f_names))
        feats: np.ndarray
        try:
            feats = np.array([c.action_features for c in contexts], dtype=np.float32)
        except (TypeError, ValueError):
            feats = np.empty(0)
        if feats.shape != (n, *shape):
            for i, c in enumerate(contexts):
                if np.shape(c.action_features) != shape:
                    raise InvalidInput(
                        f"context {i} has action features of shape "
                        f"{np.shape(c.action_features)}, expected {shape} ({n_actions} actions)"
                    )
            raise InvalidInput("action features must be numbers")
        eligible = np.array([c.eligible for c in contexts], dtype=bool).reshape(n, n_actions)
        shared = first.costs
        if shared is not None and all(c.costs is shared for c in contexts):
            costs = np.tile(context_costs(first), (n, 1))  # one objective's costs: the usual
        else:
            costs = np.array([context_costs(c) for c in contexts], dtype=float)
        costs = costs.reshape(n, n_actions)
        attr_names = list(dict.fromkeys(k for c in contexts for k in c.attributes))
        attrs = {}
        for k in attr_names:
            attrs[k] = column = np.empty(n, dtype=object)
            column[:] = [c.attributes.get(k) for c in contexts]
        if action is not None:
            action = np.array(
                [a if isinstance(a, int | np.integer) else space.index(a) for a in action],
                dtype=np.int64,
            )
        return cls(
            actions=space,
            customer_names=c_names,
            action_feature_names=f_names,
            customer=customer,
            attributes=attrs,
            action_features=feats,
            eligible=eligible,
            costs=costs,
            customer_ids=np.array([c.customer_id for c in contexts], dtype=object),
            now=np.array([c.now for c in contexts], dtype=float),
            action=_optional(action, n, "action", np.int64),
            reward=_optional(reward, n, "reward", float),
            pscore=_optional(pscore, n, "pscore", float),
            requests=tuple(dict(c.request) for c in contexts),
        )

    def __len__(self) -> int:
        return len(self.customer)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def has_feedback(self) -> bool:
        """Whether the batch carries logged actions, rewards and propensities."""
        return self.action is not None and self.reward is not None and self.pscore is not None

    def feedback(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(action, reward, pscore)``; raises if the batch was not logged."""
        if self.action is None or self.reward is None or self.pscore is None:
            missing = [k for k in ("action", "reward", "pscore") if getattr(self, k) is None]
            raise InvalidInput(f"the batch has no logged {', '.join(missing)}")
        return self.action, self.reward, self.pscore

    def select(self, indices: Sequence[int] | np.ndarray) -> BanditBatch:
        """The rows at ``indices`` (integer positions or a boolean mask), as a new batch."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return replace(
            self,
            customer=self.customer[idx],
            attributes={k: v[idx] for k, v in self.attributes.items()},
            action_features=self.action_features[idx],
            eligible=self.eligible[idx],
            costs=self.costs[idx],
            customer_ids=self.customer_ids[idx],
            now=self.now[idx],
            action=take(self.action),
            reward=take(self.reward),
            pscore=take(self.pscore),
            requests=tuple(self.requests[i] for i in idx) if self.requests else (),
        )

    def context(self, i: int) -> DecisionContext:
        """Row ``i`` as the decision context a policy sees online."""
        attrs = {k: v[i] for k, v in self.attributes.items() if v[i] is not None}
        return DecisionContext(
            customer_id=str(self.customer_ids[i]),
            now=float(self.now[i]),
            actions=self.actions,
            customer=dict(zip(self.customer_names, self.customer[i].tolist(), strict=True)),
            attributes=attrs,
            action_features=_in_context_order(self.action_features[i], self.action_feature_names),
            eligible=self.eligible[i].copy(),
            request=dict(self.requests[i]) if self.requests else {},
            costs=self.costs[i].copy(),
        )


_ACTION_KEYS = IdentityCache[tuple[str, ...]](limit=256)


def action_keys(actions: ActionSpace) -> tuple[str, ...]:
    """``actions.keys``, remembered per action space object (checked on every decision)."""
    hit = _ACTION_KEYS.get(actions)
    return hit if hit is not None else _ACTION_KEYS.put(actions, actions.keys)


def is_number(value: Any) -> bool:
    """A real number and not a bool: what makes an attribute numeric rather than categorical."""
    return isinstance(value, Real) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What a fitted model expects: feature names, attribute categories and action keys.

    Numeric attributes are those whose every value seen at fit time was a number; the others
    are categorical, with the categories seen then (the most frequent ``max_categories``).
    Attributes are ordered by name, so the encoding does not depend on the order of the rows.
    """

    customer: tuple[str, ...]
    numeric_attributes: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...]
    action_features: tuple[str, ...]
    action_keys: tuple[str, ...]

    @classmethod
    def from_batch(cls, batch: BanditBatch, *, max_categories: int = 32) -> FeatureSpec:
        numeric: list[str] = []
        categories: list[tuple[str, tuple[str, ...]]] = []
        for name, column in sorted(batch.attributes.items()):
            present = [v for v in column.tolist() if v is not None]
            if present and all(is_number(v) for v in present):
                numeric.append(name)
            else:
                counts = Counter(str(v) for v in present)
                top = sorted(counts, key=lambda c: (-counts[c], c))[:max_categories]
                categories.append((name, tuple(sorted(top))))
        return cls(
            customer=batch.customer_names,
            numeric_attributes=tuple(numeric),
            categories=tuple(categories),
            action_features=batch.action_feature_names,
            action_keys=batch.actions.keys,
        )

    def check(self, batch: BanditBatch) -> None:
        """Raise if ``batch`` cannot be encoded for a model fitted on this spec."""
        if (
            batch.customer_names == self.customer
            and batch.action_feature_names == self.action_features
            and action_keys(batch.actions) == self.action_keys
        ):
            return
        if action_keys(batch.actions) != self.action_keys:
            raise InvalidInput(
                "the batch's action space differs from the model's: "
                f"{len(batch.actions)} actions vs {len(self.action_keys)}"
            )
        for kind, need, have in (
            ("customer feature", self.customer, batch.customer_names),
            ("action feature", self.action_features, batch.action_feature_names),
        ):
            missing = sorted(set(need) - set(have))
            if missing:
                raise InvalidInput(f"the batch lacks {kind}s the model needs: {missing}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # Pairs, not a mapping: their order is the design matrix's column order.
        out["categories"] = [[name, list(cats)] for name, cats in self.categories]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        try:
            return cls(
                customer=tuple(data["customer"]),
                numeric_attributes=tuple(data["numeric_attributes"]),
                categories=tuple((k, tuple(v)) for k, v in data["categories"]),
                action_features=tuple(data["action_features"]),
                action_keys=tuple(data["action_keys"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(f"not a feature spec: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_dict(json.loads(text))


def _in_context_order(features: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Action features reordered into ``ACTION_FEATURES`` columns, as contexts hold them."""
    if tuple(names) == ACTION_FEATURES:
        return features.astype(float)
    pos = {k: i for i, k in enumerate(names)}
    return features[:, [pos[k] for k in ACTION_FEATURES]].astype(float)
