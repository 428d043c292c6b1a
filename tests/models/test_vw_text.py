"""VW text written column by column is the text written context by context."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.encoding import FeatureSpec, vw_examples
from models.vw_text import vw_texts
from tests.models.conftest import make_logged_batch


@pytest.fixture(scope="module")
def odd_batch():
    """A logged batch with awkward values: -0.0, NaN, infinities, missing attributes."""
    batch = make_logged_batch(np.random.default_rng(3), 300)
    customer = batch.customer.copy()
    customer[::7, 2] = -0.0
    customer[1::11, 3] = np.nan
    customer[2::13, 4] = np.inf
    customer[:, 5] = np.round(customer[:, 5])  # repeated values
    feats = batch.action_features.copy()
    feats[::5, :, 1] = -0.0
    feats[3::9, :, 2] = np.nan
    attributes = {k: v.copy() for k, v in batch.attributes.items()}
    for column in attributes.values():
        column[::4] = None
    if "age" in attributes:
        attributes["age"][1::6] = np.nan
    eligible = batch.eligible.copy()
    eligible[::3, 1:] = False  # the logged action is often masked
    return dataclasses.replace(
        batch, customer=customer, action_features=feats, attributes=attributes, eligible=eligible
    )


@pytest.mark.parametrize("chunk", [1, 64, 4096])
@pytest.mark.parametrize("kind", ["labelled", "eligible", "every action"])
def test_texts_equal_the_line_by_line_examples(odd_batch, monkeypatch, chunk, kind):
    monkeypatch.setattr("models.vw_text._CHUNK_ROWS", chunk)
    spec = FeatureSpec.from_batch(odd_batch)
    action, reward, _ = odd_batch.feedback()
    kwargs = {
        "labelled": {"cost": odd_batch.costs[np.arange(len(odd_batch)), action] - reward},
        "eligible": {},
        "every action": {"all_actions": True},
    }[kind]
    expected = list(vw_examples(odd_batch, spec, **kwargs))
    got = list(vw_texts(odd_batch, spec, **kwargs))
    assert len(got) == len(expected) == len(odd_batch)
    for (text, idx), (lines, want_idx) in zip(got, expected, strict=True):
        assert text == "\n".join(lines)
        assert np.array_equal(idx, want_idx)
    assert any(" |a " in t and "=" in t.split(" |a ")[1] for t, _ in got)
    assert any(":-0 " in t for t, _ in got)
