"""The policy contract, checked on every policy; then what each baseline and greedy decide."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from decisioning.features import ACTION_FEATURES
from decisioning.policy import Policy, validate_distribution
from models.baselines import (
    BestSingleChannelPolicy,
    DoNothingPolicy,
    RandomPolicy,
    WaterfallPolicy,
)
from models.encoding import BanditBatch
from models.greedy import GreedyPolicy
from models.outcome import RewardModel
from models.vw_bandit import VWBandit
from tests.models.conftest import SPACE, make_context, make_logged_batch


@pytest.fixture(scope="module")
def small_log():
    return make_logged_batch(np.random.default_rng(21), 500)


@pytest.fixture(scope="module")
def reward_model(small_log):
    return RewardModel(n_estimators=40).fit(small_log)


FACTORIES = {
    "random": lambda log, rm, seed: RandomPolicy(seed=seed),
    "do_nothing": lambda log, rm, seed: DoNothingPolicy(seed=seed),
    "best_single_channel": lambda log, rm, seed: BestSingleChannelPolicy(seed=seed).fit(log),
    "waterfall": lambda log, rm, seed: WaterfallPolicy(seed=seed),
    "greedy": lambda log, rm, seed: GreedyPolicy(rm, epsilon=0.1, seed=seed),
    "vw_epsilon": lambda log, rm, seed: VWBandit(exploration="epsilon", seed=seed).fit(log),
    "vw_squarecb": lambda log, rm, seed: VWBandit(exploration="squarecb", seed=seed).fit(log),
}


@pytest.fixture(params=sorted(FACTORIES))
def make_policy(request, small_log, reward_model):
    return lambda seed=0: FACTORIES[request.param](small_log, reward_model, seed)


@pytest.fixture(scope="module")
def contexts():
    """Random customers under random masks, including masks that leave only doing nothing."""
    rng = np.random.default_rng(99)
    out = [make_context(rng, eligible_share=share) for share in rng.uniform(0.05, 1.0, 30)]
    only_nothing = np.zeros(len(SPACE), dtype=bool)
    only_nothing[0] = True
    out.append(make_context(rng, eligible=only_nothing))
    out.append(make_context(rng, eligible=np.ones(len(SPACE), dtype=bool)))
    return out


def test_distribution_is_valid_on_the_eligible_actions(make_policy, contexts):
    policy = make_policy()
    assert isinstance(policy, Policy) and policy.name
    for ctx in contexts:
        dist = policy.action_distribution(ctx)
        assert dist.shape == (len(SPACE),)
        assert np.all(dist >= 0.0)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(dist[~ctx.eligible] == 0.0)
        validate_distribution(dist, ctx.eligible)
        values = policy.expected_values(ctx)
        assert values is None or (values.shape == (len(SPACE),) and np.all(np.isfinite(values)))


def test_batch_distributions_agree_with_single_ones(make_policy, contexts):
    policy = make_policy()
    batch = policy.action_distributions(BanditBatch.from_contexts(contexts))
    single = np.stack([policy.action_distribution(ctx) for ctx in contexts])
    assert batch.shape == single.shape
    assert np.allclose(batch, single, atol=1e-9)


def test_same_seed_same_choices(make_policy, contexts):
    first, second = make_policy(seed=5), make_policy(seed=5)
    picks = [first.choose(ctx) for ctx in contexts]
    assert picks == [second.choose(ctx) for ctx in contexts]
    for ctx, (index, propensity) in zip(contexts, picks, strict=True):
        assert ctx.eligible[index]
        assert propensity == pytest.approx(first.action_distribution(ctx)[index])
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert [first.choose(c, rng_a) for c in contexts] == [second.choose(c, rng_b) for c in contexts]


def test_different_seeds_make_different_choices(contexts):
    every = contexts[-1]
    assert len({RandomPolicy(seed=s).choose(every)[0] for s in range(20)}) > 5


# -- what each policy decides -------------------------------------------------------------------


def _only(ctx, **features):
    return dataclasses.replace(ctx, customer={**ctx.customer, **features})


def _waterfall_context(eligible_channels=None, **features):
    rng = np.random.default_rng(0)
    eligible = np.array(
        [
            a.is_nothing or eligible_channels is None or a.channel.value in eligible_channels
            for a in SPACE
        ]
    )
    ctx = make_context(rng, eligible=eligible)
    base = {
        "days_since_owned_contact": 30.0, "owned_unopened": 0.0, "preferred_hour": 12.0,
        "local_hour": 3.0, "consent_email": 1.0, "consent_push": 1.0,
        "paid_social_days_since_contact": 365.0,
    }  # fmt: skip
    return _only(ctx, **{**base, **features})


def _waterfall_choice(ctx) -> str:
    dist = WaterfallPolicy().action_distribution(ctx)
    assert dist.max() == 1.0
    return SPACE[int(np.argmax(dist))].key


@pytest.mark.parametrize(
    ("features", "eligible", "expected"),
    [
        ({}, None, "email@today_noon"),
        ({"preferred_hour": 10.0}, None, "email@weekend_morning"),
        ({"consent_email": 0.0}, None, "push@today_noon"),
        ({}, ("push", "sms", "paid_social"), "push@today_noon"),
        ({"consent_email": 0.0, "consent_push": 0.0}, None, "none"),
        ({"days_since_owned_contact": 2.0}, None, "none"),
        ({"days_since_owned_contact": 2.0, "owned_unopened": 1.0}, None, "paid_social@today_noon"),
        ({"days_since_owned_contact": 0.5, "owned_unopened": 1.0}, None, "none"),
        (
            {
                "days_since_owned_contact": 2.0,
                "owned_unopened": 1.0,
                "paid_social_days_since_contact": 1.0,
            },
            None,
            "none",
        ),
        ({"days_since_owned_contact": 2.0, "owned_unopened": 1.0}, ("email",), "none"),
    ],
)
def test_waterfall_rules(features, eligible, expected):
    assert _waterfall_choice(_waterfall_context(eligible, **features)) == expected


def test_waterfall_ties_go_to_the_sooner_slot():
    ctx = _waterfall_context(preferred_hour=19.0)
    delays = ctx.action_features[:, ACTION_FEATURES.index("send_delay_hours")]
    evening = [SPACE.index("email@today_evening"), SPACE.index("email@tomorrow_evening")]
    sooner = min(evening, key=lambda i: delays[i])
    assert _waterfall_choice(ctx) == SPACE[sooner].key


def test_best_single_channel_picks_the_best_logged_action(small_log):
    policy = BestSingleChannelPolicy().fit(make_logged_batch(np.random.default_rng(3), 2000))
    assert policy.action_key_.startswith("email@")
    assert policy.values_.idxmax() == policy.action_key_
    assert policy.values_[policy.action_key_] > policy.values_.filter(like="sms@").max()
    ctx = make_context(np.random.default_rng(1), eligible_share=1.0)
    masked = dataclasses.replace(
        ctx, eligible=np.arange(len(SPACE)) != SPACE.index(policy.action_key_)
    )
    assert policy.action_distribution(ctx)[SPACE.index(policy.action_key_)] == 1.0
    assert policy.action_distribution(masked)[0] == 1.0
    with pytest.raises(NotFittedError, match="must be fitted"):
        BestSingleChannelPolicy().action_distribution(ctx)


def test_greedy_picks_the_planted_best_action(logged_batch):
    policy = GreedyPolicy(RewardModel().fit(logged_batch))
    rng = np.random.default_rng(8)
    every = np.ones(len(SPACE), dtype=bool)
    active = [make_context(rng, eligible=every, activity=0.9) for _ in range(20)]
    idle = [make_context(rng, eligible=every, activity=0.0) for _ in range(20)]
    active_channels = [SPACE[policy.choose(c)[0]].channel.value for c in active]
    idle_channels = [SPACE[policy.choose(c)[0]].channel.value for c in idle]
    assert active_channels.count("email") == 20
    assert idle_channels.count("push") >= 16
    ctx = active[0]
    values = policy.expected_values(ctx)
    assert np.allclose(values, policy.reward_model.predict_context(ctx) - ctx.costs)
    only_sms = np.array([a.is_nothing or a.channel.value == "sms" for a in SPACE])
    choice = policy.choose(dataclasses.replace(ctx, eligible=only_sms))[0]
    assert SPACE[choice].channel.value in ("sms", "none")


def test_greedy_epsilon_spreads_mass(reward_model, contexts):
    ctx = contexts[-1]
    dist = GreedyPolicy(reward_model, epsilon=0.3).action_distribution(ctx)
    k = len(SPACE)
    assert np.isclose(dist.min(), 0.3 / k) and np.isclose(dist.max(), 0.7 + 0.3 / k)
    with pytest.raises(ValueError, match="epsilon must lie in"):
        GreedyPolicy(reward_model, epsilon=1.5)
