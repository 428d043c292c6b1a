"""The service's own log as a training history: customers, contacts and events in the data contract.

``decisioning train --from-log`` learns from what the service decided and observed. The export
gives the three tables of :mod:`decisioning.history`, validated by the same loader as a history
directory, so that :func:`training.dataset.build_training_set` replays them exactly as a file.

What becomes a contact (a decision to learn from):

* every logged decision of an objective, with its logged propensity, objective, slot, send
  time (when it actually went out, else when it was planned) and cost (as sent; otherwise the
  objective's cost applies);
* except decisions whose message never went out: a contact decision ``suppressed``,
  ``failed``, ``cancelled`` or ``expired`` is left out, so that a message never sent does not
  count as a contact that failed to convert (its do-nothing counterpart was not chosen either,
  so it cannot be learned as doing nothing);
* except holdout decisions (by default): their action was forced by the holdout, with
  propensity 1, not drawn from the policy; keeping them would mix a deterministic logging
  policy into the off-policy estimates. ``include_holdout=True`` keeps them as do-nothing
  decisions with propensity 1;
* decisions for no objective (nothing applied to the customer) are left out;
* plus the contacts of histories loaded into the store that are not logged decisions.

Customers are the known customers, rebuilt from their stored states. Their consents are those
at the start of the export: the stored consents with the history's subscribe and unsubscribe
events undone (a channel whose first such event is an unsubscribe was consented before it, one
whose first is a subscribe was not), since the replay applies those events again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from decisioning.channels import CONSENT_CHANNELS, Channel
from decisioning.history import CONTACT_COLUMNS, History
from decisioning.history_tables import CUSTOMER_COLUMNS
from decisioning.objectives import Objective
from decisioning.records import EventType
from decisioning.store.replay import Profile

#: statuses of a contact decision whose message never went out
NOT_SENT: tuple[str, ...] = ("suppressed", "failed", "cancelled", "expired")

_NONE = Channel.NONE.value
_CONSENTS = tuple(c.value for c in CONSENT_CHANNELS)


def export_history(
    store: Any,
    *,
    objective_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_holdout: bool = False,
) -> dict[str, pd.DataFrame]:
    """The store's decision log and events as the history tables ``customers``, ``contacts``, ``events``.

    Parameters
    ----------
    store
        A :class:`decisioning.store.Store`.
    objective_id
        Only this objective's decisions are exported as decisions to learn from (the messages
        other objectives sent are kept: they weigh on the customers' fatigue).
    since, until
        The decisions and contacts with ``since <= ts < until``; the events from ``since`` to
        ``until`` plus the longest attribution window, so that the last decisions' rewards
        are complete. Features at the first decisions only see the behaviour after ``since``.
    include_holdout
        Keep holdout decisions as do-nothing decisions with propensity 1 (see the module).
    """
    decisions = store.decisions_frame(since=since, until=until)
    keep = _learnable(decisions, include_holdout=include_holdout)
    if objective_id is not None:
        mine = (decisions["objective_id"] == objective_id) | (decisions["channel"] != _NONE)
        keep = keep & mine.to_numpy(dtype=bool)
    logged = _decision_contacts(decisions[keep])
    loaded = store.contacts_frame(since, until, outside_log=True)
    contacts = pd.concat([logged, loaded[list(CONTACT_COLUMNS)]], ignore_index=True)
    events_until = None
    if until is not None:
        events_until = until + timedelta(days=_longest_window(store, objective_id))
    events = store.events_frame(since, events_until, as_received=True)
    consent_events = store.events_frame(since, types=(EventType.SUBSCRIBE, EventType.UNSUBSCRIBE))
    customers = customers_frame(store.iter_profiles(known_only=True), consent_events)
    history = History.from_frames(
        customers=customers, contacts=contacts, events=events, strict=False, source="store"
    )
    return {"customers": history.customers, "contacts": history.contacts, "events": history.events}


def _learnable(decisions: pd.DataFrame, *, include_holdout: bool) -> np.ndarray:
    """Decisions of an objective that went out, or chose to do nothing (see the module)."""
    went_out = (decisions["channel"] == _NONE) | ~decisions["status"].isin(NOT_SENT)
    keep = went_out & (decisions["objective_id"] != "")
    if not include_holdout:
        keep = keep & ~decisions["holdout"]
    return keep.to_numpy(dtype=bool, copy=True)


def _decision_contacts(rows: pd.DataFrame) -> pd.DataFrame:
    """Logged decisions as contact rows: the decision's id, logged propensity and real send."""
    nothing = (rows["channel"] == _NONE).to_numpy()
    sent_at = rows["sent_at"].fillna(rows["send_at"]).fillna(rows["decided_at"])
    return pd.DataFrame(
        {
            "contact_id": rows["decision_id"].to_numpy(),
            "customer_id": rows["customer_id"].to_numpy(),
            "ts": rows["decided_at"].to_numpy(),
            "channel": rows["channel"].to_numpy(),
            "slot": rows["slot"].where(rows["slot"] != "", "now").to_numpy(),
            "send_at": sent_at.to_numpy(),
            "objective": rows["objective_id"].to_numpy(),
            "cost": np.where(nothing, 0.0, rows["sent_cost"].to_numpy(dtype=float)),
            "propensity": rows["propensity"].to_numpy(dtype=float),
            "decision_id": rows["decision_id"].to_numpy(),
            "category": rows["sent_category"].to_numpy(),
        },
        columns=list(CONTACT_COLUMNS),
    )


def _longest_window(store: Any, objective_id: str | None) -> float:
    """Days of the longest attribution window of the objective (or of all objectives)."""
    if objective_id is not None:
        docs = store.objective_versions(objective_id)
    else:
        docs = store.list_objectives()
    return max((Objective.model_validate(d).attribution_window_days for d in docs), default=0.0)


def starting_consents(profile: Profile, consent_events: pd.DataFrame) -> dict[str, bool]:
    """The customer's consents before ``consent_events`` (theirs, in time order) were applied."""
    consents = {c: bool(profile.consents.get(c, False)) for c in _CONSENTS}
    decided: set[str] = set()
    for kind, channel in zip(
        consent_events["type"].tolist(), consent_events["channel"].tolist(), strict=True
    ):
        if kind == EventType.UNSUBSCRIBE.value:
            # an unsubscribe without a consent channel withdraws every consent (CustomerState)
            for name in [channel] if channel in consents else _CONSENTS:
                if name not in decided:
                    consents[name] = True
                    decided.add(name)
        elif channel in consents and channel not in decided:
            consents[channel] = False
            decided.add(channel)
    return consents


def customers_frame(profiles: Iterable[Profile], consent_events: pd.DataFrame) -> pd.DataFrame:
    """The contract's customers table of ``profiles``, consents as at the start of the events.

    Attributes become columns after the contract columns, in the order first seen (empty
    where a customer lacks one).
    """
    by_customer = {
        cid: frame
        for cid, frame in consent_events.sort_values(["ts", "event_id"]).groupby(
            "customer_id", sort=False
        )
    }
    empty = consent_events.iloc[:0]
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    for profile in profiles:
        if profile.signup_at is None:  # not a known customer: no record to rebuild
            continue
        consents = starting_consents(profile, by_customer.get(profile.customer_id, empty))
        row: dict[str, Any] = {
            "customer_id": profile.customer_id,
            "signup_at": datetime.fromtimestamp(profile.signup_at, UTC),
            "timezone": profile.timezone,
            **{f"consent_{c}": consents[c] for c in _CONSENTS},
        }
        for name, value in profile.attributes.items():
            names.setdefault(name, None)
            row[f"attr:{name}"] = value
        rows.append(row)
    columns = list(CUSTOMER_COLUMNS) + list(names)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    data = {c: [r.get(c) for r in rows] for c in CUSTOMER_COLUMNS}
    data.update({name: [r.get(f"attr:{name}") for r in rows] for name in names})
    return pd.DataFrame(data, columns=columns)
