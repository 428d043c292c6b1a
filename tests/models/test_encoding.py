"""Bandit batches, the feature spec, the reward model's design matrix and VW's text format."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from vowpalwabbit import Workspace

from decisioning.actions import ActionSpace
from decisioning.channels import DEFAULT_COSTS, Channel
from decisioning.errors import InvalidInput
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from models.encoding import (
    BanditBatch,
    FeatureSpec,
    context_rows,
    default_costs,
    row_matrix,
    row_names,
    vw_context_lines,
    vw_examples,
)
from tests.models.conftest import SPACE, make_context


@pytest.fixture
def contexts():
    rng = np.random.default_rng(0)
    return [make_context(rng, customer_id=f"c{i}") for i in range(6)]


@pytest.fixture
def batch(contexts):
    return BanditBatch.from_contexts(
        contexts, action=[0, 1, "email@today_noon", 0, 3, 0], reward=[0, 1, 0, 0, 1, 0],
        pscore=[0.5, 0.1, 0.2, 0.5, 0.1, 1.0],
    )  # fmt: skip


def test_from_contexts_stacks_columns(batch, contexts):
    n, n_actions = len(contexts), len(SPACE)
    assert batch.customer.shape == (n, len(BEHAVIOUR_FEATURES))
    assert batch.customer.dtype == np.float32
    assert batch.action_features.shape == (n, n_actions, len(ACTION_FEATURES))
    assert batch.eligible.shape == (n, n_actions) and batch.eligible.dtype == bool
    assert batch.customer_names == BEHAVIOUR_FEATURES
    assert batch.action[2] == SPACE.index("email@today_noon")
    assert batch.customer[3, 1] == pytest.approx(contexts[3].customer["tenure_days"])
    assert batch.action_features[4, 7, 4] == pytest.approx(
        contexts[4].action_features[7, ACTION_FEATURES.index("hour_affinity")]
    )
    assert set(batch.attributes) == {"segment", "plan", "country", "age"}
    assert batch.attributes["segment"][5] == contexts[5].attributes["segment"]


def test_costs_default_to_channel_costs_when_the_context_has_none(contexts):
    bare = dataclasses.replace(contexts[0], costs=None)
    batch = BanditBatch.from_contexts([bare])
    assert batch.costs[0, SPACE.index("sms@now")] == DEFAULT_COSTS[Channel.SMS]
    assert batch.costs[0, 0] == 0.0


def test_select_and_context_round_trip(batch, contexts):
    part = batch.select([4, 1])
    assert len(part) == 2 and list(part.action) == [3, 1]
    assert np.array_equal(part.customer[0], batch.customer[4])
    masked = batch.select(np.array([True, False, False, False, False, True]))
    assert list(masked.customer_ids) == ["c0", "c5"]
    again = BanditBatch.from_contexts([batch.context(2)])
    assert np.array_equal(again.customer[0], batch.customer[2])
    assert np.array_equal(again.action_features[0], batch.action_features[2])
    assert np.array_equal(again.eligible[0], contexts[2].eligible)


def test_feedback_is_required_where_learning_needs_it(contexts):
    with pytest.raises(InvalidInput, match="no logged action, reward, pscore"):
        BanditBatch.from_contexts(contexts).feedback()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": [0] * 6, "pscore": [0.0] * 6}, "pscore must lie in"),
        ({"action": [99] * 6}, "action indices must lie in"),
        ({"reward": [np.nan] * 6}, "reward has non-finite"),
        ({"reward": [1.0] * 5}, r"reward has shape \(5,\)"),
    ],
)
def test_bad_feedback_is_rejected(contexts, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        BanditBatch.from_contexts(contexts, **kwargs)


def test_contexts_must_agree(contexts):
    other = dataclasses.replace(
        contexts[1],
        actions=ActionSpace.build(["email"]),
        action_features=contexts[1].action_features[:7],
        eligible=contexts[1].eligible[:7],
    )
    with pytest.raises(InvalidInput, match="context 1 uses another action space"):
        BanditBatch.from_contexts([contexts[0], other])
    short = dataclasses.replace(contexts[2], customer={"known": 1.0})
    with pytest.raises(InvalidInput, match="context 1 lacks feature 'tenure_days'"):
        BanditBatch.from_contexts([contexts[0], short])
    rows = dataclasses.replace(contexts[2], action_features=contexts[2].action_features[:5])
    with pytest.raises(InvalidInput, match=r"context 2 has action features of shape \(5, 9\)"):
        BanditBatch.from_contexts([contexts[0], contexts[1], rows])
    words = dataclasses.replace(contexts[1], action_features=np.full((31, 9), "high"))
    with pytest.raises(InvalidInput, match="action features must be numbers"):
        BanditBatch.from_contexts([contexts[0], words])


def test_each_context_keeps_its_own_costs(contexts):
    shared = np.linspace(0.0, 0.3, len(contexts[0].actions))
    own = [dataclasses.replace(c, costs=shared) for c in contexts[:3]]
    batch = BanditBatch.from_contexts(own)
    assert np.array_equal(batch.costs, np.tile(shared, (3, 1)))
    own[1] = dataclasses.replace(own[1], costs=shared * 2)
    own[2] = dataclasses.replace(own[2], costs=None)  # the channel defaults
    batch = BanditBatch.from_contexts(own)
    assert np.array_equal(batch.costs[1], shared * 2)
    assert np.array_equal(batch.costs[2], default_costs(contexts[0].actions))
    assert batch.costs.shape == (3, len(shared))


def test_feature_spec_types_attributes_and_round_trips_through_json(batch):
    spec = FeatureSpec.from_batch(batch)
    assert spec.numeric_attributes == ("age",)
    cats = dict(spec.categories)
    assert set(cats) == {"segment", "plan", "country"}
    assert set(cats["segment"]) == set(batch.attributes["segment"])
    assert spec.action_keys == SPACE.keys
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert len(FeatureSpec.from_batch(batch, max_categories=1).categories[0][1]) == 1


def test_spec_check_names_what_is_wrong(batch):
    spec = FeatureSpec.from_batch(batch)
    other = dataclasses.replace(spec, action_keys=spec.action_keys[:5])
    with pytest.raises(InvalidInput, match="action space differs"):
        row_matrix(batch, other)
    extra = dataclasses.replace(spec, customer=(*spec.customer, "lifetime_value"))
    with pytest.raises(
        InvalidInput, match=r"lacks customer features the model needs: \['lifetime_value'\]"
    ):
        row_matrix(batch, extra)
    with pytest.raises(InvalidInput, match="not a feature spec"):
        FeatureSpec.from_dict({"customer": []})


def test_row_matrix_shapes_and_logged_rows_agree(batch):
    spec = FeatureSpec.from_batch(batch)
    full = row_matrix(batch, spec)
    n, n_actions = len(batch), batch.n_actions
    assert full.shape == (n * n_actions, len(row_names(spec)))
    assert full.dtype == np.float32
    logged = row_matrix(batch, spec, actions=batch.action)
    assert logged.shape == (n, full.shape[1])
    assert np.array_equal(logged, full[np.arange(n) * n_actions + batch.action])


def test_row_matrix_encodes_channels_slots_attributes_and_interactions(batch):
    spec = FeatureSpec.from_batch(batch)
    names = row_names(spec)
    full = row_matrix(batch, spec).reshape(len(batch), batch.n_actions, -1)
    col = names.index
    email_noon = SPACE.index("email@today_noon")
    sms_now = SPACE.index("sms@now")
    assert full[0, email_noon, col("channel=email")] == 1.0
    assert full[0, email_noon, col("slot=today_noon")] == 1.0
    assert full[0, sms_now, col("channel=email")] == 0.0
    assert full[0, 0, col("channel=email")] == 0.0 and full[0, 0, col("slot=now")] == 0.0
    open_rate = batch.action_features[1, email_noon, ACTION_FEATURES.index("channel_open_rate")]
    assert full[1, email_noon, col("channel=email*channel_open_rate")] == pytest.approx(open_rate)
    assert full[1, sms_now, col("channel=email*channel_open_rate")] == 0.0
    pressure = batch.customer[2, BEHAVIOUR_FEATURES.index("pressure")]
    assert full[2, sms_now, col("is_contact*pressure")] == pytest.approx(pressure)
    assert full[2, 0, col("is_contact*pressure")] == 0.0
    segment = batch.attributes["segment"][3]
    assert full[3, 0, col(f"segment={segment}")] == 1.0
    assert full[3, 0, col("age")] == batch.attributes["age"][3]


def test_unseen_categories_and_missing_attributes_encode_as_unknown(batch, contexts):
    spec = FeatureSpec.from_batch(batch)
    odd = dataclasses.replace(contexts[0], attributes={"segment": "never_seen"})
    row = row_matrix(BanditBatch.from_contexts([odd]), spec)[0]
    names = row_names(spec)
    segment_cols = [i for i, k in enumerate(names) if k.startswith("segment=")]
    assert not row[segment_cols].any()
    assert np.isnan(row[names.index("age")])


def test_vw_examples_give_one_line_per_eligible_action(batch):
    spec = FeatureSpec.from_batch(batch)
    examples = list(vw_examples(batch, spec))
    assert len(examples) == len(batch)
    for i, (lines, idx) in enumerate(examples):
        assert lines[0].startswith("shared |c ") and " |a " in lines[0]
        assert np.array_equal(idx, np.flatnonzero(batch.eligible[i]))
        assert len(lines) == 1 + len(idx)
        assert lines[1] == "|x none"
    lines, idx = next(vw_examples(batch, spec, all_actions=True))
    assert len(lines) == 1 + batch.n_actions
    assert lines[1 + SPACE.index("push@now")].startswith("|x push now push@now |f is_contact:1")


def test_vw_examples_label_the_logged_action_even_when_masked(batch):
    spec = FeatureSpec.from_batch(batch)
    masked = dataclasses.replace(
        batch, eligible=np.eye(batch.n_actions, dtype=bool)[np.zeros(len(batch), int)]
    )
    cost = -batch.reward.astype(float)
    for i, (lines, idx) in enumerate(vw_examples(masked, spec, cost=cost)):
        a = batch.action[i]
        assert a in idx
        labelled = [line for line in lines if line[0].isdigit()]
        assert labelled == [lines[1 + list(idx).index(a)]]
        assert labelled[0].startswith(f"0:{cost[i]:.6g}:{batch.pscore[i]:.6g} |x")


def test_vw_parses_every_feature_it_is_given(batch):
    spec = FeatureSpec.from_batch(batch)
    ws = Workspace("--cb_adf --quiet")
    lines, idx = next(vw_examples(batch, spec))
    parsed = ws.parse(lines)
    nonzero_customer = int(np.count_nonzero(batch.customer[0]))
    assert parsed[0].num_features_in("c") == nonzero_customer
    assert parsed[0].num_features_in("a") == 4
    assert parsed[2].num_features_in("x") == 3
    ws.finish_example(parsed)
    ws.finish()


def test_single_context_paths_write_what_the_batch_paths_write(batch, contexts):
    spec = FeatureSpec.from_batch(batch)
    for i, ctx in enumerate(contexts):
        one = batch.select([i])
        assert np.array_equal(context_rows(ctx, spec), row_matrix(one, spec), equal_nan=True)
        for every in (False, True):
            lines, idx = vw_context_lines(ctx, spec, all_actions=every)
            batch_lines, batch_idx = next(vw_examples(one, spec, all_actions=every))
            assert lines == batch_lines
            assert np.array_equal(idx, batch_idx)
    other = dataclasses.replace(contexts[0], actions=ActionSpace.build(["sms"]))
    with pytest.raises(InvalidInput, match="the context's action space differs"):
        context_rows(other, spec)
    bare = dataclasses.replace(contexts[0], customer={"known": 1.0})
    with pytest.raises(InvalidInput, match="the context lacks feature 'tenure_days'"):
        vw_context_lines(bare, spec)


def test_one_context_encodes_odd_attributes_as_a_batch_does(batch, contexts):
    spec = FeatureSpec.from_batch(batch)
    odd = [
        {"segment": "never-seen", "plan": None, "country": contexts[0].attributes["country"]},
        {"age": None, "segment": 7},
        {"age": "forty", "plan": True},
        {},
    ]
    for attributes in odd:
        ctx = dataclasses.replace(contexts[1], attributes=attributes)
        expected = row_matrix(BanditBatch.from_contexts([ctx]), spec)
        got = context_rows(ctx, spec)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected, equal_nan=True)
