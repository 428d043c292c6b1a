"""Encodings of logged bandit examples for the learners.

:func:`row_matrix` (one row per context and action, for the reward model) and
:func:`vw_examples` (Vowpal Wabbit's ADF text, for the online bandit) encode a
:class:`~models.batch.BanditBatch` against the :class:`~models.batch.FeatureSpec` a model was
fitted on (both are re-exported here). :func:`context_rows` and
:func:`vw_context_lines` do the same for a single decision context without building a batch:
they run on every decision, so they are kept lean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import numpy as np

from decisioning.actions import Action
from decisioning.errors import InvalidInput
from decisioning.features import ACTION_FEATURES
from decisioning.identity_cache import IdentityCache
from decisioning.policy import DecisionContext
from models.batch import (
    BanditBatch,
    FeatureSpec,
    action_keys,
    context_costs,
    default_costs,
    is_number,
)

__all__ = [
    "BanditBatch",
    "FeatureSpec",
    "context_costs",
    "context_rows",
    "default_costs",
    "row_matrix",
    "row_names",
    "vw_context_lines",
    "vw_examples",
]

_LAYOUTS = IdentityCache[Any](limit=64)
_GETTERS = IdentityCache[Any](limit=64)
_TEMPLATES = IdentityCache[Any](limit=64)


def _cached(cache: IdentityCache[Any], spec: FeatureSpec, build: Any) -> Any:
    """What ``build(spec)`` returns, worked out once per spec object: it is used per decision."""
    hit = cache.get(spec)
    return hit if hit is not None else cache.put(spec, build(spec))


def _layout(spec: FeatureSpec) -> _Layout:
    return _cached(_LAYOUTS, spec, _build_layout)


def _templates(spec: FeatureSpec) -> _VWTemplates:
    return _cached(_TEMPLATES, spec, _build_vw_templates)


def _customer_getter(spec: FeatureSpec) -> Any:
    """Reads the spec's customer features from a context, as a tuple in the spec's order."""
    names = tuple(spec.customer)
    if len(names) == 1:
        return lambda customer: (customer[names[0]],)
    return itemgetter(*names) if names else (lambda customer: ())


def _reorder(values: np.ndarray, have: tuple[str, ...], need: tuple[str, ...]) -> np.ndarray:
    if have == need:
        return values
    pos = {k: i for i, k in enumerate(have)}
    return values[..., [pos[k] for k in need]]


def _to_float(value: Any) -> float:
    return float(value) if is_number(value) else math.nan


def _attribute_block(
    spec: FeatureSpec, attributes: Mapping[str, Sequence[Any]], n: int
) -> np.ndarray:
    """Numeric attributes (NaN where missing) then one-hot categories (all zero if unseen)."""
    width = len(spec.numeric_attributes) + sum(len(c) for _, c in spec.categories)
    out = np.zeros((n, width), dtype=np.float32)
    for j, name in enumerate(spec.numeric_attributes):
        column = attributes.get(name)
        out[:, j] = np.nan if column is None else [_to_float(v) for v in column]
    start = len(spec.numeric_attributes)
    for name, cats in spec.categories:
        column = attributes.get(name)
        if column is not None:
            code = _layout(spec).codes[name]
            for i, v in enumerate(column):
                pos = code.get(str(v)) if v is not None else None
                if pos is not None:
                    out[i, start + pos] = 1.0
        start += len(cats)
    return out


def _attribute_row(spec: FeatureSpec, attributes: Mapping[str, Any]) -> list[float]:
    """:func:`_attribute_block` of one customer, as a list (one decision's row)."""
    row = [_to_float(attributes.get(name)) for name in spec.numeric_attributes]
    codes = _layout(spec).codes
    for name, cats in spec.categories:
        onehot = [0.0] * len(cats)
        value = attributes.get(name)
        pos = None if value is None else codes[name].get(str(value))
        if pos is not None:
            onehot[pos] = 1.0
        row += onehot
    return row


def context_matrix(batch: BanditBatch, spec: FeatureSpec) -> np.ndarray:
    """Customer features then encoded attributes, one row per context: (n, d_context)."""
    spec.check(batch)
    customer = _reorder(batch.customer, batch.customer_names, spec.customer)
    attrs = {k: v.tolist() for k, v in batch.attributes.items()}
    return np.hstack([customer, _attribute_block(spec, attrs, len(batch))])


@dataclass(frozen=True)
class _Layout:
    """Column positions of the design matrix, derived once per spec."""

    names: tuple[str, ...]
    codes: dict[str, dict[str, int]]  # category -> position, per categorical attribute
    static: np.ndarray  # (n_actions, n_channels + n_slots) one-hot channel and slot
    channel_onehot: np.ndarray  # (n_actions, n_channels)
    open_rate: int | None
    affinity: int | None
    is_contact: int | None
    pressure: int | None
    ticket: int | None


def _build_layout(spec: FeatureSpec) -> _Layout:
    actions = [Action.from_key(k) for k in spec.action_keys]
    channels = list(dict.fromkeys(a.channel.value for a in actions if not a.is_nothing))
    slots = list(dict.fromkeys(a.slot.value for a in actions if not a.is_nothing))
    ch = np.zeros((len(actions), len(channels)), dtype=np.float32)
    sl = np.zeros((len(actions), len(slots)), dtype=np.float32)
    for i, a in enumerate(actions):
        if not a.is_nothing:
            ch[i, channels.index(a.channel.value)] = 1.0
            sl[i, slots.index(a.slot.value)] = 1.0
    f_pos = {k: i for i, k in enumerate(spec.action_features)}
    c_pos = {k: i for i, k in enumerate(spec.customer)}
    open_rate, affinity = f_pos.get("channel_open_rate"), f_pos.get("hour_affinity")
    is_contact = f_pos.get("is_contact")
    pressure, ticket = c_pos.get("pressure"), c_pos.get("ticket_open")
    names = [
        *spec.customer,
        *spec.numeric_attributes,
        *(f"{name}={c}" for name, cats in spec.categories for c in cats),
        *spec.action_features,
        *(f"channel={c}" for c in channels),
        *(f"slot={s}" for s in slots),
    ]
    if open_rate is not None:
        names += [f"channel={c}*channel_open_rate" for c in channels]
    if affinity is not None:
        names += [f"channel={c}*hour_affinity" for c in channels]
    if is_contact is not None:
        names += [
            f"is_contact*{k}"
            for k, p in (("pressure", pressure), ("ticket_open", ticket))
            if p is not None
        ]
    return _Layout(
        names=tuple(names),
        codes={name: {c: j for j, c in enumerate(cats)} for name, cats in spec.categories},
        static=np.hstack([ch, sl]),
        channel_onehot=ch,
        open_rate=open_rate,
        affinity=affinity,
        is_contact=is_contact,
        pressure=pressure,
        ticket=ticket,
    )


def row_names(spec: FeatureSpec) -> tuple[str, ...]:
    """Column names of :func:`row_matrix` for ``spec``."""
    return _layout(spec).names


def _design(spec: FeatureSpec, ctx: np.ndarray, act: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows for contexts ``ctx`` (n, d_ctx) and their actions ``idx`` (n or 1, k) with features
    ``act`` (n, k, n_action_features), written into one preallocated (n * k, d) array."""
    lay = _layout(spec)
    n, k, n_f = act.shape
    out = np.empty((n, k, len(lay.names)), dtype=np.float32)
    d_ctx = ctx.shape[1]
    out[:, :, :d_ctx] = ctx[:, None, :]
    col = d_ctx + n_f
    out[:, :, d_ctx:col] = act
    static = lay.static[idx]
    out[:, :, col : col + static.shape[-1]] = static
    col += static.shape[-1]
    onehot = lay.channel_onehot[idx]
    for f in (lay.open_rate, lay.affinity):
        if f is not None:
            out[:, :, col : col + onehot.shape[-1]] = onehot * act[:, :, f : f + 1]
            col += onehot.shape[-1]
    if lay.is_contact is not None:
        # Customer features lead the context block, so a spec position is a column position.
        for p in (lay.pressure, lay.ticket):
            if p is not None:
                out[:, :, col] = act[:, :, lay.is_contact] * ctx[:, None, p]
                col += 1
    return out.reshape(n * k, -1)


def row_matrix(
    batch: BanditBatch, spec: FeatureSpec, *, actions: np.ndarray | None = None
) -> np.ndarray:
    """The reward model's design matrix, float32.

    One row per (context, action) in context-major order, shape (n * n_actions, d); or, with
    ``actions`` (n,) given, one row per context for that action, shape (n, d). Columns: customer
    features, attributes (numeric, then one-hot), action features, one-hot channel and slot,
    then interactions trees find slowly on their own: channel x its open rate, channel x hour
    affinity, and contact x pressure / open ticket (the harm of contacting a tired or upset
    customer). ``is_contact x hour_affinity`` would repeat ``hour_affinity``, which is already
    zero for doing nothing, so the channel x hour affinity terms stand in for it.
    """
    ctx = context_matrix(batch, spec)
    feats = _reorder(batch.action_features, batch.action_feature_names, spec.action_features)
    if actions is None:
        return _design(spec, ctx, feats, np.arange(batch.n_actions)[None, :])
    idx = np.asarray(actions, dtype=np.int64)[:, None]
    return _design(spec, ctx, feats[np.arange(len(batch))[:, None], idx], idx)


def pair_matrix(
    batch: BanditBatch, spec: FeatureSpec, rows: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """The design matrix of the (context ``rows[j]``, action ``actions[j]``) pairs only, (k, d).

    The rows of :func:`row_matrix` for those pairs, without building the others.
    """
    ctx = context_matrix(batch, spec)
    feats = _reorder(batch.action_features, batch.action_feature_names, spec.action_features)
    idx = np.asarray(actions, dtype=np.int64)
    return _design(spec, ctx[rows], feats[rows, idx][:, None, :], idx[:, None])


_ACTION_POS = {k: i for i, k in enumerate(ACTION_FEATURES)}


def _check_context(context: DecisionContext, spec: FeatureSpec) -> None:
    if action_keys(context.actions) != spec.action_keys:
        raise InvalidInput(
            "the context's action space differs from the model's: "
            f"{len(context.actions)} actions vs {len(spec.action_keys)}"
        )


@lru_cache(maxsize=64)
def _action_columns(names: tuple[str, ...]) -> list[int] | None:
    """Positions of ``names`` among ``ACTION_FEATURES``; None when they are all, in order."""
    cols = [_ACTION_POS[k] for k in names]
    return None if cols == list(range(len(ACTION_FEATURES))) else cols


def _context_values(
    context: DecisionContext, spec: FeatureSpec, rows: np.ndarray | list[int]
) -> tuple[list[float], np.ndarray]:
    try:
        customer = list(_cached(_GETTERS, spec, _customer_getter)(context.customer))
        cols = _action_columns(tuple(spec.action_features))
    except KeyError as err:
        raise InvalidInput(f"the context lacks feature {err.args[0]!r} the model needs") from None
    feats = context.action_features[rows]
    return customer, feats if cols is None else feats[:, cols]


def context_rows(
    context: DecisionContext, spec: FeatureSpec, actions: np.ndarray | None = None
) -> np.ndarray:
    """:func:`row_matrix` for one context without building a batch: (n_actions, d), or one
    row per index of ``actions`` when given."""
    _check_context(context, spec)
    idx = np.arange(len(spec.action_keys)) if actions is None else np.asarray(actions)
    customer, feats = _context_values(context, spec, idx)
    ctx = np.array([customer + _attribute_row(spec, context.attributes)], dtype=np.float32)
    act = feats.astype(np.float32).reshape(1, len(idx), -1)
    return _design(spec, ctx, act, idx[None, :])


_UNSAFE = re.compile(r"[\s|:]+")


def _vw_safe(text: str) -> str:
    """A token VW parses as one feature name: no spaces, pipes or colons."""
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class _VWTemplates:
    """``%`` templates for the shared line and the action lines, built once per spec."""

    shared: str
    actions: tuple[str, ...]
    numeric_attributes: tuple[str, ...]
    categorical_attributes: tuple[str, ...]


def _action_heads(spec: FeatureSpec) -> list[str]:
    """Each action line up to its numeric features (the whole line for doing nothing)."""
    numeric = bool(spec.action_features)
    heads = []
    for key in spec.action_keys:
        a = Action.from_key(key)
        if a.is_nothing:
            heads.append("|x none")
        else:
            line = f"|x {a.channel.value} {a.slot.value} {key}"
            heads.append(f"{line} |f" if numeric else line)
    return heads


def _build_vw_templates(spec: FeatureSpec) -> _VWTemplates:
    # Every value is written, zeros included: VW drops zero-valued features as it parses, and
    # one %-format per line is several times faster than skipping zeros in Python.
    numeric = " ".join(f"{_vw_safe(k)}:%.6g" for k in spec.action_features)
    actions = [
        f"{head} {numeric}" if numeric and key != "none" else head
        for key, head in zip(spec.action_keys, _action_heads(spec), strict=True)
    ]
    return _VWTemplates(
        shared="shared |c " + " ".join(f"{_vw_safe(k)}:%.6g" for k in spec.customer),
        actions=tuple(actions),
        numeric_attributes=tuple(_vw_safe(k) for k in spec.numeric_attributes),
        categorical_attributes=tuple(_vw_safe(k) for k, _ in spec.categories),
    )


@lru_cache(maxsize=4096)
def _vw_value(value: str) -> str:
    return _vw_safe(value)


def _vw_attributes(tpl: _VWTemplates, spec: FeatureSpec, get: Any) -> str:
    """The ``a`` namespace; ``get(name)`` is an attribute's value or None."""
    parts = []
    for k, name in zip(spec.numeric_attributes, tpl.numeric_attributes, strict=True):
        v = get(k)
        if is_number(v) and v == v:
            parts.append(f"{name}:{float(v):.6g}")
    for (k, _), name in zip(spec.categories, tpl.categorical_attributes, strict=True):
        v = get(k)
        if v is not None:
            parts.append(f"{name}={_vw_value(str(v))}")
    return " ".join(parts)


def _finite(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN and infinities as 0 (``nan_to_num``, skipped when all are finite)."""
    if np.isfinite(values).all():
        return values
    return np.nan_to_num(values, posinf=0.0, neginf=0.0)


def vw_arrays(batch: BanditBatch, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """The batch's customer and action features in the spec's order, as VW text writes them."""
    customer = _reorder(batch.customer, batch.customer_names, spec.customer)
    feats = _reorder(batch.action_features, batch.action_feature_names, spec.action_features)
    return _finite(customer), _finite(feats)


def vw_examples(
    batch: BanditBatch,
    spec: FeatureSpec,
    *,
    cost: np.ndarray | None = None,
    all_actions: bool = False,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Each context as VW ADF lines, with the action indices the lines stand for.

    Namespaces: ``c`` customer features and ``a`` attributes (``name=value`` for categories) on
    the shared line; ``x`` channel, slot and action key indicators and ``f`` numeric action
    features on each action line. Only eligible actions get a line, unless ``all_actions``
    (to score every action). With ``cost`` (n,), the logged action is labelled
    ``0:cost:pscore`` and always gets a line, since it was what happened.
    """
    spec.check(batch)
    tpl = _templates(spec)
    customer, feats = vw_arrays(batch, spec)
    columns = {k: v.tolist() for k, v in batch.attributes.items()}
    action, _, pscore = batch.feedback() if cost is not None else (None, None, None)
    label = None if cost is None or pscore is None else (cost, pscore)
    everything = np.arange(batch.n_actions)
    for i, row in enumerate(customer.tolist()):
        attrs = _vw_attributes(tpl, spec, {k: v[i] for k, v in columns.items()}.get)
        lines = [f"{tpl.shared % tuple(row)} |a {attrs}"]
        if all_actions:
            idx = everything
        else:
            keep = batch.eligible[i].copy()
            if action is not None:
                keep[action[i]] = True
            idx = np.flatnonzero(keep)
        for a, values in zip(idx.tolist(), feats[i, idx].tolist(), strict=True):
            line = tpl.actions[a] % tuple(values) if a else tpl.actions[0]
            if label is not None and action is not None and a == action[i]:
                line = f"0:{float(label[0][i]):.6g}:{float(label[1][i]):.6g} {line}"
            lines.append(line)
        yield lines, idx


def vw_context_lines(
    context: DecisionContext, spec: FeatureSpec, *, all_actions: bool = False
) -> tuple[list[str], np.ndarray]:
    """:func:`vw_examples` for one unlabelled context without building a batch."""
    _check_context(context, spec)
    tpl = _templates(spec)
    if all_actions:
        idx = np.arange(len(spec.action_keys))
    else:
        idx = np.flatnonzero(np.asarray(context.eligible, dtype=bool))
    rows = idx.tolist()
    customer, feats = _context_values(context, spec, rows)
    # Through float32 and nan_to_num like a batch, so both paths write the same text.
    c = _finite(np.asarray(customer, dtype=np.float32)).tolist()
    f = np.asarray(feats, dtype=np.float32).reshape(len(rows), len(spec.action_features))
    f_rows = _finite(f).tolist()
    attrs = _vw_attributes(tpl, spec, context.attributes.get)
    lines = [f"{tpl.shared % tuple(c)} |a {attrs}"]
    lines += [
        tpl.actions[a] % tuple(v) if a else tpl.actions[0]
        for a, v in zip(rows, f_rows, strict=True)
    ]
    return lines, idx
