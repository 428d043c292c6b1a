"""A reward model compiled to native code predicts what LightGBM predicts, and falls back."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from models.baselines import RandomPolicy
from models.compiled import CompiledTrees, compile_policy
from models.encoding import BanditBatch
from models.greedy import GreedyPolicy
from models.outcome import RewardModel
from tests.models.conftest import SPACE, make_context

pytest.importorskip("lleaves", reason="lleaves (model compilation) is not installed")


@pytest.fixture(scope="module")
def fitted(logged_batch):
    return RewardModel(random_state=0).fit(logged_batch)


def _probe(n: int, seed: int = 5) -> BanditBatch:
    rng = np.random.default_rng(seed)
    every = np.ones(len(SPACE), dtype=bool)
    return BanditBatch.from_contexts([make_context(rng, eligible=every) for _ in range(n)])


def test_compiled_predictions_equal_lightgbm(fitted, tmp_path):
    model = pickle.loads(pickle.dumps(fitted))
    small, large = _probe(3), _probe(120)  # 120 x 31 rows: scored on every core
    before = model.predict(small), model.predict(large), model.predict_context(small.context(0))
    assert model.compile(tmp_path)
    assert model.__dict__["_compiled"] is not None
    after = model.predict(small), model.predict(large), model.predict_context(small.context(0))
    for a, b in zip(before, after, strict=True):
        assert np.abs(a - b).max() < 1e-9


def test_the_machine_code_is_cached_and_a_damaged_cache_is_rebuilt(fitted, tmp_path):
    first = CompiledTrees.compile(fitted.booster_, tmp_path)
    assert first is not None
    cached = tmp_path / f"{first.key}.so"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([cached.name, f"{first.key}.sha256"])
    stamp = cached.stat().st_mtime_ns
    again = CompiledTrees.compile(fitted.booster_, tmp_path)
    assert again is not None and again.key == first.key
    assert cached.stat().st_mtime_ns == stamp  # loaded, not compiled again
    cached.write_bytes(b"not machine code")
    rebuilt = CompiledTrees.compile(fitted.booster_, tmp_path)
    assert rebuilt is not None and cached.stat().st_size > 100
    x = np.random.default_rng(1).normal(size=(50, rebuilt.n_features))
    assert np.abs(rebuilt.predict(x) - fitted.booster_.predict(x)).max() < 1e-9


def test_compiled_model_pickles_without_its_machine_code(fitted, tmp_path):
    model = pickle.loads(pickle.dumps(fitted))
    probe = _probe(4)
    assert model.compile(tmp_path)
    again = pickle.loads(pickle.dumps(model))
    assert "_compiled" not in again.__dict__
    assert np.abs(again.predict(probe) - model.predict(probe)).max() < 1e-9
    with pytest.raises(TypeError, match="native code"):
        pickle.dumps(model.__dict__["_compiled"])


def test_a_model_that_does_not_compile_stays_on_lightgbm(fitted, tmp_path, monkeypatch, caplog):
    model = pickle.loads(pickle.dumps(fitted))
    probe = _probe(4)
    expected = model.predict(probe)

    def wrong(self, x):  # compiled code that disagrees with LightGBM is refused
        return np.zeros(len(x))

    monkeypatch.setattr(CompiledTrees, "predict", wrong)
    assert not model.compile(tmp_path)
    assert "differ from LightGBM" in caplog.text
    monkeypatch.undo()
    assert np.array_equal(model.predict(probe), expected)


def test_greedy_policy_compiles_its_reward_model(fitted, tmp_path):
    policy = GreedyPolicy(pickle.loads(pickle.dumps(fitted)))
    probe = _probe(6)
    dist, values = policy.distributions_and_values(probe)
    assert not compile_policy(RandomPolicy(), tmp_path)  # no trees to compile
    assert compile_policy(policy, tmp_path)
    dist2, values2 = policy.distributions_and_values(probe)
    assert np.array_equal(dist, dist2) and np.abs(values - values2).max() < 1e-9


def test_rows_of_the_wrong_width_are_refused(fitted, tmp_path):
    compiled = CompiledTrees.compile(fitted.booster_, tmp_path)
    assert compiled is not None
    with pytest.raises(ValueError, match=f"must have {compiled.n_features} features"):
        compiled.predict(np.zeros((3, compiled.n_features - 1)))


def test_predicting_leaves_no_garbage_cycles(fitted, tmp_path):
    import gc

    compiled = CompiledTrees.compile(fitted.booster_, tmp_path)
    assert compiled is not None
    x = np.zeros((10, compiled.n_features))
    gc.collect()
    gc.disable()
    try:
        for _ in range(500):
            compiled.predict(x)
        assert gc.collect() < 50  # a cycle per call would leave thousands of objects
    finally:
        gc.enable()
