"""Off-policy estimators: hand-worked values, bootstrap intervals, argument checks, unbiasedness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from decisioning.errors import InvalidInput, LearningError
from training import ope
from training.ope import (
    Estimate,
    dm,
    dr,
    effective_sample_size,
    evaluate_policies,
    importance_weights,
    ips,
    max_weight,
    snips,
)

# A log of four decisions over two actions, small enough to work out by hand.
REWARD = np.array([1.0, 0.0, 1.0, 0.0])
ACTION = np.array([0, 1, 1, 0])
PSCORE = np.array([0.5, 0.5, 0.25, 0.75])
TARGET = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
Q_HAT = np.array([[0.5, 0.2], [0.4, 0.4], [0.1, 0.9], [0.3, 0.0]])
# Weights pi(a_i|x_i) / pscore_i: 1/0.5 = 2, 0.5/0.5 = 1, 0.8/0.25 = 3.2, 0.6/0.75 = 0.8.
WEIGHTS = np.array([2.0, 1.0, 3.2, 0.8])


def logged(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "reward": REWARD,
        "action": ACTION,
        "action_dist": TARGET,
        "pscore": PSCORE,
        "random_state": 0,
    }
    return kwargs | overrides


def test_importance_weights_by_hand() -> None:
    np.testing.assert_allclose(importance_weights(ACTION, TARGET, PSCORE), WEIGHTS)
    # ESS = (2 + 1 + 3.2 + 0.8)^2 / (4 + 1 + 10.24 + 0.64) = 49 / 15.88
    assert effective_sample_size(WEIGHTS) == pytest.approx(49 / 15.88)
    assert max_weight(WEIGHTS) == pytest.approx(3.2)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [(np.ones(7), 7.0), (np.array([0.0, 0.0, 5.0]), 1.0), (np.zeros(3), 0.0)],
)
def test_effective_sample_size_extremes(weights: np.ndarray, expected: float) -> None:
    assert effective_sample_size(weights) == pytest.approx(expected)


def test_ips_by_hand() -> None:
    # w * r = [2, 0, 3.2, 0]; mean = 5.2 / 4 = 1.3
    est = ips(**logged())
    assert est.value == pytest.approx(1.3)
    assert (est.name, est.n, est.alpha) == ("ips", 4, 0.05)
    assert est.ess == pytest.approx(49 / 15.88)


def test_clipped_ips_by_hand() -> None:
    # Clipping at 2: w = [2, 1, 2, 0.8]; w * r = [2, 0, 2, 0]; mean = 4 / 4 = 1.0
    est = ips(**logged(clip=2.0))
    assert est.value == pytest.approx(1.0)
    # ESS of the clipped weights: 5.8^2 / (4 + 1 + 4 + 0.64) = 33.64 / 9.64
    assert est.ess == pytest.approx(33.64 / 9.64)


def test_snips_by_hand() -> None:
    # sum w r / sum w = 5.2 / 7
    assert snips(**logged()).value == pytest.approx(5.2 / 7.0)


def test_dm_by_hand() -> None:
    # sum_a pi(a|x_i) q(x_i, a) per row: 0.5, 0.5*0.4 + 0.5*0.4 = 0.4, 0.2*0.1 + 0.8*0.9 = 0.74,
    # 0.6*0.3 + 0.4*0 = 0.18; mean = 1.82 / 4 = 0.455
    est = dm(action_dist=TARGET, estimated_rewards=Q_HAT, random_state=0)
    assert est.value == pytest.approx(0.455)
    assert est.ess == 4.0


def test_dr_by_hand() -> None:
    # Residuals r_i - q(x_i, a_i): 1 - 0.5 = 0.5, 0 - 0.4 = -0.4, 1 - 0.9 = 0.1, 0 - 0.3 = -0.3
    # w * residual: 1.0, -0.4, 0.32, -0.24 -> 0.68; DR = (1.82 + 0.68) / 4 = 0.625
    assert dr(**logged(estimated_rewards=Q_HAT)).value == pytest.approx(0.625)
    # Clipped at 2: 1.0 - 0.4 + 0.2 - 0.24 = 0.56; DR = (1.82 + 0.56) / 4 = 0.595
    assert dr(**logged(estimated_rewards=Q_HAT, clip=2.0)).value == pytest.approx(0.595)


def test_dr_with_exact_reward_model_on_deterministic_rewards_is_dm() -> None:
    # If q equals the observed rewards for the logged actions, every residual is zero.
    q = Q_HAT.copy()
    q[np.arange(4), ACTION] = REWARD
    assert dr(**logged(estimated_rewards=q)).value == pytest.approx(
        dm(action_dist=TARGET, estimated_rewards=q).value
    )


def test_snips_is_nan_when_the_target_never_takes_a_logged_action() -> None:
    # The log only holds action 0; a target that never takes it has no support at all.
    never = np.tile([0.0, 1.0], (4, 1))
    est = snips(**logged(action=np.zeros(4, dtype=int), action_dist=never))
    assert np.isnan(est.value) and est.ess == 0.0


# ---------------------------------------------------------------------------------------------
# Bootstrap intervals


@pytest.fixture(scope="module")
def world_log() -> dict[str, np.ndarray]:
    """A random log of 2,000 decisions over 5 actions with a Dirichlet target and reward model."""
    rng = np.random.default_rng(11)
    n, k = 2_000, 5
    logging = rng.dirichlet(np.ones(k), n)
    action = (logging.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return {
        "reward": (rng.random(n) < 0.3).astype(float),
        "action": action,
        "pscore": logging[np.arange(n), action],
        "action_dist": rng.dirichlet(np.ones(k), n),
        "estimated_rewards": rng.random((n, k)) * 0.6,
    }


def run_all(log: dict[str, np.ndarray], **kw: Any) -> list[Estimate]:
    base = {k: v for k, v in log.items() if k != "estimated_rewards"}
    return [
        ips(**base, **kw),
        snips(**base, **kw),
        dm(action_dist=log["action_dist"], estimated_rewards=log["estimated_rewards"], **kw),
        dr(**log, **kw),
    ]


def test_interval_contains_estimate(world_log: dict[str, np.ndarray]) -> None:
    for est in run_all(world_log, random_state=3):
        assert est.ci_low < est.value < est.ci_high, est


def test_interval_is_reproducible_and_seed_dependent(world_log: dict[str, np.ndarray]) -> None:
    a, b, c = (ips(**{**world_log_no_q(world_log), "random_state": s}) for s in (5, 5, 6))
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def same(a: Estimate, b: Estimate) -> bool:
    """Equal up to float rounding (matrix products of different shapes round differently)."""
    fields = ("value", "ci_low", "ci_high", "ess")
    return (a.name, a.n, a.alpha) == (b.name, b.n, b.alpha) and all(
        getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-12) for f in fields
    )


def world_log_no_q(log: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in log.items() if k != "estimated_rewards"}


def test_interval_width_matches_the_standard_error_of_a_mean() -> None:
    # With pscore 1 and the target taking the logged action, IPS is the plain mean of rewards,
    # whose 95% interval is about 2 * 1.96 standard errors wide.
    rng = np.random.default_rng(2)
    n = 1_000
    reward = rng.normal(size=n)
    action = np.zeros(n, dtype=int)
    est = ips(
        reward=reward,
        action=action,
        action_dist=np.ones((n, 1)),
        pscore=np.ones(n),
        n_bootstrap=2_000,
        random_state=0,
    )
    se = reward.std() / np.sqrt(n)
    assert est.ci_high - est.ci_low == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_bootstrap_in_blocks_matches_one_block(
    world_log: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = run_all(world_log, random_state=9)
    # One resample per block: the generator's stream is consumed in the same order.
    monkeypatch.setattr(ope, "_BLOCK", len(world_log["reward"]))
    assert all(map(same, run_all(world_log, random_state=9), whole))


# ---------------------------------------------------------------------------------------------
# Several policies at once


def test_evaluate_policies_shares_one_bootstrap(world_log: dict[str, np.ndarray]) -> None:
    n, k = world_log["action_dist"].shape
    table = evaluate_policies(
        reward=world_log["reward"],
        action=world_log["action"],
        pscore=world_log["pscore"],
        estimated_rewards=world_log["estimated_rewards"],
        policies={"target": world_log["action_dist"], "uniform": np.full((n, k), 1.0 / k)},
        random_state=4,
    )
    frame = table.to_frame()
    assert list(frame.columns) == [
        "policy", "estimator", "value", "ci_low", "ci_high", "alpha", "n", "ess", "max_weight",
    ]  # fmt: skip
    assert len(frame) == 8 and table.policies == ("target", "uniform")
    # The same seed gives the same resamples, however many estimators share them.
    assert same(table.get("target", "ips"), ips(**world_log_no_q(world_log), random_state=4))
    assert same(table.get("target", "dr"), dr(**world_log, random_state=4))
    best = max(table.policies, key=lambda p: table.get(p, "dr").value)
    assert table.best() == best


def test_evaluate_policies_without_reward_model_runs_ips_and_snips(
    world_log: dict[str, np.ndarray],
) -> None:
    table = evaluate_policies(
        reward=world_log["reward"],
        action=world_log["action"],
        pscore=world_log["pscore"],
        policies={"target": world_log["action_dist"]},
        clip=5.0,
    )
    assert table.estimators == ("ips", "snips")
    assert table.to_frame()["max_weight"].max() <= np.max(
        importance_weights(world_log["action"], world_log["action_dist"], world_log["pscore"])
    )


def _table(values: dict[str, tuple[float, float]]) -> ope.OPETable:
    rows = tuple(
        ope.PolicyEstimate(name, Estimate("dr", v, low, v + 1.0, 0.05, 10, 10.0), 1.0)
        for name, (v, low) in values.items()
    )
    return ope.OPETable(rows)


def test_best_by_value_by_lower_bound_and_skipping_nan() -> None:
    table = _table({"bold": (0.9, 0.1), "safe": (0.8, 0.6), "broken": (np.nan, np.nan)})
    assert table.best("dr") == "bold"
    assert table.best("dr", by="ci_low") == "safe"
    with pytest.raises(InvalidInput, match="estimator"):
        table.best("ips")
    with pytest.raises(InvalidInput, match="by"):
        table.best("dr", by="median")
    with pytest.raises(InvalidInput, match="no 'dr' estimate for policy 'ghost'"):
        table.get("ghost")
    with pytest.raises(LearningError, match="finite"):
        _table({"broken": (np.nan, np.nan)}).best()


# ---------------------------------------------------------------------------------------------
# Argument checks


def _nan_at(arr: np.ndarray, index: Any) -> np.ndarray:
    out = arr.astype(float).copy()
    out[index] = np.nan
    return out


BAD_ARGUMENTS = [
    ({"reward": _nan_at(REWARD, 2)}, r"reward: not finite at row 2"),
    ({"reward": REWARD.reshape(2, 2)}, r"reward: must be 1-D"),
    ({"reward": np.array([])}, r"reward: no logged decisions"),
    ({"action": ACTION[:3]}, r"action: has 3 rows, the log has 4"),
    ({"action": ACTION.astype(float)}, r"action: must hold integer"),
    ({"action": np.array([0, 1, 2, 0])}, r"action: index 2 at row 2 is outside 0..1"),
    ({"action": np.array([0, -1, 1, 0])}, r"action: index -1 at row 1"),
    ({"pscore": np.array([0.5, 0.0, 0.25, 0.75])}, r"pscore: must lie in \(0, 1\]; row 1"),
    ({"pscore": np.array([0.5, 0.5, 1.5, 0.75])}, r"pscore: .* row 2 is 1.5"),
    ({"pscore": _nan_at(PSCORE, 3)}, r"pscore: .* row 3 is nan"),
    ({"pscore": PSCORE[:2]}, r"pscore: has 2 rows"),
    ({"action_dist": TARGET * 0.9}, r"action_dist: rows must sum to 1; row 0 sums to 0.9"),
    ({"action_dist": TARGET[:3]}, r"action_dist: has 3 rows"),
    ({"action_dist": TARGET[:, 0]}, r"action_dist: must be 2-D"),
    ({"action_dist": np.array([[1.5, -0.5], *TARGET[1:]])}, r"action_dist: row 0 has negative"),
    ({"action_dist": _nan_at(TARGET, (3, 1))}, r"action_dist: row 3 has negative or non-finite"),
    ({"estimated_rewards": Q_HAT[:, :1]}, r"estimated_rewards: shape \(4, 1\)"),
    ({"estimated_rewards": _nan_at(Q_HAT, (1, 0))}, r"estimated_rewards: row 1 is not finite"),
    ({"clip": 0.0}, r"clip: must be a positive"),
    ({"n_bootstrap": 0}, r"n_bootstrap: must be at least 1"),
    ({"n_bootstrap": 2.5}, r"n_bootstrap: must be an integer"),
    ({"alpha": 1.5}, r"alpha: must lie in \(0, 1\)"),
]


@pytest.mark.parametrize(("override", "match"), BAD_ARGUMENTS)
def test_bad_arguments_name_the_argument(override: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        dr(**logged(**({"estimated_rewards": Q_HAT} | override)))


BAD_TABLE_ARGUMENTS = [
    ({"policies": {}}, r"policies: give at least one"),
    ({"estimators": ("ips", "switch")}, r"estimators: \['switch'\]"),
    ({"estimators": ("dm",), "estimated_rewards": None}, r"estimated_rewards: required"),
    ({"policies": {"bad": TARGET * 2}}, r"policies\['bad'\]: rows must sum to 1"),
    ({"policies": {"a": TARGET, "b": np.full((4, 3), 1 / 3)}}, r"policies: .* differ in shape"),
]


@pytest.mark.parametrize(("override", "match"), BAD_TABLE_ARGUMENTS)
def test_bad_table_arguments_name_the_argument(override: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {
        "reward": REWARD,
        "action": ACTION,
        "pscore": PSCORE,
        "estimated_rewards": Q_HAT,
        "policies": {"target": TARGET},
    }
    with pytest.raises(InvalidInput, match=match):
        evaluate_policies(**(kwargs | override))


# ---------------------------------------------------------------------------------------------
# Unbiasedness on a known contextual world

# Context bit x ~ Bernoulli(0.5); three actions; Bernoulli rewards with these means.
REWARD_MEAN = np.array([[0.1, 0.5, 0.2], [0.4, 0.1, 0.6]])
LOGGING = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
EVALUATED = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
# True value: 0.5 * (0.1*0.1 + 0.8*0.5 + 0.1*0.2) + 0.5 * (0.1*0.4 + 0.1*0.1 + 0.8*0.6)
#           = 0.5 * 0.43 + 0.5 * 0.53 = 0.48
TRUE_VALUE = 0.48


def simulate(seed: int, n: int = 500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    action = (LOGGING[x].cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    reward = (rng.random(n) < REWARD_MEAN[x, action]).astype(float)
    return {
        "reward": reward,
        "action": action,
        "pscore": LOGGING[x, action],
        "action_dist": EVALUATED[x],
        "exact_q": REWARD_MEAN[x],
    }


@pytest.fixture(scope="module")
def repeated_estimates() -> dict[str, np.ndarray]:
    """Estimates of the evaluated policy on 200 independent logs."""
    out: dict[str, list[float]] = {"ips": [], "snips": [], "dr_wrong_q": [], "dr_exact_q": []}
    out["dm_wrong_q"] = []
    for seed in range(200):
        log = simulate(seed)
        base = {k: log[k] for k in ("reward", "action", "pscore", "action_dist")}
        wrong_q = np.full_like(log["exact_q"], 0.3)  # a badly wrong reward model
        kw = {"n_bootstrap": 1, "random_state": seed}
        out["ips"].append(ips(**base, **kw).value)
        out["snips"].append(snips(**base, **kw).value)
        out["dr_wrong_q"].append(dr(**base, estimated_rewards=wrong_q, **kw).value)
        out["dr_exact_q"].append(dr(**base, estimated_rewards=log["exact_q"], **kw).value)
        out["dm_wrong_q"].append(
            dm(action_dist=base["action_dist"], estimated_rewards=wrong_q, **kw).value
        )
    return {k: np.array(v) for k, v in out.items()}


def test_true_value_of_the_world() -> None:
    assert float(np.mean((EVALUATED * REWARD_MEAN).sum(axis=1))) == pytest.approx(TRUE_VALUE)


@pytest.mark.parametrize("name", ["ips", "dr_wrong_q", "dr_exact_q"])
def test_ips_and_dr_are_unbiased(repeated_estimates: dict[str, np.ndarray], name: str) -> None:
    values = repeated_estimates[name]
    standard_error = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean() - TRUE_VALUE) < max(4 * standard_error, 0.002)
    assert abs(values.mean() - TRUE_VALUE) < 0.01


def test_snips_is_nearly_unbiased(repeated_estimates: dict[str, np.ndarray]) -> None:
    assert abs(repeated_estimates["snips"].mean() - TRUE_VALUE) < 0.01


def test_a_wrong_reward_model_biases_dm_but_not_dr(
    repeated_estimates: dict[str, np.ndarray],
) -> None:
    # DM just averages the model's constant 0.3; DR's weighted residuals correct it.
    assert repeated_estimates["dm_wrong_q"].mean() == pytest.approx(0.3)
    assert repeated_estimates["dr_exact_q"].std() < repeated_estimates["ips"].std()
