"""Vowpal Wabbit's ADF text for a whole batch, written column by column.

:func:`vw_texts` gives exactly the text of :func:`models.encoding.vw_examples` (joined by
newlines), for training and scoring many contexts. Formatting a float is the costly step, and
in logged history most feature values repeat (counts, capped recencies, prior rates): each
distinct value of a column is formatted once per chunk of rows, and the lines are assembled
from those pieces.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from models.batch import BanditBatch, FeatureSpec, is_number
from models.encoding import _action_heads, _templates, _vw_safe, _vw_value, vw_arrays

_CHUNK_ROWS = 4096


def _pieces(values: np.ndarray, prefix: str) -> np.ndarray:
    """``prefix`` and the ``%.6g`` text of every value in ``values`` (1-d), as an object array.

    Distinct values are found on the bit patterns, so -0.0 keeps its own text ("-0").
    """
    arr = np.ascontiguousarray(values)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    bits = arr.view(np.uint32 if arr.dtype == np.float32 else np.uint64)
    codes, uniq = pd.factorize(bits)
    texts = [prefix + "%.6g" % v for v in uniq.view(arr.dtype).tolist()]  # noqa: UP031
    return np.array(texts or [""], dtype=object)[codes]


def _attribute_texts(spec: FeatureSpec, columns: dict[str, np.ndarray], n: int) -> list[str]:
    """The ``a`` namespace of each row, as ``_vw_attributes`` writes it."""
    tpl = _templates(spec)
    parts: list[list[str]] = [[] for _ in range(n)]
    for k, name in zip(spec.numeric_attributes, tpl.numeric_attributes, strict=True):
        column = columns.get(k)
        if column is None:
            continue
        for i, v in enumerate(column.tolist()):
            if is_number(v) and v == v:
                parts[i].append(f"{name}:{float(v):.6g}")
    for (k, _), name in zip(spec.categories, tpl.categorical_attributes, strict=True):
        column = columns.get(k)
        if column is None:
            continue
        seen: dict[Any, str] = {}
        for i, v in enumerate(column.tolist()):
            if v is not None:
                text = seen.get(v) if isinstance(v, str) else None
                if text is None:
                    text = f"{name}={_vw_value(str(v))}"
                    if isinstance(v, str):
                        seen[v] = text
                parts[i].append(text)
    return [" ".join(p) for p in parts]


def vw_texts(
    batch: BanditBatch,
    spec: FeatureSpec,
    *,
    cost: np.ndarray | None = None,
    all_actions: bool = False,
) -> Iterator[tuple[str, np.ndarray]]:
    """Each context as one VW ADF text (lines joined by newlines) and its action indices.

    The same text and indices as :func:`models.encoding.vw_examples`: only eligible actions
    (and, with ``cost``, the logged one, labelled ``0:cost:pscore``), or every action.
    """
    spec.check(batch)
    customer, feats = vw_arrays(batch, spec)
    action, _, pscore = batch.feedback() if cost is not None else (None, None, None)
    heads = np.array(_action_heads(spec), dtype=object)
    c_names = [f" {_vw_safe(k)}:" for k in spec.customer]
    f_names = [f" {_vw_safe(k)}:" for k in spec.action_features]
    shared_head = "shared |c" if c_names else "shared |c "
    n_actions = batch.n_actions
    for start in range(0, len(batch), _CHUNK_ROWS):
        stop = min(len(batch), start + _CHUNK_ROWS)
        m = stop - start
        rows = np.arange(start, stop)
        # every piece carries its separator: a row's text is two joins of consecutive pieces
        shared = np.empty((m, len(c_names) + 3), dtype=object)
        shared[:, 0] = shared_head
        for j, name in enumerate(c_names):
            shared[:, j + 1] = _pieces(customer[start:stop, j], name)
        shared[:, -2] = " |a "
        shared[:, -1] = _attribute_texts(
            spec, {k: v[start:stop] for k, v in batch.attributes.items()}, m
        )
        if all_actions:
            keep = np.ones((m, n_actions), dtype=bool)
        else:
            keep = batch.eligible[start:stop].copy()
            if action is not None:
                keep[np.arange(m), action[start:stop]] = True
        pair_row, pair_action = np.nonzero(keep)
        pairs = np.full((len(pair_row), len(f_names) + 3), "", dtype=object)
        pairs[:, 0] = "\n"
        pairs[:, 2] = heads[pair_action]
        if f_names:
            values = feats[rows[pair_row], pair_action]
            nothing = pair_action == 0
            for j, name in enumerate(f_names):
                piece = _pieces(values[:, j], name)
                piece[nothing] = ""
                pairs[:, j + 3] = piece
        if action is not None and cost is not None and pscore is not None:
            labelled = np.flatnonzero(pair_action == action[start:stop][pair_row])
            for p, i in zip(labelled.tolist(), (start + pair_row[labelled]).tolist(), strict=True):
                pairs[p, 1] = f"0:{float(cost[i]):.6g}:{float(pscore[i]):.6g} "
        bounds = (np.searchsorted(pair_row, np.arange(m + 1)) * pairs.shape[1]).tolist()
        s_width = shared.shape[1]
        shared_flat = shared.ravel().tolist()
        pair_flat = pairs.ravel().tolist()
        for i in range(m):
            lo, hi = bounds[i], bounds[i + 1]
            text = "".join(shared_flat[i * s_width : (i + 1) * s_width]) + "".join(pair_flat[lo:hi])
            yield text, pair_action[lo // pairs.shape[1] : hi // pairs.shape[1]]
