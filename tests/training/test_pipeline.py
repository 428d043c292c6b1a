"""The training pipeline end to end: a simulated history to a registered, gated policy."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pandas as pd
import pytest

from decisioning.errors import LearningError
from decisioning.objectives import Objective
from decisioning.settings import Settings
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, simulate
from training.pipeline import FALLBACK_POLICY, TrainResult, train
from training.registry import CHALLENGER, CHAMPION, ChampionPolicies, alias_version, connect, gate

LEARNED = ("lightgbm_greedy", "vw_bandit")


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    sim = simulate(SimulationConfig(customers=1500, days=14, seed=3))
    return {"customers": sim.customers, "contacts": sim.contacts, "events": sim.events}


@pytest.fixture(scope="module")
def objective() -> Objective:
    return example_objective("premium_upsell")


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    history: dict[str, pd.DataFrame],
    objective: Objective,
) -> tuple[Settings, TrainResult, TrainResult]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = train(objective=objective, **history, settings=settings)
        second = train(objective=objective, **history, settings=settings)
    return settings, first, second


def _dr(result: TrainResult, policy: str) -> float:
    row = result.table[(result.table["policy"] == policy) & (result.table["estimator"] == "dr")]
    return float(row["value"].iloc[0])


def test_a_run_is_logged_and_its_policy_registered(
    runs: tuple[Settings, TrainResult, TrainResult], objective: Objective
) -> None:
    settings, first, _ = runs
    assert first.objective_id == objective.id and first.model_version == "1"
    assert first.candidate in LEARNED
    # Every candidate and baseline is evaluated with all four estimators.
    table = first.table
    for policy in (*LEARNED, "random", "do_nothing", "best_single_channel", FALLBACK_POLICY):
        assert set(table.loc[table["policy"] == policy, "estimator"]) == {
            "ips",
            "snips",
            "dm",
            "dr",
        }, policy
    # The candidate is the learned policy with the best DR estimate.
    assert _dr(first, first.candidate) == max(_dr(first, p) for p in LEARNED)
    client = connect(settings)
    run = client.get_run(first.run_id)
    assert any(k.startswith(first.candidate) for k in run.data.metrics)
    assert run.data.tags["promotion"] == first.promotion.alias
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    assert {"evaluation/ope_table.csv", "evaluation/ope_values.png"} <= artifacts
    version = client.get_model_version(objective.id, "1")
    assert version.tags["promotion"] == first.promotion.reason
    assert float(version.tags["dr"]) == pytest.approx(_dr(first, first.candidate), abs=1e-6)


def test_the_first_policy_must_beat_the_fallback(
    runs: tuple[Settings, TrainResult, TrainResult], objective: Objective
) -> None:
    settings, first, _ = runs
    beats = _dr(first, first.candidate) > _dr(first, FALLBACK_POLICY)
    assert first.promotion.promoted == beats
    assert first.promotion.alias == (CHAMPION if beats else CHALLENGER)
    assert "no champion yet" in first.promotion.reason


def test_the_second_run_is_gated_against_the_champion(
    runs: tuple[Settings, TrainResult, TrainResult], objective: Objective
) -> None:
    settings, first, second = runs
    assert second.model_version == "2"
    client = connect(settings)
    if first.promotion.promoted:
        # The champion is evaluated beside the candidates on the same hold-out period.
        assert CHAMPION in set(second.table["policy"])
        row = second.table[
            (second.table["policy"] == second.candidate) & (second.table["estimator"] == "dr")
        ]
        beats = float(row["ci_low"].iloc[0]) > _dr(second, CHAMPION)
        assert second.promotion.promoted == beats
        expected = "2" if beats else "1"
    else:
        expected = "2" if second.promotion.promoted else None
    assert alias_version(client, objective.id, CHAMPION) == expected


def test_the_service_loads_the_champion(
    runs: tuple[Settings, TrainResult, TrainResult], objective: Objective
) -> None:
    settings, *_ = runs
    client = connect(settings)
    champion = alias_version(client, objective.id, CHAMPION)
    served = ChampionPolicies(settings).policy_for(objective)
    if champion is None:
        assert served.fallback
    else:
        assert not served.fallback
        assert served.model_version == f"{objective.id}/{champion}"
        reward_model = getattr(served.policy, "reward_model", None)
        if reward_model is not None and importlib.util.find_spec("lleaves") is not None:
            # a served tree model is compiled to native code, cached in the data directory
            assert reward_model.__dict__.get("_compiled") is not None
            assert list(settings.compiled_dir.glob("*.so"))


def test_too_little_history_is_refused(
    tmp_path: Path, history: dict[str, pd.DataFrame], objective: Objective
) -> None:
    few = history["contacts"].head(50)
    with pytest.raises(LearningError, match="at least 200 are needed"):
        train(
            objective=objective,
            customers=history["customers"],
            contacts=few,
            events=history["events"],
            settings=Settings(data_dir=tmp_path),
        )


def test_an_objective_nobody_is_eligible_for_is_refused(
    tmp_path: Path, history: dict[str, pd.DataFrame], objective: Objective
) -> None:
    nobody = objective.model_copy(update={"segment": 'plan == "no such plan"'})
    with pytest.raises(LearningError, match="no usable decision"):
        train(objective=nobody, **history, settings=Settings(data_dir=tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "promoted", "reason"),
    [
        ({"champion_value": None}, True, "no champion yet"),
        ({"champion_value": None, "candidate_value": 0.2, "fallback_value": 0.1}, True, "beats"),
        (
            {"champion_value": None, "candidate_value": 0.1, "fallback_value": 0.2},
            False,
            "fallback keeps serving",
        ),
        ({"champion_value": 0.10}, True, "beats the champion"),
        ({"champion_value": 0.20}, False, "does not beat the champion"),
        ({"champion_value": 0.20, "force": True}, False, "forced"),
    ],
)
def test_gate(kwargs: dict, promoted: bool, reason: str) -> None:
    ok, why = gate(candidate_ci_low=0.15, **kwargs)
    assert reason in why
    assert ok == (promoted or kwargs.get("force", False))


def test_the_service_loads_the_champion_before_any_request(
    runs: tuple[Settings, TrainResult, TrainResult], objective: Objective
) -> None:
    from decisioning.store import open_store
    from serving.service import build_engine
    from training.registry import force_promote

    settings, first, _ = runs
    force_promote(connect(settings), objective.id, first.model_version)
    with open_store(settings.resolved_database_url, create=True) as store:
        store.save_objective(objective.activate().model_dump(mode="json"), expected_version=0)
    engine = build_engine(settings)
    try:
        assert engine.policies.describe() == {  # type: ignore[attr-defined]
            objective.id: f"{objective.id}/{first.model_version}"
        }
    finally:
        engine.close()
        engine.store.close()


def test_a_history_without_conversions_is_trained_with_a_warning_in_the_run(
    tmp_path: Path, history: dict[str, pd.DataFrame], objective: Objective
) -> None:
    events = history["events"]
    no_sales = events[events["type"] != "purchase"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(
            objective=objective,
            customers=history["customers"],
            contacts=history["contacts"],
            events=no_sales,
            settings=Settings(data_dir=tmp_path),
        )
    assert any("no conversion in the history" in w for w in result.warnings)
    assert any("no conversion in the history" in w for w in result.report["warnings"])
    assert any("conversion metrics not computed" in w for w in result.warnings)
    assert not any(k.startswith("outcome_model.") for k in result.metrics)
