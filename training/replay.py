"""The history replay: every customer's events, sends and decisions in one time-ordered stream.

Each customer's history is folded through the same ``CustomerState`` and feature code the service
uses online, and every decision moment is turned into its features, eligibility and logged
action, from what happened strictly before it (point-in-time correct).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from decisioning.actions import Action, ActionSpace, Slot
from decisioning.channels import Channel
from decisioning.context import build_context
from decisioning.customer_view import CustomerState
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES, customer_features
from decisioning.guardrails import ContactPolicy
from decisioning.history_replay import epoch_seconds
from decisioning.objectives import Objective
from decisioning.segment import Segment, attribute_kinds, field_catalogue

_DECISION, _EVENT, _SEND = 0, 1, 2


class Replay:
    """The history of every customer, merged into one time-ordered stream."""

    def __init__(
        self,
        *,
        customers: pd.DataFrame,
        contacts: pd.DataFrame,
        events: pd.DataFrame,
        moments: pd.DataFrame,
    ) -> None:
        self.customers = customers.set_index("customer_id", drop=False)
        ids = self.customers.index.to_numpy()
        self.code = {cid: i for i, cid in enumerate(ids)}
        self.ids = ids
        # anonymous events go to the customer their anonymous id is later identified as
        anon_ids = events["anonymous_id"].fillna("").astype(str)
        links = events[(events["type"] == "identify") & (anon_ids != "")]
        self.anon_owner = dict(zip(links["anonymous_id"], links["customer_id"], strict=False))
        ev_owner = events["customer_id"].where(
            events["customer_id"].astype(str) != "", events["anonymous_id"].map(self.anon_owner)
        )
        self.events = events.assign(_owner=ev_owner)
        self.events = self.events[self.events["_owner"].isin(self.code)]
        sends = contacts[contacts["channel"] != Channel.NONE.value]
        self.sends = sends[sends["customer_id"].isin(self.code)]
        self.moments = moments[moments["customer_id"].isin(self.code)]
        self.unknown_customer_moments = len(moments) - len(self.moments)

    def _stream(self) -> tuple[np.ndarray, ...]:
        ev, se, mo = self.events, self.sends, self.moments
        cust = np.concatenate(
            [
                mo["customer_id"].map(self.code).to_numpy(np.int64),
                ev["_owner"].map(self.code).to_numpy(np.int64),
                se["customer_id"].map(self.code).to_numpy(np.int64),
            ]
        )
        ts = np.concatenate(
            [epoch_seconds(mo["ts"]), epoch_seconds(ev["ts"]), epoch_seconds(se["send_at"])]
        )
        kind = np.concatenate(
            [np.full(len(mo), _DECISION), np.full(len(ev), _EVENT), np.full(len(se), _SEND)]
        )
        row = np.concatenate([np.arange(len(mo)), np.arange(len(ev)), np.arange(len(se))])
        # decisions first at equal times: a decision sees only what happened strictly before
        order = np.lexsort((kind, ts, cust))
        return cust[order], ts[order], kind[order], row[order]

    def run(
        self,
        *,
        objective: Objective,
        actions: ActionSpace,
        policy: ContactPolicy,
        progress: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        cust, ts, kind, row = self._stream()
        ev, se, mo = self.events, self.sends, self.moments
        ev_type = ev["type"].to_numpy()
        ev_channel = ev["channel"].to_numpy()
        ev_value = ev["value"].to_numpy(dtype=float)
        ev_category = ev["category"].to_numpy()
        ev_anon = ev["anonymous_id"].to_numpy()
        ev_is_anon = (ev["customer_id"].astype(str) == "").to_numpy()
        se_channel = se["channel"].to_numpy()
        se_cost = _costs(se, objective)
        mo_channel = mo["channel"].to_numpy()
        mo_id = mo["contact_id"].to_numpy()
        mo_slot = mo["slot"].to_numpy() if "slot" in mo else np.full(len(mo), "now")
        mo_prop = mo["propensity"].to_numpy(dtype=float)
        mo_cost = _costs(mo, objective)
        base_costs = objective.costs(actions)
        fields = _segment_fields(self.customers)
        segment = Segment.parse(objective.segment or "", fields)
        category = objective.outcome.category if objective.kind == "increase" else None
        attr_cols = [c for c in self.customers.columns if c in fields and c not in _CORE_COLUMNS]

        n_max = len(mo)
        A, F, AF = len(actions), len(BEHAVIOUR_FEATURES), len(ACTION_FEATURES)
        out_customer = np.zeros((n_max, F), dtype=np.float32)
        out_af = np.zeros((n_max, A, AF), dtype=np.float32)
        out_eligible = np.zeros((n_max, A), dtype=bool)
        out_action = np.zeros(n_max, dtype=np.int64)
        out_pscore = np.full(n_max, np.nan)
        out_cost = np.zeros(n_max)
        out_ts = np.zeros(n_max)
        out_ids: list[str] = []
        out_decisions: list[str] = []
        out_attr_rows: list[int] = []
        skipped: dict[str, int] = {}
        index = {a.key: i for i, a in enumerate(actions)}

        state: CustomerState | None = None
        current = -1
        anon: dict[str, CustomerState] = {}
        n = 0
        for k in range(len(cust)):
            c = int(cust[k])
            if c != current:
                current = c
                state = _initial_state(self.customers.iloc[c])
                anon = {}
                if progress is not None:
                    progress(c)
            assert state is not None
            r = int(row[k])
            kd = kind[k]
            t = float(ts[k])
            if kd == _EVENT:
                etype = ev_type[r]
                if ev_is_anon[r]:
                    a = anon.setdefault(ev_anon[r], CustomerState(ev_anon[r]))
                    a.apply(ts=t, type=etype, channel=_opt(ev_channel[r]),
                            value=_optf(ev_value[r]), category=_opt(ev_category[r]))  # fmt: skip
                    continue
                if etype == "identify" and ev_anon[r] in anon:
                    state.merge(anon.pop(ev_anon[r]))
                state.apply(ts=t, type=etype, channel=_opt(ev_channel[r]),
                            value=_optf(ev_value[r]), category=_opt(ev_category[r]))  # fmt: skip
            elif kd == _SEND:
                state.apply_contact(ts=t, channel=se_channel[r], cost=float(se_cost[r]))
            else:
                reason = None
                key = Action(Channel(mo_channel[r]), Slot(mo_slot[r] or "now")).key
                if mo_channel[r] == Channel.NONE.value:
                    key = "none"
                if state.cancelled:
                    reason = "customer had cancelled"
                elif key not in index:
                    reason = f"action {key} not allowed by the objective"
                if reason is None:
                    customer_f = customer_features(state, t)
                    if not segment.matches({**customer_f, **state.attributes}):
                        reason = "customer outside the objective's segment"
                if reason is not None:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    continue
                context, _ = build_context(
                    state,
                    actions=actions,
                    now=t,
                    policy=policy,
                    costs=base_costs,
                    promoted_category=category,
                    customer=customer_f,
                )
                out_customer[n] = [customer_f[f] for f in BEHAVIOUR_FEATURES]
                out_af[n] = context.action_features
                out_eligible[n] = context.eligible
                out_action[n] = index[key]
                out_pscore[n] = mo_prop[r]
                out_cost[n] = mo_cost[r]
                out_ts[n] = t
                out_ids.append(self.ids[c])
                out_decisions.append(mo_id[r])
                out_attr_rows.append(c)
                n += 1
        if self.unknown_customer_moments:
            skipped["unknown customer"] = self.unknown_customer_moments
        attrs = self.customers.iloc[out_attr_rows][attr_cols].reset_index(drop=True)
        return {
            "customer_ids": np.array(out_ids, dtype=object),
            "decision_ids": np.array(out_decisions, dtype=object),
            "ts": out_ts[:n],
            "customer": out_customer[:n],
            "attributes": attrs,
            "action_features": out_af[:n],
            "eligible": out_eligible[:n],
            "costs": np.tile(base_costs, (n, 1)),
            "action": out_action[:n],
            "pscore": out_pscore[:n],
            "cost": out_cost[:n],
            "report": {"skipped": skipped},
        }


_CORE_COLUMNS = frozenset(
    {"customer_id", "signup_at", "timezone", "consent_email", "consent_sms", "consent_push",
     "consent_whatsapp"}
)  # fmt: skip


def _segment_fields(customers: pd.DataFrame) -> dict[str, str]:
    """The fields a segment may name: behavioural features and the customers' attribute columns."""
    return dict(field_catalogue(attribute_kinds(customers, exclude=_CORE_COLUMNS)))


def _costs(frame: pd.DataFrame, objective: Objective) -> np.ndarray:
    default = frame["channel"].map(lambda ch: objective.cost_of(Channel(ch))).to_numpy(float)
    if "cost" not in frame:
        return default
    logged = frame["cost"].to_numpy(dtype=float)
    return np.where(np.isnan(logged), default, logged)


def _initial_state(row: pd.Series) -> CustomerState:
    consents = {
        ch: bool(row[f"consent_{ch}"])
        for ch in ("email", "sms", "push", "whatsapp")
        if f"consent_{ch}" in row
    }
    attributes = {
        k: (v.item() if hasattr(v, "item") else v)
        for k, v in row.items()
        if k not in _CORE_COLUMNS and not (isinstance(v, float) and np.isnan(v))
    }
    return CustomerState(
        str(row["customer_id"]),
        signup_at=row["signup_at"].timestamp(),
        timezone=str(row["timezone"]),
        consents=consents,
        attributes=attributes,
    )


def _opt(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    return value


def _optf(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
