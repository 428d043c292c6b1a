"""The history replay: every customer's events, sends and decisions in one time-ordered stream.

Each customer's history is folded through the same ``CustomerState`` and feature code the service
uses online, and every decision moment is turned into its features, eligibility and logged
action, from what happened strictly before it (point-in-time correct).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import threading
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
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Fold the stream into one example per decision moment, in customer then time order.

        Customers are independent, so with ``workers`` > 1 (by default, on a large history
        and with more than one core) contiguous runs of customers are folded in forked
        processes writing into shared output arrays; the examples are the same either way.
        """
        job = _Fold(self, objective=objective, actions=actions, policy=policy)
        n_workers = _workers(workers, len(job.cust)) if progress is None else 1
        parts = _split(job.cust, n_workers)
        out = _Outputs(len(job.mo_id), len(actions), shared=len(parts) > 1)
        # each part writes from the first moment of its customers: no two parts overlap
        before = np.concatenate([[0], np.cumsum(job.kind == _DECISION)])
        offsets = [int(before[lo]) for lo, _ in parts]
        tasks = [(lo, hi, off) for (lo, hi), off in zip(parts, offsets, strict=True)]
        if len(tasks) == 1:
            folded = [job.fold(*tasks[0], out, progress)]
        else:
            folded = _in_processes(job, tasks, out)
        skipped: dict[str, int] = {}
        for part in folded:
            for reason, count in part["skipped"].items():
                skipped[reason] = skipped.get(reason, 0) + count
        if self.unknown_customer_moments:
            skipped["unknown customer"] = self.unknown_customer_moments
        keep = np.concatenate(
            [
                np.arange(off, off + part["n"])
                for (_, _, off), part in zip(tasks, folded, strict=True)
            ]
        ).astype(np.int64)
        n = len(keep)
        attr_rows = [c for part in folded for c in part["attr_rows"]]
        attrs = self.customers.iloc[attr_rows][job.attr_cols].reset_index(drop=True)
        return {
            "customer_ids": np.array([c for p in folded for c in p["ids"]], dtype=object),
            "decision_ids": np.array([d for p in folded for d in p["decisions"]], dtype=object),
            "ts": out.ts[keep],
            "customer": out.customer[keep],
            "attributes": attrs,
            "action_features": out.af[keep],
            "eligible": out.eligible[keep],
            "costs": np.tile(job.base_costs, (n, 1)),
            "action": out.action[keep],
            "pscore": out.pscore[keep],
            "cost": out.cost[keep],
            "report": {"skipped": skipped},
        }


class _Outputs:
    """The example arrays, one row per decision moment; in shared memory for forked workers."""

    def __init__(self, n: int, n_actions: int, *, shared: bool) -> None:
        F, AF = len(BEHAVIOUR_FEATURES), len(ACTION_FEATURES)
        layout = [
            ("customer", (n, F), np.float32),
            ("af", (n, n_actions, AF), np.float32),
            ("eligible", (n, n_actions), np.bool_),
            ("action", (n,), np.int64),
            ("pscore", (n,), np.float64),
            ("cost", (n,), np.float64),
            ("ts", (n,), np.float64),
        ]
        for name, shape, dtype in layout:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            array: np.ndarray
            if shared and size:
                # an anonymous shared mapping: a forked worker's writes are the parent's too
                buffer = mmap.mmap(-1, size)
                array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
            else:
                array = np.zeros(shape, dtype=dtype)
            setattr(self, name, array)
        self.pscore[:] = np.nan

    customer: np.ndarray
    af: np.ndarray
    eligible: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    cost: np.ndarray
    ts: np.ndarray


_MIN_PARALLEL_STREAM = 200_000  # below this, starting processes costs more than it saves


def _workers(requested: int | None, stream_length: int) -> int:
    if requested is not None:
        return max(1, requested)
    if (
        stream_length < _MIN_PARALLEL_STREAM
        or "fork" not in mp.get_all_start_methods()
        or threading.active_count() > 1  # forking a threaded process can deadlock the child
    ):
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _split(cust: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous stretches of the stream of about equal length, cut between customers."""
    n = len(cust)
    cuts = [0]
    for k in range(1, parts):
        at = int(np.searchsorted(cust, cust[min(n - 1, k * n // parts)], side="left")) if n else 0
        if at > cuts[-1]:
            cuts.append(at)
    cuts.append(n)
    return [(lo, hi) for lo, hi in zip(cuts, cuts[1:], strict=False) if hi > lo] or [(0, n)]


_JOB: tuple[_Fold, _Outputs] | None = None


def _fold_part(task: tuple[int, int, int]) -> dict[str, Any]:
    assert _JOB is not None
    job, out = _JOB
    return job.fold(*task, out, None)


def _in_processes(job: _Fold, tasks: list[tuple[int, int, int]], out: _Outputs) -> list[Any]:
    global _JOB
    _JOB = (job, out)
    try:
        pool = mp.get_context("fork").Pool(len(tasks))
        try:
            folded = pool.map(_fold_part, tasks, chunksize=1)
            pool.close()
        finally:
            pool.terminate()
            pool.join()
        return folded
    finally:
        _JOB = None


class _Fold:
    """The history's columns as arrays, and the fold of a stretch of the stream over them."""

    def __init__(
        self, replay: Replay, *, objective: Objective, actions: ActionSpace, policy: ContactPolicy
    ) -> None:
        self.cust, self.ts, self.kind, self.row = replay._stream()
        ev, se, mo = replay.events, replay.sends, replay.moments
        self.ids = replay.ids
        self.customers = replay.customers
        self.ev_type = ev["type"].to_numpy()
        self.ev_channel = ev["channel"].to_numpy()
        self.ev_value = ev["value"].to_numpy(dtype=float)
        self.ev_category = ev["category"].to_numpy()
        self.ev_anon = ev["anonymous_id"].to_numpy()
        self.ev_is_anon = (ev["customer_id"].astype(str) == "").to_numpy()
        self.se_channel = se["channel"].to_numpy()
        self.se_cost = _costs(se, objective)
        self.mo_channel = mo["channel"].to_numpy()
        self.mo_id = mo["contact_id"].to_numpy()
        self.mo_slot = mo["slot"].to_numpy() if "slot" in mo else np.full(len(mo), "now")
        self.mo_prop = mo["propensity"].to_numpy(dtype=float)
        self.mo_cost = _costs(mo, objective)
        self.base_costs = objective.costs(actions)
        fields = _segment_fields(replay.customers)
        self.segment = Segment.parse(objective.segment or "", fields)
        self.category = objective.outcome.category if objective.kind == "increase" else None
        self.attr_cols = [
            c for c in replay.customers.columns if c in fields and c not in _CORE_COLUMNS
        ]
        self.actions, self.policy = actions, policy

    def fold(
        self,
        lo: int,
        hi: int,
        offset: int,
        out: _Outputs,
        progress: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        """Fold stream positions ``[lo, hi)`` (whole customers), writing rows from ``offset``."""
        cust, ts, kind, row = self.cust, self.ts, self.kind, self.row
        ev_type, ev_channel, ev_value = self.ev_type, self.ev_channel, self.ev_value
        ev_category, ev_anon, ev_is_anon = self.ev_category, self.ev_anon, self.ev_is_anon
        se_channel, se_cost = self.se_channel, self.se_cost
        mo_channel, mo_slot, mo_id = self.mo_channel, self.mo_slot, self.mo_id
        actions, policy, segment = self.actions, self.policy, self.segment
        base_costs, category = self.base_costs, self.category
        out_ids: list[str] = []
        out_decisions: list[str] = []
        out_attr_rows: list[int] = []
        skipped: dict[str, int] = {}
        index = {a.key: i for i, a in enumerate(actions)}

        state: CustomerState | None = None
        current = -1
        anon: dict[str, CustomerState] = {}
        n = offset
        for k in range(lo, hi):
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
                    if not segment.matches_customer(customer_f, state.attributes):
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
                out.customer[n] = [customer_f[f] for f in BEHAVIOUR_FEATURES]
                out.af[n] = context.action_features
                out.eligible[n] = context.eligible
                out.action[n] = index[key]
                out.pscore[n] = self.mo_prop[r]
                out.cost[n] = self.mo_cost[r]
                out.ts[n] = t
                out_ids.append(self.ids[c])
                out_decisions.append(mo_id[r])
                out_attr_rows.append(c)
                n += 1
        return {
            "n": n - offset,
            "ids": out_ids,
            "decisions": out_decisions,
            "attr_rows": out_attr_rows,
            "skipped": skipped,
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
