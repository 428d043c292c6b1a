"""The online contextual bandit: Vowpal Wabbit's ``cb_explore_adf``, learning from every reward.

Two VW workspaces learn the same examples: the *explorer* (``--cb_explore_adf`` with epsilon-
greedy or SquareCB exploration) gives the action distribution, and the *valuer* (``--cb_adf``,
a reward regression without exploration) gives each action's predicted cost, which
``cb_explore_adf`` does not expose. Both use ``--cb_type mtr`` (a regression of the logged
action's cost). Under epsilon-greedy both weigh each cost by the inverse of its logged
propensity, so the valuer's scores are exactly the estimates the explorer acts on. SquareCB
regresses the costs without that weight (VW's design), so under SquareCB the valuer's
importance-weighted estimates may rank actions differently from the explorer.
A cost is the action's cost minus its reward (``subtract_costs``) or minus the reward.
VW models keep their optimiser state (``--save_resume`` is VW's default), so a saved or
pickled bandit goes on learning exactly where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pylibvw
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from vowpalwabbit import Workspace

from decisioning.actions import Action
from decisioning.errors import InvalidInput
from decisioning.policy import DecisionContext
from models.baselines import BasePolicy
from models.encoding import BanditBatch, FeatureSpec, vw_context_lines
from models.vw_text import vw_texts

_EXPLORATIONS = ("epsilon", "squarecb")
_FORMAT = 1  # version of the saved-file layout
_LOCK_GUARD = threading.Lock()  # so two threads never give one bandit two locks


def _workspace_from_bytes(data: bytes) -> Workspace:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.vw"
        path.write_bytes(data)
        return Workspace(arg_list=["-i", str(path), "--quiet"])


# pyvw wraps every parsed line in a Python ``Example`` (label and stride look-ups per line),
# which costs as much as VW's own learning on a 30-action example. The same native calls
# ``Workspace.learn``/``predict`` end in, on the parsed examples as they are, give the same
# model and predictions at half the cost.


def _learn(ws: Workspace, text: str) -> None:
    examples = ws._parse(text)
    pylibvw.vw.learn_multi(ws, examples)
    pylibvw.vw._finish_example_multi_ex(ws, examples)


def _predict(models: list[Workspace], text: str) -> list[list[float]]:
    """Each model's action probabilities (explorer) or scores (valuer), in action-line order.

    The text is parsed once, by the first model: the explorer and the valuer are built with the
    same parsing options (bits, hashing, namespaces), so its examples are theirs too.
    """
    first = models[0]
    examples = first._parse(text)
    out: list[list[float]] = []
    for ws in models:
        pylibvw.vw.predict_multi(ws, examples)
        out.append(examples[0].get_action_scores())
    pylibvw.vw._finish_example_multi_ex(first, examples)
    return out


def _predict_sure(
    models: list[Workspace], explorer: Workspace, text: str, lines: int
) -> list[list[float]]:
    """:func:`_predict`, where the explorer is not asked about a single action line: its pmf
    over one action is that action for certain (renormalised, VW's float32 pmf gives 1 too)."""
    if lines != 1 or not any(ws is explorer for ws in models):
        return _predict(models, text)
    others = [ws for ws in models if ws is not explorer]
    answers = iter(_predict(others, text) if others else ())
    return [[1.0] if ws is explorer else next(answers) for ws in models]


#: rows from which ``fit`` trains its two VW models in two processes
_MIN_SIDE_BY_SIDE_ROWS = 20_000
_STREAM_EXAMPLES = 256  # examples per message to the child


def _side_by_side(rows: int) -> bool:
    return (
        rows >= _MIN_SIDE_BY_SIDE_ROWS
        and (os.cpu_count() or 1) > 1
        and "fork" in mp.get_all_start_methods()
        and threading.active_count() == 1  # forking a threaded process can deadlock the child
    )


def _fit_valuer(valuer: Workspace, reader: Any, writer: Any, path: Path) -> None:
    """In a forked child: learn the examples streamed by the parent, then save to ``path``."""
    writer.close()  # else the child would hold the pipe open and wait forever if the parent fails
    while data := reader.recv_bytes():
        for text in data.decode().split("\n\n"):
            _learn(valuer, text)
    valuer.save(str(path))


def _workspace_to_bytes(ws: Workspace) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.vw"
        ws.save(str(path))
        return path.read_bytes()


class VWBandit(BasePolicy, BaseEstimator):
    """A contextual bandit over the action space, trained on logged and live feedback.

    Parameters
    ----------
    exploration : {"squarecb", "epsilon"}
        SquareCB (inverse-gap weighting, ``gamma_scale`` x updates^``gamma_exponent``) or
        epsilon-greedy with ``epsilon``.
    interactions : tuple of str
        VW ``-q`` pairs of namespaces: ``c`` customer, ``a`` attributes, ``x`` channel/slot/
        action indicators, ``f`` numeric action features.
    learning_rate, power_t, l2, bits : VW's ``-l``, ``--power_t``, ``--l2``, ``-b``.
    passes : int
        Passes ``fit`` makes over the batch, in order (online learning over time).
    seed : int
        VW's ``--random_seed`` and the seed of :meth:`choose`.
    """

    def __init__(
        self,
        *,
        exploration: str = "squarecb",
        epsilon: float = 0.05,
        gamma_scale: float = 10.0,
        gamma_exponent: float = 0.5,
        interactions: tuple[str, ...] = ("cx", "ax", "cf", "xf"),
        learning_rate: float = 0.5,
        power_t: float = 0.5,
        l2: float = 0.0,
        bits: int = 18,
        passes: int = 1,
        subtract_costs: bool = True,
        max_categories: int = 32,
        seed: int = 0,
        name: str = "vw_bandit",
    ) -> None:
        self.exploration = exploration
        self.epsilon = epsilon
        self.gamma_scale = gamma_scale
        self.gamma_exponent = gamma_exponent
        self.interactions = interactions
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.l2 = l2
        self.bits = bits
        self.passes = passes
        self.subtract_costs = subtract_costs
        self.max_categories = max_categories
        self.seed = seed
        self.name = name

    # -- building -----------------------------------------------------------------------------

    def _arguments(self, *, explore: bool) -> list[str]:
        if self.exploration not in _EXPLORATIONS:
            raise InvalidInput(
                f"exploration must be one of {_EXPLORATIONS}, got {self.exploration!r}"
            )
        for pair in self.interactions:
            if len(pair) != 2 or not set(pair) <= set("caxf"):
                raise InvalidInput(f"interaction {pair!r} is not a pair of namespaces c, a, x, f")
        args = ["--cb_type", "mtr", "-b", str(self.bits), "-l", repr(float(self.learning_rate))]
        args += ["--power_t", repr(float(self.power_t)), "--random_seed", str(self.seed), "--quiet"]
        if self.l2:
            args += ["--l2", repr(float(self.l2))]
        for pair in self.interactions:
            args += ["-q", pair]
        if not explore:
            return ["--cb_adf", *args]
        if self.exploration == "epsilon":
            if not 0.0 <= self.epsilon <= 1.0:
                raise InvalidInput(f"epsilon must lie in [0, 1], got {self.epsilon}")
            return ["--cb_explore_adf", "--epsilon", repr(float(self.epsilon)), *args]
        return [
            "--cb_explore_adf",
            "--squarecb",
            "--gamma_scale",
            repr(float(self.gamma_scale)),
            "--gamma_exponent",
            repr(float(self.gamma_exponent)),
            *args,
        ]

    def _start(self, batch: BanditBatch) -> None:
        if self.passes < 1:
            raise InvalidInput(f"passes must be at least 1, got {self.passes}")
        self.spec_ = FeatureSpec.from_batch(batch, max_categories=self.max_categories)
        self.explorer_ = Workspace(arg_list=self._arguments(explore=True))
        self.valuer_ = Workspace(arg_list=self._arguments(explore=False))
        self.n_updates_ = 0

    def _lock(self) -> threading.Lock:
        # VW workspaces are not thread-safe; the service may decide from several threads.
        lock = self.__dict__.get("_vw_lock")
        if lock is None:
            with _LOCK_GUARD:
                lock = self.__dict__.setdefault("_vw_lock", threading.Lock())
        return lock

    # -- learning -----------------------------------------------------------------------------

    def fit(self, batch: BanditBatch) -> VWBandit:
        """Learn from scratch on a logged batch (in row order), ``passes`` times.

        On a large batch the valuer learns in a forked process while the explorer learns in
        this one: the two models are the ones learning them one after the other gives.
        """
        batch.feedback()
        self._start(batch)
        if not _side_by_side(len(batch)) or not self._fit_side_by_side(batch):
            for _ in range(self.passes):
                self._learn(batch)
        return self

    def _fit_side_by_side(self, batch: BanditBatch) -> bool:
        """Fit the explorer here and the valuer in a child process; False if the child failed.

        The examples' text is written once, here, and streamed to the child through a pipe.
        """
        ctx = mp.get_context("fork")
        reader, writer = ctx.Pipe(duplex=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "valuer.vw"
            child = ctx.Process(
                target=_fit_valuer, args=(self.valuer_, reader, writer, path), daemon=True
            )
            child.start()
            reader.close()
            try:
                with self._lock():
                    for _ in range(self.passes):
                        chunk: list[str] = []
                        for text in self._texts(batch):
                            _learn(self.explorer_, text)
                            chunk.append(text)
                            if len(chunk) == _STREAM_EXAMPLES:
                                writer.send_bytes("\n\n".join(chunk).encode())
                                chunk = []
                        if chunk:
                            writer.send_bytes("\n\n".join(chunk).encode())
                writer.send_bytes(b"")
            except OSError:  # the child died: its end of the pipe is gone
                pass
            finally:
                writer.close()
                child.join()
            if child.exitcode != 0 or not path.exists():
                # the explorer learnt alone: start again, in this process only
                self._start(batch)
                return False
            self.valuer_ = _workspace_from_bytes(path.read_bytes())
        self.n_updates_ = len(batch) * self.passes
        return True

    def partial_fit(self, batch: BanditBatch) -> VWBandit:
        """Learn from new logged rows, once each, starting a model if there is none."""
        batch.feedback()
        if not hasattr(self, "spec_"):
            self._start(batch)
        self._learn(batch)
        return self

    def learn_one(
        self, context: DecisionContext, action: int | str | Action, reward: float, pscore: float
    ) -> VWBandit:
        """Learn from one decision's outcome: the action taken, its reward and propensity."""
        batch = BanditBatch.from_contexts(
            [context], action=[action], reward=[reward], pscore=[pscore]
        )
        return self.partial_fit(batch)

    def _texts(self, batch: BanditBatch) -> Iterator[str]:
        """The labelled VW text of each logged row."""
        action, reward, _ = batch.feedback()
        cost = -reward
        if self.subtract_costs:
            cost = cost + batch.costs[np.arange(len(batch)), action]
        for text, _ in vw_texts(batch, self.spec_, cost=cost):
            yield text

    def _learn(self, batch: BanditBatch) -> None:
        with self._lock():
            for text in self._texts(batch):
                _learn(self.explorer_, text)
                _learn(self.valuer_, text)
        self.n_updates_ += len(batch)

    # -- deciding -----------------------------------------------------------------------------

    def _score_batch(
        self, batch: BanditBatch, *names: str, all_actions: bool = False
    ) -> list[np.ndarray]:
        """The scores of every context's action lines by each model named ("explorer_",
        "valuer_"), (n, A) apiece; one text per context serves them all. Actions not written
        (the ineligible ones) are 0."""
        check_is_fitted(self)
        models = [getattr(self, name) for name in names]
        out = [np.zeros((len(batch), batch.n_actions), dtype=float) for _ in models]
        with self._lock():
            texts = vw_texts(batch, self.spec_, all_actions=all_actions)
            for i, (text, idx) in enumerate(texts):
                answers = _predict_sure(models, self.explorer_, text, len(idx))
                for scores, predicted in zip(out, answers, strict=True):
                    scores[i, idx] = predicted
        return out

    def _score_context(self, context: DecisionContext, *names: str) -> list[np.ndarray]:
        """The scores of the context's eligible actions by each model named, 0 elsewhere."""
        check_is_fitted(self)
        models = [getattr(self, name) for name in names]
        lines, idx = vw_context_lines(context, self.spec_)
        text = "\n".join(lines)
        out = [np.zeros(len(context.actions), dtype=float) for _ in models]
        with self._lock():
            answers = _predict_sure(models, self.explorer_, text, len(idx))
            for scores, predicted in zip(out, answers, strict=True):
                scores[idx] = predicted
        return out

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        """VW's pmf over each context's eligible actions (the only ones it sees), zero elsewhere."""
        (pmf,) = self._score_batch(batch, "explorer_")
        # VW's pmf is float32: renormalise so it sums to 1 in float64.
        return pmf / pmf.sum(axis=1, keepdims=True)

    def values(self, batch: BanditBatch) -> np.ndarray:
        """Predicted net value (VW's cost, negated) of every action in every context: (n, A)."""
        (cost,) = self._score_batch(batch, "valuer_", all_actions=True)
        return -cost

    def distributions_and_values(self, batch: BanditBatch) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`action_distributions` and each context's values over its eligible actions
        (0 elsewhere, as :meth:`expected_values`), from one text per context for both models."""
        pmf, cost = self._score_batch(batch, "explorer_", "valuer_")
        return pmf / pmf.sum(axis=1, keepdims=True), -cost

    def distribution_and_values(self, context: DecisionContext) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`action_distribution` and :meth:`expected_values` from one text of the context."""
        pmf, cost = self._score_context(context, "explorer_", "valuer_")
        return pmf / pmf.sum(), -cost

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        (pmf,) = self._score_context(context, "explorer_")
        return pmf / pmf.sum()

    def expected_values(self, context: DecisionContext) -> np.ndarray:
        """Predicted net value of each eligible action; the actions the context does not allow
        are 0, not scored (as :meth:`models.outcome.RewardModel.predict_context` does).

        VW scores each action line on its own, so leaving out the ineligible ones changes no
        value, and a decision sends VW a third of the lines.
        """
        (cost,) = self._score_context(context, "valuer_")
        return -cost

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "explorer_")

    # -- persistence --------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "params": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()
            },
            "fitted": hasattr(self, "explorer_"),
            "n_updates": getattr(self, "n_updates_", 0),
            "spec": self.spec_.to_dict() if hasattr(self, "spec_") else None,
        }

    @classmethod
    def _from_parts(
        cls, state: dict[str, Any], explorer: bytes | None, valuer: bytes | None
    ) -> VWBandit:
        if state.get("format") != _FORMAT:
            raise InvalidInput(f"unknown VW bandit file format {state.get('format')!r}")
        params = dict(state["params"])
        params["interactions"] = tuple(params["interactions"])
        bandit = cls(**params)
        if state["fitted"]:
            if explorer is None or valuer is None:
                raise InvalidInput("a saved fitted VW bandit lacks its VW models")
            bandit.spec_ = FeatureSpec.from_dict(state["spec"])
            bandit.explorer_ = _workspace_from_bytes(explorer)
            bandit.valuer_ = _workspace_from_bytes(valuer)
            bandit.n_updates_ = int(state["n_updates"])
        return bandit

    def save(self, path: str | Path) -> Path:
        """Write the whole bandit (settings, feature spec, both VW models) to one zip file."""
        path = Path(path)
        with self._lock(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("bandit.json", json.dumps(self._state(), indent=2))
            if hasattr(self, "explorer_"):
                zf.writestr("explorer.vw", _workspace_to_bytes(self.explorer_))
                zf.writestr("valuer.vw", _workspace_to_bytes(self.valuer_))
        return path

    @classmethod
    def load(cls, path: str | Path) -> VWBandit:
        """A bandit saved by :meth:`save`, ready to decide and to go on learning."""
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                state = json.loads(zf.read("bandit.json"))
                explorer = zf.read("explorer.vw") if "explorer.vw" in names else None
                valuer = zf.read("valuer.vw") if "valuer.vw" in names else None
        except (zipfile.BadZipFile, KeyError) as err:
            raise InvalidInput(f"{path} is not a saved VW bandit: {err}") from None
        return cls._from_parts(state, explorer, valuer)

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` writes, for stores that keep models in memory or a database."""
        with tempfile.TemporaryDirectory() as tmp:
            return self.save(Path(tmp) / "bandit.zip").read_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> VWBandit:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bandit.zip"
            path.write_bytes(data)
            return cls.load(path)

    def __getstate__(self) -> dict[str, Any]:
        return {"bandit_zip": self.to_bytes(), "rng": self.__dict__.get("_rng")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        restored = self.from_bytes(state["bandit_zip"])
        self.__dict__.update(restored.__dict__)
        if state.get("rng") is not None:
            self.__dict__["_rng"] = state["rng"]
